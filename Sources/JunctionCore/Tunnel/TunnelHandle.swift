import NIOCore

/// An open tunnel as the control plane reaches it (a drain or a rebalance closing it): its place
/// in its backend's opening order and the tunnel, which only its own event loop touches.
struct TunnelHandle: Sendable {
    /// The tunnel, bound to its event loop.
    struct Target: Sendable {
        let tunnel: NIOLoopBound<Tunnel>
    }

    /// Opening order within the backend: lower is older.
    let id: UInt64
    let target: Target

    /// Closes the tunnel on its own loop, for `reason` (the client gets a WebSocket close 1001 when
    /// it can).
    func close(reason: Tunnel.CloseReason) {
        let tunnel = self.target.tunnel
        tunnel.eventLoop.execute { tunnel.value.close(reason: reason) }
    }
}

/// A backend's open tunnels by opening order (ids from one process-wide sequence, so tunnels of
/// different backends compare too), for closing the oldest first.
struct OpenTunnels {
    private var entries: [UInt64: TunnelHandle.Target] = [:]

    /// Lists a tunnel under `id`.
    mutating func add(_ target: TunnelHandle.Target, id: UInt64) {
        self.entries[id] = target
    }

    mutating func remove(_ id: UInt64) {
        self.entries[id] = nil
    }

    var count: Int { self.entries.count }

    /// The id of the oldest tunnel listed.
    var oldestID: UInt64? { self.entries.keys.min() }

    /// Takes the oldest tunnel off the list (it is about to be closed, so the next call finds the
    /// next one even before this one's close has run).
    mutating func takeOldest() -> TunnelHandle? {
        guard let id = self.oldestID, let target = self.entries.removeValue(forKey: id) else { return nil }
        return TunnelHandle(id: id, target: target)
    }
}
