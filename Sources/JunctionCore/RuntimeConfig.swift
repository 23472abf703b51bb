import NIOCore
import NIOPosix

import struct NIOConcurrencyHelpers.NIOLockedValueBox

#if canImport(Glibc)
    import Glibc
#endif

/// One generation of the running configuration: routes bound to pools, each pool's resolved member
/// list, and the limits.
///
/// A plain value once built; a request keeps the generation it started with. The live state (each
/// backend's counts and health) is in the `BackendRegistry`, which outlives generations: the
/// members listed here become current when the registry `apply`s the generation.
final class RuntimeConfig: Sendable {
    /// The validated file it was built from.
    let config: JunctionConfig
    /// Routes bound to pools.
    let routes: RouteTable
    /// Pools by name.
    let pools: [String: Pool]
    /// Each pool's backends as resolved for this generation.
    let members: [String: [Backends.Member]]
    /// The registry the pools' members live in.
    let registry: BackendRegistry
    /// Client-side limits.
    let limits: LimitsConfig
    /// The process's per-client tables (kept across reloads, like the registry).
    let limiter: ClientLimiter
    /// `limits.per_client` over those tables.
    let clientLimits: ClientLimits
    /// 1 for the file read at start, one more for each reload that took.
    let generation: Int
    /// When this generation was loaded (seconds since the epoch).
    let loadedAt: Double

    init(
        config: JunctionConfig,
        pools: [String: Pool],
        members: [String: [Backends.Member]] = [:],
        registry: BackendRegistry = BackendRegistry(),
        limiter: ClientLimiter = ClientLimiter(),
        generation: Int = 1
    ) {
        self.config = config
        self.pools = pools
        self.members = members
        self.registry = registry
        self.limits = config.limits
        self.limiter = limiter
        let (clientLimits, routeLimits) = limiter.limits(for: config)
        self.clientLimits = clientLimits
        self.generation = generation
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        self.loadedAt = Double(now.tv_sec) + Double(now.tv_nsec) / 1e9
        self.routes = RouteTable(
            routes: config.routes.compactMap { route in
                pools[route.pool].map { Route(config: route, pool: $0, limit: routeLimits[route.name]) }
            }
        )
    }

    /// Builds the pools of `config` over `registry`, resolving backend host names to all their
    /// addresses. Throws a `ConfigError` naming every backend that does not resolve. Nothing
    /// changes in the registry until it `apply`s the result.
    static func make(
        config: JunctionConfig,
        registry: BackendRegistry,
        limiter: ClientLimiter = ClientLimiter(),
        generation: Int = 1,
        resolver: any Resolver = SystemResolver()
    ) throws(ConfigError) -> RuntimeConfig {
        var pools: [String: Pool] = [:]
        var members: [String: [Backends.Member]] = [:]
        var problems: [ConfigDiagnostic] = []
        for poolConfig in config.pools {
            var poolMembers: [Backends.Member] = []
            for (index, backendConfig) in poolConfig.backends.enumerated() {
                do {
                    poolMembers += try BackendResolver.members(of: backendConfig, resolver: resolver)
                } catch {
                    problems.append(
                        ConfigDiagnostic(
                            severity: .error,
                            location: backendConfig.location,
                            path: "pools.\(poolConfig.name).backends[\(index)].address",
                            message: "\(error)"
                        )
                    )
                }
            }
            let balancer: any Balancer =
                switch poolConfig.balance {
                case .leastConn: LeastConnectionsBalancer()
                case .roundRobin: RoundRobinBalancer()
                }
            members[poolConfig.name] = poolMembers
            pools[poolConfig.name] = Pool(
                name: poolConfig.name,
                members: registry.backends(named: poolConfig.name),
                balancer: balancer,
                affinity: poolConfig.affinity,
                timeouts: poolConfig.timeouts,
                retries: poolConfig.retries,
                healthCheck: poolConfig.healthCheck,
                drainPolicy: Backends.DrainPolicy(
                    rate: poolConfig.drainRate,
                    autoRebalance: poolConfig.rebalance == .auto
                )
            )
        }
        if !problems.isEmpty { throw ConfigError(diagnostics: problems) }
        return RuntimeConfig(
            config: config,
            pools: pools,
            members: members,
            registry: registry,
            limiter: limiter,
            generation: generation
        )
    }
}

/// The configuration generation the control plane works with (admin, health checks, discovery);
/// a reload replaces it. The data path reads its event loop's own copy instead (`LoopContext.runtime`).
final class RuntimeBox: Sendable {
    private let storage: NIOLockedValueBox<RuntimeConfig>

    init(_ runtime: RuntimeConfig) {
        self.storage = NIOLockedValueBox(runtime)
    }

    var current: RuntimeConfig { self.storage.withLockedValue { $0 } }

    func replace(with runtime: RuntimeConfig) {
        self.storage.withLockedValue { $0 = runtime }
    }
}
