import NIOCore
import Yams

/// Walks the node tree of one config file into a `JunctionConfig`.
final class ConfigFileDecoder {
    let reader: ConfigReader
    let baseDirectory: String
    /// The `pool:` value of each route, for the unknown-pool check once all pools are read.
    private var routePoolNodes: [(pool: String, node: ConfigNode)] = []

    init(reader: ConfigReader, baseDirectory: String) {
        self.reader = reader
        self.baseDirectory = baseDirectory
    }

    func decode(_ root: ConfigNode) -> JunctionConfig {
        var config = JunctionConfig()
        let topKeys = ["threads", "listeners", "admin", "routes", "pools", "discovery", "limits", "logging"]
        guard let entries = self.reader.mapping(root, allowed: topKeys) else { return config }
        var seen: [String: ConfigNode] = [:]
        for (key, value) in entries {
            seen[key] = value
            switch key {
            case "threads":
                config.threads = self.reader.int(value, in: 0...1024) ?? 0
            case "listeners":
                config.listeners = self.listeners(value)
            case "admin":
                config.admin = self.admin(value)
            case "routes":
                config.routes = self.routes(value)
            case "pools":
                config.pools = self.pools(value)
            case "discovery":
                config.discovery = self.discovery(value)
            case "limits":
                config.limits = self.limits(value)
            case "logging":
                config.logging = self.logging(value)
            default:
                break
            }
        }
        for required in ["listeners", "routes", "pools"] where seen[required] == nil {
            self.reader.error(root, "missing required key \"\(required)\"")
        }
        self.crossCheck(config, seen: seen)
        return config
    }

    // MARK: listeners

    private func listeners(_ node: ConfigNode) -> [ListenerConfig] {
        guard let elements = self.reader.sequence(node) else { return [] }
        if elements.isEmpty { self.reader.error(node, "needs at least one listener") }
        var result: [ListenerConfig] = []
        var names: [String: ConfigNode] = [:]
        var addresses: [HostPort: ConfigNode] = [:]
        for element in elements {
            guard let listener = self.listener(element) else { continue }
            if let first = names[listener.name] {
                self.reader.error(
                    element,
                    "duplicate listener name \"\(listener.name)\" (first at \(first.location?.description ?? first.path))"
                )
            }
            if listener.address.port != 0, let first = addresses[listener.address] {
                self.reader.error(element, "address \(listener.address) is already used by \(first.path)")
            }
            names[listener.name] = element
            addresses[listener.address] = element
            result.append(listener)
        }
        return result
    }

    private func listener(_ node: ConfigNode) -> ListenerConfig? {
        let keys = ["name", "address", "tls", "http2", "proxy_protocol", "redirect_https"]
        guard let entries = self.reader.mapping(node, allowed: keys) else { return nil }
        var name: String?
        var address: HostPort?
        var tls: TLSConfig?
        var http2 = false
        var proxyProtocol = false
        var redirect: (Int, ConfigNode)?
        var ok = true
        for (key, value) in entries {
            switch key {
            case "name": name = self.reader.string(value)
            case "address":
                address = self.reader.hostPort(value, allowPortZero: true)
                if address == nil { ok = false }
            case "tls":
                tls = self.tls(value)
                if tls == nil { ok = false }
            case "http2":
                http2 = self.reader.bool(value) ?? false
            case "proxy_protocol":
                proxyProtocol = self.reader.bool(value) ?? false
            case "redirect_https":
                if let port = self.reader.int(value, in: 1...65535) {
                    redirect = (port, value)
                }
            default: break
            }
        }
        guard let address else {
            if ok { self.reader.error(node, "missing required key \"address\"") }
            return nil
        }
        if let (_, redirectNode) = redirect, tls != nil {
            self.reader.error(redirectNode, "redirect_https belongs on a plain listener, this one has tls")
        }
        var listener = ListenerConfig(name: name ?? address.description, address: address)
        listener.tls = tls
        listener.http2 = http2
        listener.proxyProtocol = proxyProtocol
        listener.redirectHTTPS = redirect?.0
        return ok ? listener : nil
    }

