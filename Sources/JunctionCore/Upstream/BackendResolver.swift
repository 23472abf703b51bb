import NIOCore

#if canImport(Glibc)
    import Glibc
#endif

/// Turns a configured `host:port` into socket addresses: getaddrinfo in production
/// (`SystemResolver`), a table in unit tests of reloads and DNS discovery.
protocol Resolver: Sendable {
    /// Every address of `hostPort`; throws a one-line error when there is none.
    func resolve(_ hostPort: HostPort) throws -> [SocketAddress]
}

/// The system's resolver (getaddrinfo: /etc/hosts, then DNS); IP literals give themselves.
struct SystemResolver: Resolver {
    func resolve(_ hostPort: HostPort) throws -> [SocketAddress] {
        try BackendResolver.resolve(hostPort)
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

    /// The members a configured backend stands for: one per address its name resolves to.
    static func members(of backend: PoolConfig.Backend, resolver: any Resolver) throws -> [Backends.Member] {
        try resolver.resolve(backend.address).map { address in
            Backends.Member(
                address: address,
                label: self.label(address, fallback: backend.address),
                configuredAddress: backend.address.description,
                weight: backend.weight
            )
        }
    }

    /// `ip:port` of a resolved address.
    static func label(_ address: SocketAddress, fallback: HostPort) -> String {
        guard let ip = address.ipAddress, let port = address.port else { return fallback.description }
        return HostPort(host: ip, port: port).description
    }
}
