import NIOCore

/// A WebSocket tunnel after the backend's 101: the two glued sides, the backend it counts against
/// (for least_conn) until both sides close, and its idle timeout. (A graceful shutdown's grace is
/// the client connection's: `ClientConnection` closes the client side when it is over.)
final class Tunnel: DeadlineTracked {
    /// What the tunnel reports when it ends (for the access log).
    struct Summary {
        var bytesFromClient: Int64
        var bytesFromUpstream: Int64
        var backend: Backend
    }

    private let loop: LoopContext
    /// The backend's active count, held while the tunnel is open.
    private var lease: BackendLease?
    private let backend: Backend
    /// The pool whose open tunnels this one counts in.
    private let pool: Pool?
    private let idleTimeout: TimeAmount
    private let onClose: (Summary) -> Void

    private var clientSide: (any TunnelEndpoint)?
    private var upstreamSide: (any TunnelEndpoint)?
    private var lastActivity: NIODeadline
    private var openSides = 2
    private var bytesFromClient: Int64 = 0
    private var bytesFromUpstream: Int64 = 0

    var sweeperSlot = -1
    var deadline: NIODeadline { self.lastActivity + self.idleTimeout }

    /// The backend's active count is owned by the tunnel from now on; `pair` connects its two sides.
    init(
        loop: LoopContext,
        lease: consuming BackendLease,
        pool: Pool?,
        idleTimeout: TimeAmount,
        onClose: @escaping (Summary) -> Void
    ) {
        self.loop = loop
        self.backend = lease.backend
        self.lease = consume lease
        self.pool = pool
        pool?.members.tunnelCount.add(1, ordering: .relaxed)
        self.backend.tunnelOpened()
        self.idleTimeout = idleTimeout
        self.onClose = onClose
        self.lastActivity = .now()
        loop.sweeper.register(self)
    }

    /// A tunnel for a request on `route`: `record` (the upgrade's access-log line) is written when
    /// the tunnel closes, with the bytes that crossed it.
    convenience init(
        loop: LoopContext,
        lease: consuming BackendLease,
        route: Route?,
        record: AccessRecord
    ) {
        self.init(
            loop: loop,
            lease: lease,
            pool: route?.pool,
            idleTimeout: route?.pool.timeouts.tunnelIdle ?? .hours(1)
        ) { summary in
            var record = record
            record.bytesIn += summary.bytesFromClient
            record.bytesOut = summary.bytesFromUpstream
            loop.requestFinished(record)
        }
    }

    /// Makes `client` and `upstream` each other's partner.
    func pair(client: TunnelGlueHandler, upstream: TunnelGlueHandler) {
        client.partner = upstream
        upstream.partner = client
        self.clientSide = client
        self.upstreamSide = upstream
    }

    /// Pairs an HTTP/2 stream (RFC 8441) with the upstream socket.
    func pair(client: HTTP2TunnelGlueHandler, upstream: TunnelGlueHandler) {
        client.partner = upstream
        upstream.partner = client
        self.clientSide = client
        self.upstreamSide = upstream
    }

    func count(bytes: Int, fromClient: Bool) {
        if fromClient {
            self.bytesFromClient += Int64(bytes)
        } else {
            self.bytesFromUpstream += Int64(bytes)
        }
    }

    /// Bytes moved: the idle clock restarts.
    func touch() {
        self.lastActivity = .now()
    }

    /// Why a tunnel ended, for `junction_tunnels_closed_total{reason}`.
    enum CloseReason: String {
        case client, backend, idle, shutdown
    }

    /// Set by whoever closes the tunnel on purpose (idle timeout); else the first side to close.
    private var closeReason: CloseReason?

    /// One side's channel closed (`fromClient`: the client's).
    func sideClosed(fromClient: Bool) {
        if self.closeReason == nil {
            self.closeReason = self.loop.isShuttingDown ? .shutdown : (fromClient ? .client : .backend)
        }
        self.openSides -= 1
        guard self.openSides == 0 else { return }
        self.loop.metrics?.tunnelClosed(pool: self.pool?.name ?? "none", reason: self.closeReason ?? .client)
        self.loop.sweeper.unregister(self)
        self.lease = nil
        self.pool?.members.tunnelCount.subtract(1, ordering: .relaxed)
        self.backend.tunnelClosed()
        self.onClose(
            Summary(
                bytesFromClient: self.bytesFromClient,
                bytesFromUpstream: self.bytesFromUpstream,
                backend: self.backend
            )
        )
        // Break the cycle tunnel -> handlers -> tunnel.
        self.clientSide = nil
        self.upstreamSide = nil
    }

    func deadlinePassed(now: NIODeadline) {
        // Idle for tunnel_idle.
        if self.closeReason == nil { self.closeReason = .idle }
        self.clientSide?.closeChannel()
        self.upstreamSide?.closeChannel()
    }
}
