import NIOCore
import Synchronization

/// A named set of backends with its balancer, affinity, timeouts and retry budget.
///
/// Membership can change while running (DNS discovery). The data path reads a per-event-loop copy
/// of the member list, updated on each loop, so picking a backend takes no lock.
public final class Pool: Sendable {
    /// The pool's name from the config.
    public let name: String
    /// How a backend is picked.
    public let balancer: any Balancer
    /// Session affinity.
    public let affinity: AffinityPolicy
    /// Upstream timeouts.
    public let timeouts: UpstreamTimeouts
    /// Further backends tried after a failure.
    public let retries: Int
    /// The active health check, if any.
    public let healthCheck: HealthCheckConfig?
    /// Open WebSocket tunnels to this pool's backends.
    let tunnelCount = Atomic<Int>(0)

    /// The members, for the control plane (health checks, discovery, status).
    private let memberList: Mutex<[Backend]>
    /// One copy of the members per event loop (`LoopContext.index`), each only read and written on
    /// its own loop.
    private let loopViews: [LoopView]

    /// The backends as one event loop sees them.
    final class LoopView: @unchecked Sendable {
        var backends: [Backend]

        init(backends: [Backend]) {
            self.backends = backends
        }
    }

    public init(
        name: String,
        backends: [Backend],
        balancer: any Balancer,
        affinity: AffinityPolicy = .none,
        timeouts: UpstreamTimeouts,
        retries: Int,
        healthCheck: HealthCheckConfig?,
        loopCount: Int = 1
    ) {
        self.name = name
        self.balancer = balancer
        self.affinity = affinity
        self.timeouts = timeouts
        self.retries = retries
        self.healthCheck = healthCheck
        self.memberList = Mutex(backends)
        self.loopViews = (0..<max(loopCount, 1)).map { _ in LoopView(backends: backends) }
    }

    /// The current members (control plane).
    public var backends: [Backend] { self.memberList.withLock { $0 } }

    /// The members as seen from the event loop with `loopIndex` (data path; call on that loop).
    func backends(onLoop loopIndex: Int) -> [Backend] {
        self.loopViews[loopIndex % self.loopViews.count].backends
    }

    /// Replaces the members (discovery). Each loop picks up the new list on its next turn; requests
    /// and tunnels on removed backends finish on the objects they hold.
    func replaceBackends(_ backends: [Backend], loops: [LoopContext]) {
        self.memberList.withLock { $0 = backends }
        for loop in loops {
            let view = self.loopViews[loop.index % self.loopViews.count]
            loop.eventLoop.execute { view.backends = backends }
        }
    }

    /// Picks a backend for a request on `loopIndex`: the affinity's choice when it is available and
    /// untried, else the balancer's, preferring backends not in `tried`.
    func select(
        onLoop loopIndex: Int,
        affinity preferred: AffinityChoice,
        excluding tried: [Backend],
        now: NIODeadline
    ) -> Backend? {
        let backends = self.backends(onLoop: loopIndex)
        if let backend = preferred.backend(among: backends, now: now), !tried.contains(where: { $0 === backend }) {
            return backend
        }
        return self.balancer.select(from: backends, excluding: tried, now: now)
    }

    /// Seconds a client should wait before retrying when no backend is available: the check interval
    /// when there is a health check, else the time until the first back-off ends; at least 1.
    func retryAfterSeconds(now: NIODeadline) -> Int64 {
        if let interval = self.healthCheck?.interval {
            return max(1, (interval.nanoseconds + 999_999_999) / 1_000_000_000)
        }
        let soonest = self.backends.compactMap { $0.retryAt(after: now) }.min()
        guard let soonest else { return 1 }
        return max(1, ((soonest - now).nanoseconds + 999_999_999) / 1_000_000_000)
    }

    /// Whether any backend could take a request now (readiness).
    public var hasAvailableBackend: Bool {
        let now = NIODeadline.now()
        return self.backends.contains { $0.isAvailable(at: now) }
    }
}
