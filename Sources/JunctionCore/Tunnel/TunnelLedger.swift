import NIOCore

/// What a WebSocket tunnel holds for the rest of the process while it is open, and reports once
/// when it closes: the lease on its backend (least_conn counts the tunnel), its place in the
/// backend's list of open tunnels (drains close the oldest first), the pool's tunnel count, why it
/// ended, and its access-log line or metrics.
///
/// The tunnel's upstream end (`TunnelGlue`) owns it; nothing on the per-message path touches it.
final class TunnelLedger {
    /// Why a tunnel ended, for `junction_tunnels_closed_total{reason}`.
    enum CloseReason: String {
        case client, backend, idle, drain, rebalance, shutdown
    }

    /// What a closed tunnel reports (for the access log).
    struct Summary {
        var bytesFromClient: Int64
        var bytesFromUpstream: Int64
        var backend: Backend
    }

    private let loop: LoopContext
    private let backend: Backend
    /// How long the tunnel may carry nothing.
    let idleTimeout: TimeAmount
    /// The backend's active count, held while the tunnel is open.
    private var lease: BackendLease?
    /// The client's count of open WebSockets (`limits.per_client.max_tunnels`), held likewise.
    private var hold: ClientHold?
    /// The pool whose open tunnels this one counts in.
    private let pool: Pool?
    private let onClose: (Summary) -> Void
    /// The tunnel's place in its backend's list of open tunnels, once opened.
    private var listID: UInt64?
    private var isClosed = false
    /// Set by whoever ends the tunnel on purpose (idle timeout, drain), else by the side that ended
    /// first (the first close frame, the first end of input, the first close).
    private var closeReason: CloseReason?

    /// The backend's active count is the ledger's from now on.
    init(
        loop: LoopContext,
        lease: consuming BackendLease,
        hold: consuming ClientHold? = nil,
        pool: Pool?,
        idleTimeout: TimeAmount,
        onClose: @escaping (Summary) -> Void
    ) {
        self.loop = loop
        self.backend = lease.backend
        self.lease = consume lease
        self.hold = consume hold
        self.pool = pool
        self.idleTimeout = idleTimeout
        self.onClose = onClose
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
        hold: consuming ClientHold? = nil,
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
            hold: hold,
            pool: route?.pool,
            idleTimeout: route?.pool.timeouts.tunnelIdle ?? .hours(1),
            onClose: onClose
        )
    }

    /// The tunnel runs: counted in its pool, listed with its backend under `target` (its upstream
    /// end, which a drain asks to close).
    func opened(_ target: TunnelHandle.Target) {
        guard self.listID == nil, !self.isClosed else { return }
        self.pool?.members.tunnelCount.add(1, ordering: .relaxed)
        self.listID = self.backend.tunnelOpened(target)
    }

    /// Notes why the tunnel ends, unless that is known already. A side ending it during the
    /// process's shutdown ends it because of the shutdown.
    func note(_ reason: CloseReason) {
        guard self.closeReason == nil else { return }
        switch reason {
        case .client, .backend:
            self.closeReason = self.loop.isShuttingDown ? .shutdown : reason
        case .idle, .drain, .rebalance, .shutdown:
            self.closeReason = reason
        }
    }

    /// Both ends closed: counted by reason, unlisted, the lease ends, the log line or metrics.
    func closed(bytesFromClient: Int64, bytesFromUpstream: Int64) {
        guard !self.isClosed else { return }
        self.isClosed = true
        self.lease = nil
        self.hold = nil
        guard let listID = self.listID else { return }
        self.loop.metrics?.tunnelClosed(pool: self.pool?.name ?? "none", reason: self.closeReason ?? .client)
        self.pool?.members.tunnelCount.subtract(1, ordering: .relaxed)
        self.backend.tunnelClosed(listID)
        self.onClose(
            Summary(bytesFromClient: bytesFromClient, bytesFromUpstream: bytesFromUpstream, backend: self.backend)
        )
    }
}
