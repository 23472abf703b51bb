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
    private let loops: [LoopContext]
    private let logger: Logger

    init(runtime: RuntimeBox, loops: [LoopContext], logger: Logger) {
        self.runtime = runtime
        self.loops = loops
        self.logger = logger
    }

    func run() async throws {
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                let runtime = self.runtime.current
                let refresh = Duration.nanoseconds(runtime.config.discovery.dnsRefresh.nanoseconds)
                try? await Task.sleep(for: refresh)
                guard !Task.isCancelled else { return }
                // Pools with at least one backend given by name (IP literals never change).
                for pool in runtime.config.pools
                where pool.backends.contains(where: { !BackendResolver.isLiteral($0.address.host) }) {
                    await self.refresh(pool, in: runtime)
                }
            }
        }
    }

    /// Resolves every backend of `poolConfig` again and updates the pool if its addresses changed.
    func refresh(_ poolConfig: PoolConfig, in runtime: RuntimeConfig) async {
        guard let pool = runtime.pools[poolConfig.name] else { return }
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