    private func tls(_ node: ConfigNode) -> TLSConfig? {
        guard let entries = self.reader.mapping(node, allowed: ["certificates", "acme", "min_version", "ciphers"])
        else {
            return nil
        }
        var tls = TLSConfig()
        var sawCertificates = false
        var acmeFailed = false
        for (key, value) in entries {
            switch key {
            case "acme":
                tls.acme = ACMEConfigDecoder(reader: self.reader, resolvePath: self.resolvePath).decode(value)
                acmeFailed = tls.acme == nil
            case "certificates":
                sawCertificates = true
                guard let elements = self.reader.sequence(value) else { continue }
                if elements.isEmpty { self.reader.error(value, "needs at least one certificate") }
                for element in elements {
                    guard let pair = self.reader.mapping(element, allowed: ["cert", "key"]) else { continue }
                    var cert: String?
                    var key: String?
                    for (pairKey, pairValue) in pair {
                        let path = self.reader.string(pairValue).map(self.resolvePath)
                        if pairKey == "cert" { cert = path } else { key = path }
                    }
                    if cert == nil && !pair.contains(where: { $0.key == "cert" }) {
                        self.reader.error(element, "missing required key \"cert\"")
                    }
                    if key == nil && !pair.contains(where: { $0.key == "key" }) {
                        self.reader.error(element, "missing required key \"key\"")
                    }
                    if let cert, let key {
                        tls.certificates.append(
                            TLSConfig.Certificate(
                                certPath: cert,
                                keyPath: key,
                                location: element.location,
                                configPath: element.path
                            )
                        )
                    }
                }
            case "min_version":
                // Accept both `"1.2"` and an unquoted `1.2`, which YAML reads as a number.
                guard case .scalar(let scalar) = value.node,
                    let version = TLSConfig.MinimumVersion(rawValue: scalar.string)
                else {
                    self.reader.error(value, "expected \"1.2\" or \"1.3\", got \(value.kindDescription)")
                    continue
                }
                tls.minVersion = version
            case "ciphers":
                guard let ciphers = self.reader.string(value) else { continue }
                // BoringSSL must never see a list it selects nothing from (swift-nio-ssl traps on it).
                if case .failure(let problem) = TLSCipherList.selection(ciphers) {
                    self.reader.error(value, "\(problem)")
                    continue
                }
                tls.ciphers = ciphers
                tls.ciphersLocation = value.location
                tls.ciphersPath = value.path
            default: break
            }
        }
        if !sawCertificates && tls.acme == nil && !acmeFailed {
            self.reader.error(node, "missing required key \"certificates\" (or \"acme\")")
        }
        return tls.certificates.isEmpty && tls.acme == nil ? nil : tls
    }

    private func admin(_ node: ConfigNode) -> AdminConfig? {
        guard let entries = self.reader.mapping(node, allowed: ["address", "token_file"]) else { return nil }
        var admin = AdminConfig()
        for (key, value) in entries {
            switch key {
            case "address":
                if let address = self.reader.hostPort(value, allowPortZero: true) { admin.address = address }
            default:
                guard let path = self.reader.string(value) else { continue }
                let resolved = self.resolvePath(path)
                admin.tokenFile = resolved
                admin.token = self.token(readFrom: resolved, node: value)
            }
        }
        return admin
    }

    /// The admin token: the first line of the file, without surrounding spaces; at least 16
    /// characters, so it cannot be guessed in a few tries.
    private func token(readFrom path: String, node: ConfigNode) -> AdminToken? {
        let text: String
        do {
            text = try ConfigLoader.readFile(path)
        } catch {
            self.reader.error(node, "\(path): \(error)")
            return nil
        }
        // Bytes, not Characters: "\r\n" is one Character.
        let isBlank: (UInt8) -> Bool = { $0 == 0x20 || $0 == 0x09 }
        var token = Array(text.utf8.prefix { $0 != 0x0A && $0 != 0x0D })[...]
        while let first = token.first, isBlank(first) { token.removeFirst() }
        while let last = token.last, isBlank(last) { token.removeLast() }
        guard token.count >= 16 else {
            self.reader.error(node, "\(path): the token (the file's first line) must be at least 16 characters")
            return nil
        }
        guard token.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else {
            self.reader.error(node, "\(path): the token must be printable ASCII without spaces (it goes in a header)")
            return nil
        }
        return AdminToken(String(decoding: token, as: UTF8.self))
    }

    // MARK: routes

