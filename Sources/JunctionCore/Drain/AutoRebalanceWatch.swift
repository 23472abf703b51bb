import NIOCore

/// When `rebalance: auto` moves tunnels: once per event (a backend joining, or coming back
/// healthy), after the backend has stayed available for `settle`, and never again for the same
/// backend within `cooldown` of a rebalance it caused. A backend flipping health faster than
/// `settle` never triggers one; one flipping slower triggers at most one per `cooldown`.
///
/// `observe` reports the backends that are due; they stay due until the caller `settle`s them,
/// so an event that comes while an earlier rebalance is still closing tunnels is not lost.
struct AutoRebalanceWatch<Key: Hashable & Sendable>: Sendable {
    /// One backend's current stretch of availability.
    private struct Stretch: Sendable {
        var since: NIODeadline?
        var settled = false
        var lastRebalance: NIODeadline?
    }

    private var stretches: [Key: Stretch] = [:]
    let cooldown: TimeAmount

    init(cooldown: TimeAmount) {
        self.cooldown = cooldown
    }

    /// Takes the backends' availability at `now` (backends not listed are forgotten); returns those
    /// whose stretch has lasted `settle`, not yet settled, and out of their cooldown.
    mutating func observe(_ backends: [(key: Key, available: Bool)], now: NIODeadline, settle: TimeAmount) -> [Key] {
        var due: [Key] = []
        var next: [Key: Stretch] = [:]
        for (key, available) in backends {
            var stretch = self.stretches[key] ?? Stretch()
            defer { next[key] = stretch }
            guard available else {
                stretch.since = nil
                stretch.settled = false
                continue
            }
            let since = stretch.since ?? now
            stretch.since = since
            guard !stretch.settled, now - since >= settle else { continue }
            if let last = stretch.lastRebalance, now - last < self.cooldown {
                // Too soon after the last one it caused: this event passes.
                stretch.settled = true
                continue
            }
            due.append(key)
        }
        self.stretches = next
        return due
    }

    /// The caller dealt with `key`'s event at `now`: `rebalanced` when that moved tunnels (its
    /// cooldown starts), false when the pool was balanced already.
    mutating func settle(_ key: Key, rebalanced: Bool, at now: NIODeadline) {
        self.stretches[key]?.settled = true
        if rebalanced { self.stretches[key]?.lastRebalance = now }
    }
}
