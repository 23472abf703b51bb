import NIOCore

/// A named set of backends with its balancer, timeouts and retry budget.
public final class Pool: Sendable {
    /// The pool's name from the config.
    public let name: String
    /// Every backend (a host name that resolved to several addresses gives several).
    public let backends: [Backend]
    /// How a backend is picked.
    public let balancer: any Balancer
    /// Upstream timeouts.
    public let timeouts: UpstreamTimeouts
    /// Further backends tried after a failure.
    public let retries: Int
    /// The active health check, if any.
    public let healthCheck: HealthCheckConfig?

    public init(
        name: String,
        backends: [Backend],
        balancer: any Balancer,
        timeouts: UpstreamTimeouts,
        retries: Int,
        healthCheck: HealthCheckConfig?
    ) {
        self.name = name
        self.backends = backends
        self.balancer = balancer
        self.timeouts = timeouts
        self.retries = retries
        self.healthCheck = healthCheck
    }

    /// Picks a backend, preferring ones not in `tried`.
    func select(excluding tried: [Backend], now: NIODeadline) -> Backend? {
        self.balancer.select(from: self.backends, excluding: tried, now: now)
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
}
