import NIOCore

/// The validated configuration file: every key of the contract, with its default filled in.
///
/// Built by `ConfigLoader` from YAML; immutable once loaded. Paths are already resolved against the
/// directory of the config file.
public struct JunctionConfig: Sendable, Equatable {
    /// Event-loop threads; 0 means one per CPU core.
    public var threads: Int = 0
    /// The client-facing listeners, at least one.
    public var listeners: [ListenerConfig] = []
    /// The admin listener, if configured.
    public var admin: AdminConfig? = nil
    /// Routes in order; the first match wins.
    public var routes: [RouteConfig] = []
    /// Upstream pools by name, in file order.
    public var pools: [PoolConfig] = []
    /// DNS re-resolution of backend host names.
    public var discovery: DiscoveryConfig = DiscoveryConfig()
    /// Client-side limits and timeouts.
    public var limits: LimitsConfig = LimitsConfig()
    /// Application and access logging.
    public var logging: LoggingConfig = LoggingConfig()

    public init() {}

    /// The pool called `name`, if any.
    public func pool(named name: String) -> PoolConfig? {
        self.pools.first { $0.name == name }
    }

    /// The number of event-loop threads to run: `threads`, or the core count when it is 0.
    public var effectiveThreads: Int {
        self.threads > 0 ? self.threads : System.coreCount
    }
}

/// A `host:port` pair as written in the file, with the host kept as text for resolution later.
public struct HostPort: Sendable, Hashable, CustomStringConvertible {
    /// The host: an IPv4 or IPv6 literal (without brackets) or a DNS name.
    public var host: String
    /// The TCP port, 1...65535 (0 only for listeners, meaning any free port).
    public var port: Int

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    /// `host:port`, with brackets around an IPv6 literal.
    public var description: String {
        self.host.contains(":") ? "[\(self.host)]:\(self.port)" : "\(self.host):\(self.port)"
    }
}

/// One client-facing listener.
public struct ListenerConfig: Sendable, Equatable {
    /// The listener's name (defaults to its address).
    public var name: String
    /// Where it binds.
    public var address: HostPort
    /// TLS termination; nil means plain HTTP.
    public var tls: TLSConfig? = nil
    /// Offer HTTP/2 (ALPN h2 on TLS, h2c prior knowledge on plain).
    public var http2: Bool = false
    /// Expect a PROXY protocol header on every connection.
    public var proxyProtocol: Bool = false
    /// Answer everything with a 308 to https on this port.
    public var redirectHTTPS: Int? = nil

    public init(name: String, address: HostPort) {
        self.name = name
        self.address = address
    }
}

/// TLS settings of a listener.
public struct TLSConfig: Sendable, Equatable {
    /// One certificate chain and key, picked by SNI.
    public struct Certificate: Sendable, Equatable {
        /// PEM certificate chain path, resolved against the config file's directory.
        public var certPath: String
        /// PEM private key path, resolved against the config file's directory.
        public var keyPath: String
        /// Where the entry is in the file, for error messages.
        public var location: ConfigLocation?
        /// The entry's key path, e.g. `listeners[0].tls.certificates[1]`.
        public var configPath: String

        public init(certPath: String, keyPath: String, location: ConfigLocation? = nil, configPath: String = "") {
            self.certPath = certPath
            self.keyPath = keyPath
            self.location = location
            self.configPath = configPath
        }
    }

    /// The lowest TLS version accepted.
    public enum MinimumVersion: String, Sendable, Equatable {
        case tls12 = "1.2"
        case tls13 = "1.3"
    }

    /// Certificates; the first is the default when SNI matches none.
    public var certificates: [Certificate] = []
    /// A certificate obtained and renewed automatically; the default when `certificates` is empty.
    public var acme: ACMEConfig? = nil
    /// The lowest protocol version accepted; never below 1.2.
    public var minVersion: MinimumVersion = .tls12
    /// TLS 1.2 cipher suites in OpenSSL syntax (nil: `TLSContextSet.intermediateCiphers`, Mozilla's
    /// "intermediate" profile); TLS 1.3's suites are fixed.
    public var ciphers: String? = nil
    /// Where `ciphers` is in the file, and its key path, for error messages.
    public var ciphersLocation: ConfigLocation? = nil
    public var ciphersPath: String = ""

    public init() {}
}

/// The bearer token of the admin write endpoints; never printed.
public struct AdminToken: Sendable, Equatable, CustomStringConvertible {
    let bytes: [UInt8]

    public init(_ text: String) {
        self.bytes = Array(text.utf8)
    }

    public var description: String { "<admin token>" }

