import NIOCore

/// A pool as one config generation sees it: its balancer, affinity, timeouts and retry budget,
/// over the pool's long-lived members (`Backends`), which outlive the generation.
public final class Pool: Sendable {
    /// The pool's name from the config.
    public let name: String
    /// The members, shared with every generation that has a pool of this name.
    public let members: Backends
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
    /// How tunnels are closed on purpose (drain rate, automatic rebalance).
    public let drainPolicy: Backends.DrainPolicy

    public init(
        name: String,
        members: Backends,
        balancer: any Balancer,
        affinity: AffinityPolicy = .none,
        timeouts: UpstreamTimeouts,
        retries: Int,
        healthCheck: HealthCheckConfig?,
        drainPolicy: Backends.DrainPolicy = Backends.DrainPolicy()
    ) {
        self.name = name
        self.drainPolicy = drainPolicy
        self.members = members
        self.balancer = balancer
        self.affinity = affinity
        self.timeouts = timeouts
        self.retries = retries
        self.healthCheck = healthCheck
    }

    /// A pool over `backends` as they are (unit tests).
    convenience init(
        name: String,
        backends: [Backend],
        balancer: any Balancer,
        affinity: AffinityPolicy = .none,
        timeouts: UpstreamTimeouts,
        retries: Int,
        healthCheck: HealthCheckConfig?
    ) {
        self.init(
            name: name,
            members: Backends(poolName: name, backends: backends),
            balancer: balancer,
            affinity: affinity,
            timeouts: timeouts,
            retries: retries,
            healthCheck: healthCheck
        )
    }

    /// The current members (control plane).
    public var backends: [Backend] { self.members.all }

    /// Picks a backend among `backends` (the members as the request's loop sees them): the
    /// affinity's choice when it is available and untried, else the balancer's, preferring backends
    /// not in `tried`.
    func select(
        from backends: [Backend],
        affinity preferred: AffinityChoice,
        excluding tried: [Backend],
        now: NIODeadline
    ) -> Backend? {
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
