import NIOCore

/// When `rebalance: auto` moves tunnels: once per event (a backend joining, or coming back
/// healthy), after the backend has stayed available for `settle`, and never again for the same
/// backend within `cooldown` of a rebalance it caused. A backend flipping health faster than
/// `settle` never triggers one; one flipping slower triggers at most one per `cooldown`.
struct AutoRebalanceWatch<Key: Hashable & Sendable>: Sendable {
    /// One backend's current stretch of availability.
    private struct Stretch: Sendable {
        var since: NIODeadline?
        var triggered = false
        var lastRebalance: NIODeadline?
    }

    private var stretches: [Key: Stretch] = [:]
    let cooldown: TimeAmount

    init(cooldown: TimeAmount) {
        self.cooldown = cooldown
    }

    /// Takes the backends' availability at `now` (backends not listed are forgotten); returns those
    /// whose stretch just reached `settle` and that are out of their cooldown.
    mutating func observe(_ backends: [(key: Key, available: Bool)], now: NIODeadline, settle: TimeAmount) -> [Key] {
        var due: [Key] = []
        var next: [Key: Stretch] = [:]
        for (key, available) in backends {
            var stretch = self.stretches[key] ?? Stretch()
            defer { next[key] = stretch }
            guard available else {
                stretch.since = nil
                stretch.triggered = false
                continue
            }
            let since = stretch.since ?? now
            stretch.since = since
            guard !stretch.triggered, now - since >= settle else { continue }
            stretch.triggered = true
            if let last = stretch.lastRebalance, now - last < self.cooldown { continue }
            due.append(key)
        }
        self.stretches = next
        return due
    }

    /// A rebalance that moves tunnels ran for `key` at `now`: its cooldown starts.
    mutating func rebalanced(_ key: Key, at now: NIODeadline) {
        self.stretches[key]?.lastRebalance = now
    }
}
