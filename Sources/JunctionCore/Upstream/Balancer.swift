import NIOCore
import Synchronization

/// Picks a backend of a pool for one request or tunnel.
///
/// Implementations are lock-free: they read each backend's atomic active count and availability.
public protocol Balancer: Sendable {
    /// An available backend not in `tried`; if every available backend was tried, an available one
    /// that was; nil when none is available.
    func select(from backends: [Backend], excluding tried: [Backend], now: NIODeadline) -> Backend?
}

extension Balancer {
    /// Backends eligible at `now`: available and untried, or (if there are none such) available.
    @inline(__always)
    static func isCandidate(_ backend: Backend, tried: [Backend], now: NIODeadline, allowTried: Bool) -> Bool {
        backend.isAvailable(at: now) && (allowTried || !tried.contains { $0 === backend })
    }
}

/// `least_conn`: the lowest active count divided by weight; ties rotate.
public final class LeastConnectionsBalancer: Balancer {
    /// Where the scan starts; advancing it makes ties rotate instead of always hitting the first.
    private let cursor = Atomic<Int>(0)

    public init() {}

    public func select(from backends: [Backend], excluding tried: [Backend], now: NIODeadline) -> Backend? {
        if backends.isEmpty { return nil }
        let start = self.cursor.add(1, ordering: .relaxed).oldValue
        // Two passes (untried first, then any), without an array literal: it would allocate per pick.
        for pass in 0..<2 {
            let allowTried = pass == 1
            var best: Backend?
            var bestActive = 0
            for offset in 0..<backends.count {
                let backend = backends[(start &+ offset) % backends.count]
                guard Self.isCandidate(backend, tried: tried, now: now, allowTried: allowTried) else { continue }
                let active = backend.active
                // active / weight < bestActive / bestWeight, without division.
                if let current = best, active * current.weight >= bestActive * backend.weight { continue }
                best = backend
                bestActive = active
            }
            if let best { return best }
            if tried.isEmpty { return nil }
        }
        return nil
    }
}

/// `round_robin`: backends in turn, each as often as its weight.
public final class RoundRobinBalancer: Balancer {
    private let counter = Atomic<Int>(0)

    public init() {}

    public func select(from backends: [Backend], excluding tried: [Backend], now: NIODeadline) -> Backend? {
        if backends.isEmpty { return nil }
        let totalWeight = backends.reduce(0) { $0 + $1.weight }
        var slot = self.counter.add(1, ordering: .relaxed).oldValue % totalWeight
        var startIndex = 0
        for (index, backend) in backends.enumerated() {
            if slot < backend.weight {
                startIndex = index
                break
            }
            slot -= backend.weight
        }
        for pass in 0..<2 {
            let allowTried = pass == 1
            for offset in 0..<backends.count {
                let backend = backends[(startIndex + offset) % backends.count]
                if Self.isCandidate(backend, tried: tried, now: now, allowTried: allowTried) { return backend }
            }
            if tried.isEmpty { return nil }
        }
        return nil
    }
}
