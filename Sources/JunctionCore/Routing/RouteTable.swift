/// One compiled route: its conditions and its pool.
public struct Route: Sendable {
    /// The route's name, for logs.
    public let name: String
    /// Path prefixes without a trailing slash ("/" stays "/"); empty matches any path.
    let prefixes: [String]
    /// Host conditions; empty matches any host.
    let hosts: [HostPattern]
    /// The pool the route sends to.
    public let pool: Pool
    /// Gzip compressible responses.
    public let compress: Bool
    /// `response_headers`, compiled; nil when the route has none.
    let responseHeaders: ResponseHeaderRules?
    /// `limit`: the route's request rate per client (nil: none).
    let limit: RouteLimit?

    init(config: RouteConfig, pool: Pool, limit: RouteLimit? = nil) {
        self.limit = limit
        self.name = config.name
        self.prefixes = config.pathPrefixes.map { prefix in
            var trimmed = Substring(prefix)
            while trimmed.count > 1 && trimmed.hasSuffix("/") { trimmed = trimmed.dropLast() }
            return String(trimmed)
        }
        self.hosts = config.hosts.compactMap(HostPattern.init)
        self.pool = pool
        self.compress = config.compress
        self.responseHeaders = ResponseHeaderRules(config.responseHeaders)
    }

    /// Whether a request for `host` (normalised, may be empty) and routing `path` matches.
    func matches(host: String, path: Substring) -> Bool {
        if !self.hosts.isEmpty && !self.hosts.contains(where: { $0.matches(host) }) {
            return false
        }
        if self.prefixes.isEmpty { return true }
        return self.prefixes.contains { Self.path(path, hasSegmentPrefix: $0) }
    }

    /// `/sockjs` matches `/sockjs`, `/sockjs/` and `/sockjs/x`, not `/sockjsx`.
    static func path(_ path: Substring, hasSegmentPrefix prefix: String) -> Bool {
        if prefix == "/" { return true }
        guard path.utf8.starts(with: prefix.utf8) else { return false }
        let rest = path.utf8.dropFirst(prefix.utf8.count)
        return rest.isEmpty || rest.first == UInt8(ascii: "/")
    }
}

/// The ordered routes of one config generation; the first match wins.
public struct RouteTable: Sendable {
    /// Routes in file order.
    public let routes: [Route]
    /// Whether any route looks at the host (if none does, requests skip normalising it).
    private let usesHosts: Bool
    /// Whether any route has a `limit`.
    let hasLimits: Bool

    public init(routes: [Route]) {
        self.routes = routes
        self.usesHosts = routes.contains { !$0.hosts.isEmpty }
        self.hasLimits = routes.contains { $0.limit != nil }
    }

    /// The first route matching the host (a `Host` header value, may be nil) and the request target.
    public func route(hostHeader: String?, target: String) -> Route? {
        let host = self.usesHosts ? hostHeader.map(HostPattern.normalizedHost) ?? "" : ""
        let path = PathNormalizer.routingPath(of: target)
        return self.routes.first { $0.matches(host: host, path: path) }
    }
}
