import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle

/// DNS discovery: backend addresses given as host names are resolved again every
/// `discovery.dns_refresh`, off the event loops. Every address is a backend; one that appears starts
/// taking traffic, one that disappears gets no new requests and its open tunnels finish on their
/// own. A backend that stays keeps its counts and health. A failed resolution keeps the last good
/// set and is logged.
final class BackendDiscovery: Service {
    private let runtime: RuntimeBox
    private let loops: [LoopContexts.Loop]
    private let logger: Logger
    private let resolver: any Resolver

    init(runtime: RuntimeBox, loops: [LoopContexts.Loop], logger: Logger, resolver: any Resolver = SystemResolver()) {
        self.runtime = runtime
        self.loops = loops
        self.logger = logger
        self.resolver = resolver
    }

    func run() async throws {
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                let refresh = self.runtime.current.config.discovery.dnsRefresh
                try? await Task.sleep(for: .nanoseconds(refresh.nanoseconds))
                guard !Task.isCancelled else { return }
                // The generation current now: one a reload made during the sleep is not stale.
                let runtime = self.runtime.current
                // Pools with at least one backend given by name (IP literals never change).
                for pool in runtime.config.pools
                where pool.backends.contains(where: { !BackendResolver.isLiteral($0.address.host) }) {
                    await self.refresh(pool, in: runtime)
                }
            }
        }
    }

    /// Resolves every backend of `poolConfig` again and hands the pool's new member list to the
    /// registry, which changes only what differs.
    func refresh(_ poolConfig: PoolConfig, in runtime: RuntimeConfig) async {
        guard let pool = runtime.pools[poolConfig.name] else { return }
        var members: [Backends.Member] = []
        for backendConfig in poolConfig.backends {
            do {
                let resolver = self.resolver
                members += try await NIOThreadPool.singleton.runIfActive {
                    try BackendResolver.members(of: backendConfig, resolver: resolver)
                }
            } catch {
                // Keep what this name resolved to last time.
                self.logger.warning(
                    "DNS resolution failed, keeping the last addresses",
                    metadata: ["pool": "\(poolConfig.name)", "name": "\(backendConfig.address)", "error": "\(error)"]
                )
                members += pool.members.members(configuredAs: backendConfig.address.description)
            }
        }
        let change = runtime.registry.update(
            pool: poolConfig.name,
            members: members,
            generation: runtime.generation,
            loops: self.loops
        )
        guard let change, change.membersChanged else { return }
        self.logger.info("backends changed by DNS", metadata: change.logMetadata(pool: poolConfig.name))
    }
}
