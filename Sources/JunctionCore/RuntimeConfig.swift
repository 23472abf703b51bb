import NIOCore
import NIOPosix
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// One generation of the running configuration: routes bound to live pools, and the limits.
///
/// Immutable; a request keeps the generation it started with.
final class RuntimeConfig: Sendable {
    /// The validated file it was built from.
    let config: JunctionConfig
    /// Routes bound to pools.
    let routes: RouteTable
    /// Pools by name.
    let pools: [String: Pool]
    /// Client-side limits.
    let limits: LimitsConfig
    /// 1 for the file read at start, one more for each reload that took.
    let generation: Int
    /// When this generation was loaded (seconds since the epoch).
    let loadedAt: Double

    init(config: JunctionConfig, pools: [String: Pool], generation: Int = 1) {
        self.config = config
        self.pools = pools
        self.limits = config.limits
        self.generation = generation
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        self.loadedAt = Double(now.tv_sec) + Double(now.tv_nsec) / 1e9
        self.routes = RouteTable(
            routes: config.routes.compactMap { route in
                pools[route.pool].map { Route(config: route, pool: $0) }
            }
        )
    }

    /// Builds pools from the config, resolving backend host names to all their addresses. Throws a
    /// `ConfigError` naming every backend that does not resolve. Backends of `previous` (a reload)
    /// with the same pool, address, weight and checking are kept, with their counts and health.
    static func make(
        config: JunctionConfig,
        loopCount: Int = 1,
        previous: RuntimeConfig? = nil
    ) throws(ConfigError)
        -> RuntimeConfig
    {
        var pools: [String: Pool] = [:]
        var problems: [ConfigDiagnostic] = []
        for poolConfig in config.pools {
            var backends: [Backend] = []
            for (index, backendConfig) in poolConfig.backends.enumerated() {
                let addresses: [SocketAddress]
                do {
                    addresses = try BackendResolver.resolve(backendConfig.address)
                } catch {
                    problems.append(
                        ConfigDiagnostic(
                            severity: .error,
                            location: backendConfig.location,
                            path: "pools.\(poolConfig.name).backends[\(index)].address",
                            message: "\(error)"
                        )
                    )
                    continue
                }
                for address in addresses {
                    let label = BackendResolver.label(address, fallback: backendConfig.address)
                    let previousPool = previous?.pools[poolConfig.name]
                    if previousPool?.healthCheck == poolConfig.healthCheck,
                        let kept = previousPool?.backends.first(where: {
                            $0.label == label && $0.configuredAddress == backendConfig.address.description
                                && $0.weight == backendConfig.weight
                                && $0.isActivelyChecked == (poolConfig.healthCheck != nil)
                        })
                    {
                        backends.append(kept)
                        continue
                    }
                    backends.append(
                        Backend(
                            address: address,
                            label: label,
                            weight: backendConfig.weight,
                            poolName: poolConfig.name,
                            configuredAddress: backendConfig.address.description,
                            healthCheck: poolConfig.healthCheck
                        )
                    )
                }
            }
            let balancer: any Balancer =
                switch poolConfig.balance {
                case .leastConn: LeastConnectionsBalancer()
                case .roundRobin: RoundRobinBalancer()
                }
            pools[poolConfig.name] = Pool(
                name: poolConfig.name,
                backends: backends,
                balancer: balancer,
                affinity: poolConfig.affinity,
                timeouts: poolConfig.timeouts,
                retries: poolConfig.retries,
                healthCheck: poolConfig.healthCheck,
                loopCount: loopCount
            )
        }
        if !problems.isEmpty { throw ConfigError(diagnostics: problems) }
        return RuntimeConfig(config: config, pools: pools, generation: (previous?.generation ?? 0) + 1)
    }
}

/// The configuration generation the control plane works with (admin, health checks, discovery);
/// a reload replaces it. The data path reads its event loop's own copy instead (`LoopContext.runtime`).
final class RuntimeBox: Sendable {
    private let storage: Mutex<RuntimeConfig>

    init(_ runtime: RuntimeConfig) {
        self.storage = Mutex(runtime)
    }

    var current: RuntimeConfig { self.storage.withLock { $0 } }

    func replace(with runtime: RuntimeConfig) {
        self.storage.withLock { $0 = runtime }
    }
}

/// Resolves backend addresses (`host:port`) to socket addresses.
enum BackendResolver {
    /// A failed resolution, as one line.
    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    /// Whether `host` is an IP literal (nothing to resolve, nothing to re-resolve).
    static func isLiteral(_ host: String) -> Bool {
        (try? SocketAddress(ipAddress: host, port: 0)) != nil
    }

    /// Every address of `hostPort` (an IP literal gives itself).
    static func resolve(_ hostPort: HostPort) throws -> [SocketAddress] {
        if let literal = try? SocketAddress(ipAddress: hostPort.host, port: hostPort.port) {
            return [literal]
        }
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_family = AF_UNSPEC
        var results: UnsafeMutablePointer<addrinfo>?
        let status = getaddrinfo(hostPort.host, String(hostPort.port), &hints, &results)
        guard status == 0, let first = results else {
            throw Failure(description: "cannot resolve \(hostPort.host): \(String(cString: gai_strerror(status)))")
        }
        defer { freeaddrinfo(results) }
        var addresses: [SocketAddress] = []
        var cursor: UnsafeMutablePointer<addrinfo>? = first
        while let info = cursor {
            if let raw = info.pointee.ai_addr {
                let address: SocketAddress? =
                    switch Int32(info.pointee.ai_family) {
                    case AF_INET:
                        raw.withMemoryRebound(to: sockaddr_in.self, capacity: 1) {
                            SocketAddress($0.pointee, host: hostPort.host)
                        }
                    case AF_INET6:
                        raw.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) {
                            SocketAddress($0.pointee, host: hostPort.host)
                        }
                    default: nil
                    }
                if let address, !addresses.contains(address) { addresses.append(address) }
            }
            cursor = info.pointee.ai_next
        }
        if addresses.isEmpty {
            throw Failure(description: "\(hostPort.host) has no IPv4 or IPv6 address")
        }
        return addresses
    }

    /// `ip:port` of a resolved address.
    static func label(_ address: SocketAddress, fallback: HostPort) -> String {
        guard let ip = address.ipAddress, let port = address.port else { return fallback.description }
        return HostPort(host: ip, port: port).description
    }
}