    private func routes(_ node: ConfigNode) -> [RouteConfig] {
        guard let elements = self.reader.sequence(node) else { return [] }
        if elements.isEmpty { self.reader.error(node, "needs at least one route") }
        var result: [RouteConfig] = []
        var names: [String: ConfigNode] = [:]
        var catchAll: ConfigNode?
        for element in elements {
            guard let route = self.route(element) else { continue }
            if let first = names[route.name] {
                self.reader.error(
                    element,
                    "duplicate route name \"\(route.name)\" (first at \(first.location?.description ?? first.path))"
                )
            }
            if let catchAll {
                self.reader.warning(
                    element,
                    "route \"\(route.name)\" is never used: \(catchAll.path) above it matches every request"
                )
            }
            if route.pathPrefixes.isEmpty && route.hosts.isEmpty && catchAll == nil { catchAll = element }
            names[route.name] = element
            result.append(route)
        }
        return result
    }

    private func route(_ node: ConfigNode) -> RouteConfig? {
        guard
            let entries = self.reader.mapping(
                node,
                allowed: ["name", "match", "pool", "compress", "response_headers", "limit"]
            )
        else {
            return nil
        }
        var name: String?
        var pool: String?
        var prefixes: [String] = []
        var hosts: [String] = []
        var compress = false
        var responseHeaders: [ResponseHeaderSetting] = []
        var limit: RequestRate?
        var ok = true
        for (key, value) in entries {
            switch key {
            case "name": name = self.reader.string(value)
            case "limit":
                guard let rateEntries = self.reader.mapping(value, allowed: ["requests_per_second", "burst"]),
                    let rate = self.requestRate(rateEntries, at: value, required: true)
                else {
                    ok = false
                    continue
                }
                limit = rate
            case "pool":
                pool = self.reader.string(value)
                if pool == nil { ok = false }
            case "compress":
                compress = self.reader.bool(value) ?? false
            case "response_headers":
                guard let headers = self.responseHeaders(value) else {
                    ok = false
                    continue
                }
                responseHeaders = headers
            case "match":
                guard let match = self.reader.mapping(value, allowed: ["path_prefix", "host"]) else {
                    ok = false
                    continue
                }
                for (matchKey, matchValue) in match {
                    guard let list = self.reader.stringList(matchValue) else {
                        ok = false
                        continue
                    }
                    if matchKey == "path_prefix" {
                        for prefix in list where !prefix.hasPrefix("/") {
                            self.reader.error(matchValue, "a path prefix must start with \"/\", got \"\(prefix)\"")
                            ok = false
                        }
                        prefixes = list
                    } else {
                        for host in list where HostPattern(host) == nil {
                            self.reader.error(matchValue, "expected a host name or *.suffix, got \"\(host)\"")
                            ok = false
                        }
                        hosts = list
                    }
                }
            default: break
            }
        }
        guard let pool else {
            if ok { self.reader.error(node, "missing required key \"pool\"") }
            return nil
        }
        var route = RouteConfig(
            name: name ?? "route\(node.path.split(separator: "[").last.map { "[\($0)" } ?? "")",
            pool: pool
        )
        route.pathPrefixes = prefixes
        route.hosts = hosts
        route.compress = compress
        route.responseHeaders = responseHeaders
        route.limit = limit
        if let poolNode = entries.first(where: { $0.key == "pool" })?.value {
            self.routePoolNodes.append((pool, poolNode))
        }
        return ok ? route : nil
    }

    /// A route's `response_headers`: names and values checked (`ResponseHeaderSyntax`), file
    /// order kept, a name given twice in another case refused. Nil when any entry is wrong.
    private func responseHeaders(_ node: ConfigNode) -> [ResponseHeaderSetting]? {
        guard case .mapping(let mapping) = node.node else {
            self.reader.error(node, "expected a mapping of header name to value, got \(node.kindDescription)")
            return nil
        }
        var result: [ResponseHeaderSetting] = []
        var seen: [String: ConfigNode] = [:]
        var ok = true
        for (keyNode, valueNode) in mapping {
            guard case .scalar(let keyScalar) = keyNode else {
                self.reader.error(ConfigNode(node: keyNode, path: node.path, file: node.file), "expected a header name")
                ok = false
                continue
            }
            let name = keyScalar.string
            let value = node.child(name, node: valueNode)
            // Name problems point at the name, value problems at the value.
            let key = ConfigNode(node: keyNode, path: value.path, file: node.file)
            if let problem = ResponseHeaderSyntax.nameProblem(name) {
                self.reader.error(key, problem)
                ok = false
                continue
            }
            if let first = seen[name.lowercased()] {
                self.reader.error(
                    key,
                    "duplicate header name (names are case-insensitive; first at \(first.location?.description ?? first.path))"
                )
                ok = false
                continue
            }
            seen[name.lowercased()] = key
            guard let text = self.reader.string(value, allowEmpty: true) else {
                ok = false
                continue
            }
            if let problem = ResponseHeaderSyntax.valueProblem(text) {
                self.reader.error(value, problem)
                ok = false
                continue
            }
            result.append(ResponseHeaderSetting(name: name, value: text))
        }
        return ok ? result : nil
    }

    // MARK: pools

    private func pools(_ node: ConfigNode) -> [PoolConfig] {
        guard let entries = self.reader.mapping(node, allowed: []) else { return [] }
        if entries.isEmpty { self.reader.error(node, "needs at least one pool") }
        return entries.compactMap { self.pool(name: $0.key, $0.value) }
    }

    private func pool(name: String, _ node: ConfigNode) -> PoolConfig? {
        let keys = [
            "balance", "affinity", "backends", "health_check", "timeouts", "retries", "drain_rate", "rebalance",
        ]
        guard let entries = self.reader.mapping(node, allowed: keys) else { return nil }
        var pool = PoolConfig(name: name)
        var sawBackends = false
        for (key, value) in entries {
            switch key {
            case "balance":
                pool.balance = self.reader.choice(value, as: BalancePolicy.self) ?? .leastConn
            case "affinity":
                pool.affinity = self.reader.choice(value, as: AffinityPolicy.self) ?? .none
            case "backends":
                sawBackends = true
                pool.backends = self.backends(value)
            case "health_check":
                pool.healthCheck = self.healthCheck(value)
            case "timeouts":
                pool.timeouts = self.timeouts(value)
            case "retries":
                pool.retries = self.reader.int(value, in: 0...10) ?? 2
            case "drain_rate":
                let rate = self.reader.number(value, in: 0...10_000) ?? 20
                if rate > 0 && rate < 0.01 {
                    self.reader.error(value, "must be 0 (leave tunnels open) or at least 0.01, got \(rate)")
                }
                pool.drainRate = rate
            case "rebalance":
                pool.rebalance = self.reader.choice(value, as: RebalanceMode.self) ?? .manual
            default: break
            }
        }
        if !sawBackends { self.reader.error(node, "missing required key \"backends\"") }
        return pool
    }

    private func backends(_ node: ConfigNode) -> [PoolConfig.Backend] {
        guard let elements = self.reader.sequence(node) else { return [] }
        if elements.isEmpty { self.reader.error(node, "needs at least one backend") }
        var result: [PoolConfig.Backend] = []
        var seen: [HostPort: ConfigNode] = [:]
        for element in elements {
            guard let entries = self.reader.mapping(element, allowed: ["address", "weight"]) else { continue }
            var address: HostPort?
            var addressLocation: ConfigLocation?
            var weight = 1
            var sawAddress = false
            for (key, value) in entries {
                if key == "address" {
                    sawAddress = true
                    addressLocation = value.location
                    address = self.reader.hostPort(value)
                    if let address, let first = seen[address] {
                        self.reader.error(value, "duplicate backend \(address) (also \(first.path))")
                    }
                    if let address { seen[address] = value }
                } else {
                    weight = self.reader.int(value, in: 1...100) ?? 1
                }
            }
            if !sawAddress { self.reader.error(element, "missing required key \"address\"") }
            if let address {
                result.append(PoolConfig.Backend(address: address, weight: weight, location: addressLocation))
            }
        }
        return result
    }

    private func healthCheck(_ node: ConfigNode) -> HealthCheckConfig? {
        let keys = ["path", "interval", "timeout", "healthy_threshold", "unhealthy_threshold", "expect_status"]
        guard let entries = self.reader.mapping(node, allowed: keys) else { return nil }
        var check = HealthCheckConfig()
        var timeoutNode: ConfigNode?
        for (key, value) in entries {
            switch key {
            case "path":
                if let path = self.reader.string(value) {
                    if path.hasPrefix("/") {
                        check.path = path
                    } else {
                        self.reader.error(value, "a health check path must start with \"/\", got \"\(path)\"")
                    }
                }
            case "interval": check.interval = self.reader.duration(value) ?? check.interval
            case "timeout":
                check.timeout = self.reader.duration(value) ?? check.timeout
                timeoutNode = value
            case "healthy_threshold": check.healthyThreshold = self.reader.int(value, in: 1...100) ?? 2
            case "unhealthy_threshold": check.unhealthyThreshold = self.reader.int(value, in: 1...100) ?? 3
            case "expect_status":
                guard case .scalar(let scalar) = value.node, let set = ConfigValueParser.statusSet(scalar.string) else {
                    self.reader.error(
                        value,
                        "expected a status, a range like 200-399, or a comma list, got \(value.kindDescription)"
                    )
                    continue
                }
                check.expectStatus = set
            default: break
            }
        }
        if check.timeout > check.interval {
            self.reader.error(
                timeoutNode ?? node,
                "timeout (\(check.timeout.configText)) must not exceed interval (\(check.interval.configText))"
            )
        }
        return check
    }

    private func timeouts(_ node: ConfigNode) -> UpstreamTimeouts {
        var timeouts = UpstreamTimeouts()
        guard let entries = self.reader.mapping(node, allowed: ["connect", "response", "idle", "tunnel_idle"]) else {
            return timeouts
        }
        for (key, value) in entries {
            guard let duration = self.reader.duration(value) else { continue }
            switch key {
            case "connect": timeouts.connect = duration
            case "response": timeouts.response = duration
            case "idle": timeouts.idle = duration
            case "tunnel_idle":
                timeouts.tunnelIdle = duration
                if duration < .seconds(60) {
                    self.reader.warning(
                        value,
                        "DDP clients ping about every 30 s; a tunnel_idle under 60s closes live WebSockets"
                    )
                }
            default: break
            }
        }
        return timeouts
    }

    // MARK: the rest

    private func discovery(_ node: ConfigNode) -> DiscoveryConfig {
        var discovery = DiscoveryConfig()
        guard let entries = self.reader.mapping(node, allowed: ["dns_refresh"]) else { return discovery }
        for (_, value) in entries {
            discovery.dnsRefresh = self.reader.duration(value) ?? discovery.dnsRefresh
        }
        return discovery
    }

    private func limits(_ node: ConfigNode) -> LimitsConfig {
        var limits = LimitsConfig()
        let keys = [
            "max_header_bytes", "max_body_bytes", "client_header_timeout", "client_idle_timeout", "max_connections",
            "shutdown_grace", "per_client",
        ]
        guard let entries = self.reader.mapping(node, allowed: keys) else { return limits }
        for (key, value) in entries {
            switch key {
            case "max_header_bytes":
                guard let size = self.reader.size(value) else { continue }
                if size < 1024 || size > 16 << 20 {
                    self.reader.error(value, "must be between 1KiB and 16MiB")
                } else {
                    limits.maxHeaderBytes = Int(size)
                }
            case "max_body_bytes": limits.maxBodyBytes = self.reader.size(value) ?? 0
            case "client_header_timeout":
                limits.clientHeaderTimeout = self.reader.duration(value) ?? limits.clientHeaderTimeout
            case "client_idle_timeout":
                limits.clientIdleTimeout = self.reader.duration(value) ?? limits.clientIdleTimeout
            case "max_connections": limits.maxConnections = self.reader.int(value, in: 0...10_000_000) ?? 0
            case "shutdown_grace": limits.shutdownGrace = self.reader.duration(value) ?? limits.shutdownGrace
            case "per_client": limits.perClient = self.perClient(value)
            default: break
            }
        }
        return limits
    }

    /// `limits.per_client`.
    private func perClient(_ node: ConfigNode) -> PerClientLimits {
        var limits = PerClientLimits()
        let keys = ["max_connections", "max_tunnels", "requests_per_second", "burst"]
        guard let entries = self.reader.mapping(node, allowed: keys) else { return limits }
        for (key, value) in entries {
            switch key {
            case "max_connections": limits.maxConnections = self.reader.int(value, in: 0...1_000_000) ?? 0
            case "max_tunnels": limits.maxTunnels = self.reader.int(value, in: 0...1_000_000) ?? 0
            default: break
            }
        }
        limits.rate = self.requestRate(entries, at: node, required: false) ?? RequestRate()
        return limits
    }

    /// `requests_per_second` and `burst` among a mapping's `entries` (a route's `limit`,
    /// `limits.per_client`). `required`: a route's `limit` must give a rate above 0 (it has nothing
    /// else to say).
    private func requestRate(
        _ entries: [(key: String, value: ConfigNode)],
        at node: ConfigNode,
        required: Bool
    ) -> RequestRate? {
        var rate = RequestRate()
        var burstNode: ConfigNode?
        for (key, value) in entries {
            if key == "requests_per_second" {
                guard let number = self.reader.number(value, in: 0...1_000_000) else { return nil }
                // Below one request in 1,000 s a bucket's arithmetic leaves 64 bits; 0 is off.
                if number > 0 && number < 0.001 {
                    self.reader.error(value, "must be 0 (off) or at least 0.001, got \(number)")
                    return nil
                }
                rate.requestsPerSecond = number
            } else if key == "burst" {
                guard let burst = self.reader.int(value, in: 0...1_000_000) else { return nil }
                rate.burst = burst
                burstNode = value
            }
        }
        if required && !rate.isOn {
            self.reader.error(node, "a route's limit needs requests_per_second above 0")
            return nil
        }
        if let burstNode, rate.burst > 0, !rate.isOn {
            self.reader.error(burstNode, "burst needs requests_per_second above 0")
            return nil
        }
        return rate
    }

    private func logging(_ node: ConfigNode) -> LoggingConfig {
        var logging = LoggingConfig()
        guard let entries = self.reader.mapping(node, allowed: ["level", "format", "access_log"]) else {
            return logging
        }
        for (key, value) in entries {
            switch key {
            case "level":
                let levels = ["trace", "debug", "info", "warning", "error"]
                if let level = self.reader.string(value) {
                    if levels.contains(level) {
                        logging.level = level
                    } else {
                        self.reader.error(value, "expected one of \(levels.joined(separator: " | ")), got \"\(level)\"")
                    }
                }
            case "format":
                logging.format = self.reader.choice(value, as: LoggingConfig.Format.self) ?? .text
            case "access_log":
                // `off` unquoted is a YAML 1.1 boolean, so false means off too.
                if value.node.tagName == .bool, value.node.bool == false {
                    logging.accessLog = .off
                } else if let target = self.reader.string(value) {
                    switch target {
                    case "stdout": logging.accessLog = .stdout
                    case "off": logging.accessLog = .off
                    default: logging.accessLog = .file(self.resolvePath(target))
                    }
                }
            default: break
            }
        }
        return logging
    }

    // MARK: cross references

    private func crossCheck(_ config: JunctionConfig, seen: [String: ConfigNode]) {
        let poolNames = Set(config.pools.map(\.name))
        var used: Set<String> = []
        for (pool, node) in self.routePoolNodes {
            used.insert(pool)
            if !poolNames.contains(pool) {
                let known = config.pools.map(\.name).joined(separator: ", ")
                self.reader.error(node, "unknown pool \"\(pool)\" (pools: \(known))")
            }
        }
        if let poolsNode = seen["pools"], case .mapping(let mapping) = poolsNode.node {
            for (keyNode, _) in mapping {
                guard let name = keyNode.scalar?.string, !used.contains(name) else { continue }
                let node = ConfigNode(node: keyNode, path: "pools.\(name)", file: poolsNode.file)
                self.reader.warning(node, "no route uses this pool")
            }
        }
        if let admin = config.admin, let adminNode = seen["admin"], admin.address.port != 0,
            config.listeners.contains(where: { $0.address == admin.address })
        {
            self.reader.error(adminNode, "admin address \(admin.address) is also a listener's address")
        }
    }

    private func resolvePath(_ path: String) -> String {
        if path.hasPrefix("/") || self.baseDirectory == "." { return path }
        return "\(self.baseDirectory)/\(path)"
    }
}

extension TimeAmount {
    /// The duration in the config file's own syntax, for messages.
    var configText: String {
        let ns = self.nanoseconds
        if ns % 3_600_000_000_000 == 0 { return "\(ns / 3_600_000_000_000)h" }
        if ns % 60_000_000_000 == 0 { return "\(ns / 60_000_000_000)m" }
        if ns % 1_000_000_000 == 0 { return "\(ns / 1_000_000_000)s" }
        return "\(ns / 1_000_000)ms"
    }
}