    /// Whether `candidate` is the token, in time that depends on the candidate's length only (no
    /// early exit at the first differing byte).
    func matches<Bytes: Collection<UInt8>>(_ candidate: Bytes) -> Bool {
        guard !self.bytes.isEmpty else { return false }
        var difference = candidate.count ^ self.bytes.count
        var index = 0
        for byte in candidate {
            difference |= Int(byte ^ self.bytes[index % self.bytes.count])
            index += 1
        }
        return difference == 0
    }
}

/// The admin listener.
public struct AdminConfig: Sendable, Equatable {
    /// Where the admin endpoints are served; loopback by default.
    public var address: HostPort = HostPort(host: "127.0.0.1", port: 9901)
    /// The file the write endpoints' bearer token was read from (its first line), if any.
    public var tokenFile: String? = nil
    /// The token; nil: every write answers 403.
    public var token: AdminToken? = nil

    public init() {}
}

/// One route: a match and the pool it sends to.
public struct RouteConfig: Sendable, Equatable {
    /// The route's name, for logs and metrics.
    public var name: String
    /// Path prefixes matched at a segment boundary; empty matches every path.
    public var pathPrefixes: [String] = []
    /// Host patterns (exact or `*.suffix`); empty matches every host.
    public var hosts: [String] = []
    /// The pool requests go to.
    public var pool: String
    /// Gzip compressible responses the upstream left uncompressed.
    public var compress: Bool = false
    /// `response_headers`, in file order: set on every response of the route (an empty value
    /// removes the field). Names are unique, compared case-insensitively.
    public var responseHeaders: [ResponseHeaderSetting] = []
    /// `limit`: a request rate per client on this route, on top of `limits.per_client` (nil: none).
    public var limit: RequestRate?

    public init(name: String, pool: String) {
        self.name = name
        self.pool = pool
    }
}

/// One `response_headers` entry of a route: the field's name as written, and its value (empty:
/// the field is removed).
public struct ResponseHeaderSetting: Sendable, Equatable {
    /// The field name as written in the file (an RFC 9110 token).
    public var name: String
    /// The field value; empty removes every field of that name.
    public var value: String

    public init(name: String, value: String) {
        self.name = name
        self.value = value
    }
}

/// How a pool picks a backend.
public enum BalancePolicy: String, Sendable, Equatable, CaseIterable {
    case leastConn = "least_conn"
    case roundRobin = "round_robin"
}

/// When a pool moves open tunnels to backends below their share.
public enum RebalanceMode: String, Sendable, Equatable, CaseIterable {
    /// Only on `POST /pools/{pool}/rebalance`.
    case manual
    /// Also by itself when a backend joins or comes back healthy.
    case auto
}

/// Whether a pool keeps a client on one backend.
public enum AffinityPolicy: String, Sendable, Equatable, CaseIterable {
    case none
    case sockjs
    case cookie
}

/// One upstream pool.
public struct PoolConfig: Sendable, Equatable {
    /// One configured backend address.
    public struct Backend: Sendable, Equatable {
        /// host:port; a host name resolves to all its addresses.
        public var address: HostPort
        /// Relative weight, 1...100.
        public var weight: Int = 1
        /// Where the address is in the file, for resolution errors.
        public var location: ConfigLocation? = nil

        public init(address: HostPort, weight: Int = 1, location: ConfigLocation? = nil) {
            self.address = address
            self.weight = weight
            self.location = location
        }
    }

    /// The pool's name as written under `pools:`.
    public var name: String
    /// Balancing policy.
    public var balance: BalancePolicy = .leastConn
    /// Session affinity.
    public var affinity: AffinityPolicy = .none
    /// Backends, at least one.
    public var backends: [Backend] = []
    /// Active health checking; nil means backends are always considered healthy.
    public var healthCheck: HealthCheckConfig? = nil
    /// Upstream timeouts.
    public var timeouts: UpstreamTimeouts = UpstreamTimeouts()
    /// How many other backends are tried after a failure.
    public var retries: Int = 2
    /// Tunnels closed per second on a draining backend or in a rebalance; 0: left to end.
    public var drainRate: Double = 20
    /// When tunnels are rebalanced.
    public var rebalance: RebalanceMode = .manual

    public init(name: String) {
        self.name = name
    }
}

