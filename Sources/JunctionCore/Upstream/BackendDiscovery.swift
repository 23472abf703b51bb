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
    private let config: JunctionConfig
    private let pools: [String: Pool]
    private let loops: [LoopContext]
    private let logger: Logger

    init(config: JunctionConfig, pools: [String: Pool], loops: [LoopContext], logger: Logger) {
        self.config = config
        self.pools = pools
        self.loops = loops
        self.logger = logger
    }

    /// Pools with at least one backend given by name (the others never change).
    private var discoveredPools: [PoolConfig] {
        self.config.pools.filter { pool in
            pool.backends.contains { !BackendResolver.isLiteral($0.address.host) }
        }
    }

    func run() async throws {
        let pools = self.discoveredPools
        guard !pools.isEmpty else {
            try? await gracefulShutdown()
            return
        }
        let refresh = Duration.nanoseconds(self.config.discovery.dnsRefresh.nanoseconds)
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                try? await Task.sleep(for: refresh)
                guard !Task.isCancelled else { return }
                for pool in pools {
                    await self.refresh(pool)
                }
            }
        }
    }

    /// Resolves every backend of `poolConfig` again and updates the pool if its addresses changed.
    func refresh(_ poolConfig: PoolConfig) async {
        guard let pool = self.pools[poolConfig.name] else { return }
        let current = pool.backends
        var next: [Backend] = []
        for backendConfig in poolConfig.backends {
            let hostPort = backendConfig.address
            let addresses: [SocketAddress]
            do {
                addresses = try await NIOThreadPool.singleton.runIfActive { try BackendResolver.resolve(hostPort) }
            } catch {
                // Keep what this name resolved to last time.
                self.logger.warning(
                    "DNS resolution failed, keeping the last addresses",
                    metadata: ["pool": "\(poolConfig.name)", "name": "\(hostPort)", "error": "\(error)"]
                )
                next += current.filter { $0.configuredAddress == hostPort.description }
                continue
            }
            for address in addresses {
                let label = BackendResolver.label(address, fallback: hostPort)
                if let existing = current.first(where: {
                    $0.label == label && $0.configuredAddress == hostPort.description
                }) {
                    next.append(existing)
                } else {
                    next.append(
                        Backend(
                            address: address,
                            label: label,
                            weight: backendConfig.weight,
                            poolName: poolConfig.name,
                            configuredAddress: hostPort.description,
                            healthCheck: poolConfig.healthCheck
                        )
                    )
                }
            }
        }
        let before = Set(current.map(\.label))
        let after = Set(next.map(\.label))
        guard before != after else { return }
        pool.replaceBackends(next, loops: self.loops)
        self.logger.info(
            "backends changed by DNS",
            metadata: [
                "pool": "\(poolConfig.name)",
                "added": "\(after.subtracting(before).sorted().joined(separator: ","))",
                "removed": "\(before.subtracting(after).sorted().joined(separator: ","))",
            ]
        )
    }
}
