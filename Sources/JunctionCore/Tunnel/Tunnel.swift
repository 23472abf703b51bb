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
    /// Frame boundaries of what the backend sends the client, so a close frame can go in between.
    private var framesToClient = WebSocketFrameTracker()
    /// Frame boundaries of what the client sends: whoever sends the first close frame is the side
    /// that ended the tunnel.
    private var framesFromClient = WebSocketFrameTracker()
    /// This tunnel's place in the backend's list of open tunnels (drains close the oldest first).
    private var backendListID: UInt64 = 0
    /// Set once `close(reason:)` started ending the tunnel: by then both sides are closed, else
    /// they are reset.
    private var closingDeadline: NIODeadline?

    /// How long a client may take to read the close frame (and, on HTTP/2, to end its stream).
    static let closeFrameGrace = TimeAmount.seconds(5)

    var sweeperSlot = -1
    var deadline: NIODeadline { min(self.closingDeadline ?? .distantFuture, self.lastActivity + self.idleTimeout) }

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
        self.idleTimeout = idleTimeout
        self.onClose = onClose
        self.lastActivity = .now()
        self.backendListID = self.backend.tunnelOpened(
            TunnelHandle.Target(tunnel: NIOLoopBound(self, eventLoop: loop.eventLoop))
        )
        loop.sweeper.register(self)
    }

    /// A tunnel for a request on `route`: `record` (the upgrade's access-log line) is written when
    /// the tunnel closes, with the bytes that crossed it.
    ///
    /// With no access log when the tunnel opens, only what the metrics need is kept: the record's
    /// strings (request id, User-Agent, target...) and its ~250 bytes would stay for the tunnel's
    /// life, some 5% of an idle tunnel. A reload that turns the log on later does not log it.
    convenience init(
        loop: LoopContext,
        lease: consuming BackendLease,
        route: Route?,
        record: AccessRecord
    ) {
        let onClose: (Summary) -> Void
        if loop.accessLog != nil {
            onClose = { summary in
                var record = record
                record.bytesIn += summary.bytesFromClient
                record.bytesOut = summary.bytesFromUpstream
                loop.requestFinished(record)
            }
        } else {
            let (routeName, poolName, status, start) = (record.route, record.pool, record.status, record.start)
            onClose = { _ in loop.requestFinished(route: routeName, pool: poolName, status: status, start: start) }
        }
        self.init(
            loop: loop,
            lease: lease,
            pool: route?.pool,
            idleTimeout: route?.pool.timeouts.tunnelIdle ?? .hours(1),
            onClose: onClose
        )
    }

    /// Makes `client` and `upstream` each other's partner.
    func pair(client: TunnelGlueHandler, upstream: TunnelGlueHandler) {
        client.partner = upstream
        upstream.partner = client
        self.clientSide = client
        self.upstreamSide = upstream
    }

    /// Pairs an HTTP/2 stream (RFC 8441) with the upstream socket.
    func pair(client: NGHTTP2TunnelEndpoint, upstream: TunnelGlueHandler) {
        client.partner = upstream
        upstream.partner = client
        self.clientSide = client
        self.upstreamSide = upstream
    }

    /// Bytes read from the client, on their way upstream.
    func relayedFromClient(_ bytes: ByteBuffer) {
        self.bytesFromClient += Int64(bytes.readableBytes)
        self.framesFromClient.observe(bytes)
        if self.framesFromClient.sawClose { self.noteCloser(fromClient: true) }
    }

    /// Bytes read from the backend, on their way to the client: counted, and their frame headers
    /// followed.
    func relayedFromUpstream(_ bytes: ByteBuffer) {
        self.bytesFromUpstream += Int64(bytes.readableBytes)
        self.framesToClient.observe(bytes)
        if self.framesToClient.sawClose { self.noteCloser(fromClient: false) }
    }

    /// Bytes moved: the idle clock restarts.
    func touch() {
        self.lastActivity = .now()
    }

    /// Why a tunnel ended, for `junction_tunnels_closed_total{reason}`.
    enum CloseReason: String {
        case client, backend, idle, drain, rebalance, shutdown
    }

    /// Ends the tunnel on purpose (a drain or a rebalance, on this tunnel's loop): the backend's
    /// side closes; the client's gets a WebSocket close 1001 when the backend's stream to it is
    /// between frames, else a reset (the connection on HTTP/1.1, the stream on HTTP/2).
    func close(reason: CloseReason) {
        guard self.closingDeadline == nil, self.openSides > 0 else { return }
        if self.closeReason == nil { self.closeReason = reason }
        self.closingDeadline = .now() + Self.closeFrameGrace
        let ending: TunnelEnding
        if self.framesToClient.sawClose {
            // The backend already began the closing handshake: one close frame is all there may be.
            ending = .graceful(last: ByteBuffer())
        } else if self.framesToClient.isBetweenFrames {
            let text = reason == .rebalance ? "rebalancing" : "backend draining"
            ending = .graceful(
                last: self.loop.allocator.buffer(bytes: WebSocketFrameTracker.closeFrame(code: 1001, reason: text))
            )
        } else {
            ending = .reset
        }
        self.clientSide?.end(ending)
        self.upstreamSide?.closeChannel()
    }

    /// Set by whoever closes the tunnel on purpose (idle timeout, drain); else by the first side to
    /// send a close frame, to end its input or to close.
    private var closeReason: CloseReason?

    /// One side finished sending (EOF, END_STREAM): without a close frame before it, the side that
    /// ends first is why the tunnel ends, even when the other one closes the connection first.
    func inputEnded(fromClient: Bool) {
        self.noteCloser(fromClient: fromClient)
    }

    private func noteCloser(fromClient: Bool) {
        if self.closeReason == nil {
            self.closeReason = self.loop.isShuttingDown ? .shutdown : (fromClient ? .client : .backend)
        }
    }

    /// One side's channel closed (`fromClient`: the client's).
    func sideClosed(fromClient: Bool) {
        self.noteCloser(fromClient: fromClient)
        self.openSides -= 1
        guard self.openSides == 0 else { return }
        self.loop.metrics?.tunnelClosed(pool: self.pool?.name ?? "none", reason: self.closeReason ?? .client)
        self.loop.sweeper.unregister(self)
        self.lease = nil
        self.pool?.members.tunnelCount.subtract(1, ordering: .relaxed)
        self.backend.tunnelClosed(self.backendListID)
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
        if let closing = self.closingDeadline, closing <= now {
            // The client did not take its close frame in time.
            self.clientSide?.end(.reset)
            self.upstreamSide?.closeChannel()
            return
        }
        // Idle for tunnel_idle.
        if self.closeReason == nil { self.closeReason = .idle }
        self.clientSide?.closeChannel()
        self.upstreamSide?.closeChannel()
    }
}