/// Active health check settings of a pool.
public struct HealthCheckConfig: Sendable, Equatable {
    /// The path checked with GET.
    public var path: String = "/health"
    /// Time between checks of one backend.
    public var interval: TimeAmount = .seconds(5)
    /// Time a check may take.
    public var timeout: TimeAmount = .seconds(2)
    /// Consecutive passes that bring a backend back.
    public var healthyThreshold: Int = 2
    /// Consecutive failures that take a backend down.
    public var unhealthyThreshold: Int = 3
    /// Statuses that count as a pass.
    public var expectStatus: StatusSet = StatusSet(ranges: [200...399])

    public init() {}
}

/// A set of HTTP status codes: codes and ranges, as in `200-399` or `200,204,300-302`.
public struct StatusSet: Sendable, Equatable {
    /// The accepted ranges (a single code is a one-element range).
    public var ranges: [ClosedRange<Int>]

    public init(ranges: [ClosedRange<Int>]) {
        self.ranges = ranges
    }

    /// Whether `status` is in the set.
    public func contains(_ status: Int) -> Bool {
        self.ranges.contains { $0.contains(status) }
    }
}

/// Upstream timeouts of a pool.
public struct UpstreamTimeouts: Sendable, Equatable {
    /// TCP connect.
    public var connect: TimeAmount = .seconds(5)
    /// From the end of the request until the first response byte.
    public var response: TimeAmount = .seconds(60)
    /// An idle pooled keep-alive connection is closed after this.
    public var idle: TimeAmount = .seconds(60)
    /// An idle WebSocket tunnel is closed after this.
    public var tunnelIdle: TimeAmount = .hours(1)

    public init() {}
}

/// DNS discovery settings.
public struct DiscoveryConfig: Sendable, Equatable {
    /// How often backend host names are re-resolved.
    public var dnsRefresh: TimeAmount = .seconds(10)

    public init() {}
}

/// Client-side limits.
public struct LimitsConfig: Sendable, Equatable {
    /// Request line plus headers; over it: 431.
    public var maxHeaderBytes: Int = 64 * 1024
    /// Request body; 0 is unlimited; over it: 413.
    public var maxBodyBytes: Int64 = 0
    /// Until the request head is complete; over it: 408 and close.
    public var clientHeaderTimeout: TimeAmount = .seconds(10)
    /// Idle keep-alive client connection.
    public var clientIdleTimeout: TimeAmount = .seconds(75)
    /// Concurrent client connections; 0 is unlimited; over it new connections wait in the backlog.
    public var maxConnections: Int = 0
    /// How long in-flight requests and tunnels get on shutdown.
    public var shutdownGrace: TimeAmount = .seconds(30)
    /// `per_client`: limits per client address.
    public var perClient = PerClientLimits()

    public init() {}
}

/// `limits.per_client`: what one client address (IPv6 by /64) may hold and ask; 0 turns each off.
public struct PerClientLimits: Sendable, Equatable {
    /// Concurrent client connections; over it the extra one is closed at once.
    public var maxConnections: Int = 0
    /// Concurrent WebSockets (HTTP/1.1 upgrades and RFC 8441 CONNECTs); over it: 429.
    public var maxTunnels: Int = 0
    /// Requests per second over every request, as a token bucket; over it: 429 with Retry-After.
    public var rate = RequestRate()

    /// Whether any of them is on.
    public var isOn: Bool { self.maxConnections > 0 || self.maxTunnels > 0 || self.rate.isOn }

    public init() {}
}

/// A token bucket's settings: `requests_per_second` (0: off) and `burst` (0: twice the rate, at
/// least 1).
public struct RequestRate: Sendable, Equatable {
    /// Tokens added per second.
    public var requestsPerSecond: Double = 0
    /// The bucket's size as configured (0: twice the rate).
    public var burst: Int = 0

    /// Whether the bucket limits anything.
    public var isOn: Bool { self.requestsPerSecond > 0 }

    /// The bucket's size in requests.
    public var size: Int { self.burst > 0 ? self.burst : max(1, Int((self.requestsPerSecond * 2).rounded(.up))) }

    public init(requestsPerSecond: Double = 0, burst: Int = 0) {
        self.requestsPerSecond = requestsPerSecond
        self.burst = burst
    }
}

/// Logging settings.
public struct LoggingConfig: Sendable, Equatable {
    /// Output format of both the application log and the access log.
    public enum Format: String, Sendable, Equatable, CaseIterable {
        case text
        case json
    }

    /// Where access-log lines go.
    public enum AccessLogTarget: Sendable, Equatable {
        case stdout
        case off
        case file(String)
    }

    /// The minimum application log level: trace, debug, info, warning or error.
    public var level: String = "info"
    /// Text or JSON lines.
    public var format: Format = .text
    /// The access log's destination.
    public var accessLog: AccessLogTarget = .stdout

    public init() {}
}
