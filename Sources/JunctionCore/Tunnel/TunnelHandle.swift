import NIOCore

/// An open tunnel as the control plane reaches it (a drain or a rebalance closing it): its place
/// in its backend's opening order and the tunnel's upstream end, which only its own event loop
/// touches.
struct TunnelHandle: Sendable {
    /// The tunnel's upstream end (the owner of its ledger), bound to its event loop.
    struct Target: Sendable {
        let glue: NIOLoopBound<TunnelGlue>
    }

    /// Opening order within the backend: lower is older.
    let id: UInt64
    let target: Target

    /// Closes the tunnel on its own loop, for `reason` (the client gets a WebSocket close 1001 when
    /// it can).
    func close(reason: TunnelLedger.CloseReason) {
        let glue = self.target.glue
        glue.eventLoop.execute { glue.value.close(reason: reason) }
    }
}

/// A backend's open tunnels by opening order (ids from one process-wide sequence, so tunnels of
/// different backends compare too), for closing the oldest first. The ids come in growing order,
/// so a queue with lazy removal finds the oldest in amortised constant time.
struct OpenTunnels<Target> {
    private var entries: [UInt64: Target] = [:]
    /// Ids in opening order from `head` on; closed ones are skipped when they reach the front.
    private var order: [UInt64] = []
    private var head = 0

    /// Lists a tunnel under `id`.
    mutating func add(_ target: Target, id: UInt64) {
        self.entries[id] = target
        self.order.append(id)
    }

    mutating func remove(_ id: UInt64) {
        guard self.entries.removeValue(forKey: id) != nil else { return }
        // Ids of closed tunnels wait in `order` until they reach the front: rebuild when they
        // outnumber the open ones, so churn without drains cannot grow it.
        if self.order.count - self.head > 2 * self.entries.count + 64 {
            self.order = self.entries.keys.sorted()
            self.head = 0
        }
    }

    var count: Int { self.entries.count }

    /// The id of the oldest tunnel listed.
    mutating func oldestID() -> UInt64? {
        while self.head < self.order.count, self.entries[self.order[self.head]] == nil {
            self.head += 1
        }
        if self.head > 1024, self.head * 2 > self.order.count {
            self.order.removeFirst(self.head)
            self.head = 0
        }
        return self.head < self.order.count ? self.order[self.head] : nil
    }

    /// Takes the oldest tunnel off the list (it is about to be closed, so the next call finds the
    /// next one even before this one's close has run).
    mutating func takeOldest() -> (id: UInt64, target: Target)? {
        guard let id = self.oldestID(), let target = self.entries.removeValue(forKey: id) else { return nil }
        return (id, target)
    }

    /// How many ids wait in the queue (open or not yet skipped), for tests of its bound.
    var queued: Int { self.order.count - self.head }
}

extension OpenTunnels: Sendable where Target: Sendable {}
