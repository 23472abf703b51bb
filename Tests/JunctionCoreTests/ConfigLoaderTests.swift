import NIOCore
import Testing

@testable import JunctionCore

#if canImport(Glibc)
    import Glibc
#endif

/// Config validation: every kind of error names file:line:column and the key path.
@Suite("Config loading")
struct ConfigLoaderTests {
    static let valid = """
        threads: 2
        listeners:
          - name: web
            address: 127.0.0.1:8080
        routes:
          - name: ddp
            match:
              path_prefix: [/sockjs, /websocket]
            pool: ddp-streamer
          - name: monolith
            pool: monolith
        pools:
          ddp-streamer:
            balance: round_robin
            backends:
              - address: 127.0.0.1:3001
                weight: 3
              - address: "[::1]:3002"
            timeouts:
              connect: 250ms
              tunnel_idle: 2h
            retries: 1
          monolith:
            backends:
              - address: 127.0.0.1:3000
        limits:
          max_header_bytes: 32KiB
          max_body_bytes: 1GiB
          client_header_timeout: 5s
          shutdown_grace: 2m
        logging:
          format: json
          access_log: off
        """

    static func load(_ yaml: String) -> ConfigLoader.Outcome {
        ConfigLoader.parse(yaml: yaml, file: "j.yaml", baseDirectory: "/etc/junction")
    }

    @Test("A valid file loads with every value and default in place")
    func validFile() throws {
        let outcome = Self.load(Self.valid)
        #expect(outcome.errors.isEmpty, "\(outcome.errors)")
        let config = try #require(outcome.config)
        #expect(config.threads == 2)
        #expect(config.listeners.map(\.name) == ["web"])
        #expect(config.listeners[0].address == HostPort(host: "127.0.0.1", port: 8080))
        #expect(config.routes.map(\.name) == ["ddp", "monolith"])
        #expect(config.routes[0].pathPrefixes == ["/sockjs", "/websocket"])
        #expect(config.routes[1].pathPrefixes.isEmpty)
        let ddp = try #require(config.pool(named: "ddp-streamer"))
        #expect(ddp.balance == .roundRobin)
        #expect(
            ddp.backends.map(\.address) == [HostPort(host: "127.0.0.1", port: 3001), HostPort(host: "::1", port: 3002)]
        )
        #expect(ddp.backends.map(\.weight) == [3, 1])
        #expect(ddp.backends.map { $0.location?.description } == ["j.yaml:16:18", "j.yaml:18:18"])
        #expect(ddp.timeouts.connect == .milliseconds(250))
        #expect(ddp.timeouts.tunnelIdle == .hours(2))
        #expect(ddp.timeouts.response == .seconds(60), "default")
        #expect(ddp.retries == 1)
        let monolith = try #require(config.pool(named: "monolith"))
        #expect(monolith.balance == .leastConn, "default")
        #expect(monolith.retries == 2, "default")
        #expect(config.limits.maxHeaderBytes == 32 * 1024)
        #expect(config.limits.maxBodyBytes == 1 << 30)
        #expect(config.limits.clientHeaderTimeout == .seconds(5))
        #expect(config.limits.clientIdleTimeout == .seconds(75), "default")
        #expect(config.limits.shutdownGrace == .minutes(2))
        #expect(config.logging.format == .json)
        #expect(config.logging.accessLog == .off, "unquoted off is YAML's false")
    }

    /// One broken line and the diagnostic it must produce.
    struct BadCase: CustomStringConvertible, Sendable {
        var name: String
        var replace: String
        var with: String
        var expected: String
        var description: String { self.name }
    }

    static let badCases: [BadCase] = [
        BadCase(
            name: "unknown top-level key",
            replace: "threads: 2",
            with: "thread: 2",
            expected: "j.yaml:1:1: thread: unknown key \"thread\""
        ),
        BadCase(
            name: "wrong type",
            replace: "threads: 2",
            with: "threads: two",
            expected: "j.yaml:1:10: threads: expected an integer, got \"two\""
        ),
        BadCase(
            name: "out of range",
            replace: "threads: 2",
            with: "threads: 5000",
            expected: "j.yaml:1:10: threads: must be between 0 and 1024, got 5000"
        ),
        BadCase(
            name: "address without port",
            replace: "address: 127.0.0.1:3000",
            with: "address: localhost",
            expected: "j.yaml:25:18: pools.monolith.backends[0].address: expected host:port, got \"localhost\""
        ),
        BadCase(
            name: "IPv6 without brackets",
            replace: "address: 127.0.0.1:3000",
            with: "address: ::1:3000",
            expected: "j.yaml:25:18: pools.monolith.backends[0].address: an IPv6 address needs brackets"
        ),
        BadCase(
            name: "bad port",
            replace: "address: 127.0.0.1:8080",
            with: "address: 127.0.0.1:99999",
            expected: "j.yaml:4:14: listeners[0].address: port must be 1-65535 in \"127.0.0.1:99999\""
        ),
        BadCase(
            name: "bad duration",
            replace: "connect: 250ms",
            with: "connect: 250",
            expected:
                "j.yaml:20:16: pools.ddp-streamer.timeouts.connect: expected a duration like 250ms, 5s, 2m, 1h or 30d, got the integer 250"
        ),
        BadCase(
            name: "zero duration",
            replace: "connect: 250ms",
            with: "connect: 0s",
            expected: "j.yaml:20:16: pools.ddp-streamer.timeouts.connect: must be greater than 0"
        ),
        BadCase(
            name: "bad size",
            replace: "max_body_bytes: 1GiB",
            with: "max_body_bytes: 1GB",
            expected:
                "j.yaml:28:19: limits.max_body_bytes: expected a size like 65536, 64KiB, 10MiB or 1GiB, got \"1GB\""
        ),
        BadCase(
            name: "unknown pool",
            replace: "pool: monolith",
            with: "pool: monolit",
            expected: "j.yaml:11:11: routes[1].pool: unknown pool \"monolit\" (pools: ddp-streamer, monolith)"
        ),
        BadCase(
            name: "duplicate route name",
            replace: "- name: monolith",
            with: "- name: ddp",
            expected: "j.yaml:10:5: routes[1]: duplicate route name \"ddp\" (first at j.yaml:6:5)"
        ),
        BadCase(
            name: "weight out of range",
            replace: "weight: 3",
            with: "weight: 0",
            expected: "j.yaml:17:17: pools.ddp-streamer.backends[0].weight: must be between 1 and 100, got 0"
        ),
        BadCase(
            name: "unknown balance",
            replace: "balance: round_robin",
            with: "balance: random",
            expected:
                "j.yaml:14:14: pools.ddp-streamer.balance: expected one of least_conn | round_robin, got \"random\""
        ),
        BadCase(
            name: "path prefix without slash",
            replace: "[/sockjs, /websocket]",
            with: "[sockjs]",
            expected: "j.yaml:8:20: routes[0].match.path_prefix: a path prefix must start with \"/\", got \"sockjs\""
        ),
        BadCase(
            name: "list where a mapping belongs",
            replace: "limits:\n",
            with: "limits: []\nx:\n",
            expected: "j.yaml:26:9: limits: expected a mapping, got a list"
        ),
        BadCase(
            name: "duplicate backend",
            replace: "\"[::1]:3002\"",
            with: "127.0.0.1:3001",
            expected: "j.yaml:18:18: pools.ddp-streamer.backends[1].address: duplicate backend 127.0.0.1:3001"
        ),
        BadCase(
            name: "missing backends",
            replace: "    backends:\n      - address: 127.0.0.1:3000\n",
            with: "    retries: 1\n",
            expected: "j.yaml:24:5: pools.monolith: missing required key \"backends\""
        ),
        BadCase(
            name: "unknown log level",
            replace: "format: json",
            with: "level: loud",
            expected:
                "j.yaml:32:10: logging.level: expected one of trace | debug | info | warning | error, got \"loud\""
        ),
        BadCase(
            name: "negative drain rate",
            replace: "    retries: 1\n",
            with: "    retries: 1\n    drain_rate: -1\n",
            expected: "j.yaml:23:17: pools.ddp-streamer.drain_rate: must be between 0 and 10000, got -1"
        ),
        BadCase(
            name: "drain rate not a number",
            replace: "    retries: 1\n",
            with: "    retries: 1\n    drain_rate: fast\n",
            expected: "j.yaml:23:17: pools.ddp-streamer.drain_rate: expected a number, got \"fast\""
        ),
        BadCase(
            name: "unknown rebalance mode",
            replace: "    retries: 1\n",
            with: "    retries: 1\n    rebalance: sometimes\n",
            expected:
                "j.yaml:23:16: pools.ddp-streamer.rebalance: expected one of manual | auto, got \"sometimes\""
        ),
        BadCase(
            name: "unreadable token file",
            replace: "routes:\n",
            with: "admin:\n  token_file: nope.token\nroutes:\n",
            expected:
                "j.yaml:6:15: admin.token_file: /etc/junction/nope.token: cannot read file: No such file or directory"
        ),
        BadCase(
            name: "YAML syntax error",
            replace: "threads: 2",
            with: "threads: [2",
            expected: "j.yaml:2:10: invalid YAML"
        ),
        BadCase(
            name: "duplicate key",
            replace: "threads: 2",
            with: "threads: 2\nthreads: 3",
            expected: "invalid YAML: duplicate key threads"
        ),
    ]

    @Test("Each kind of error is reported with its position and key path", arguments: Self.badCases)
    func errors(_ bad: BadCase) {
        #expect(Self.valid.contains(bad.replace), "test case must change something")
        let outcome = Self.load(Self.valid.replacingOccurrences(of: bad.replace, with: bad.with))
        #expect(outcome.config == nil)
        let messages = outcome.errors.map(\.description)
        #expect(messages.contains { $0.hasPrefix(bad.expected) || $0.contains(bad.expected) }, "got \(messages)")
    }

    @Test("All errors are reported at once, in file order")
    func everyErrorAtOnce() {
        let yaml = Self.valid
            .replacingOccurrences(of: "threads: 2", with: "threads: -1")
            .replacingOccurrences(of: "connect: 250ms", with: "connect: soon")
            .replacingOccurrences(of: "pool: monolith", with: "pool: nowhere")
        let outcome = Self.load(yaml)
        #expect(outcome.errors.map { $0.location?.line ?? 0 } == [1, 11, 20])
    }

    @Test("Missing required sections and an empty file are errors")
    func missingSections() {
        #expect(
            Self.load("").errors.map(\.message) == ["the file is empty; it needs at least listeners, routes and pools"]
        )
        let outcome = Self.load("threads: 1\n")
        #expect(
            outcome.errors.map(\.message) == [
                "missing required key \"listeners\"", "missing required key \"routes\"",
                "missing required key \"pools\"",
            ]
        )
    }

    @Test("Every key is parsed; keys of features not built yet are accepted with a warning, never silently")
    func plannedFeaturesWarn() throws {
        let yaml =
            Self.valid
            .replacingOccurrences(
                of: "    balance: round_robin",
                with:
                    "    balance: round_robin\n    affinity: cookie\n    health_check:\n      path: /health\n      expect_status: 200,204,300-399"
            )
            .replacingOccurrences(
                of: "    address: 127.0.0.1:8080",
                with: "    address: 127.0.0.1:8080\n    proxy_protocol: true"
            )
            .replacingOccurrences(of: "    pool: monolith", with: "    pool: monolith\n    compress: true")
            + "\ndiscovery:\n  dns_refresh: 30s\nadmin:\n  address: 127.0.0.1:9901\n"
        let outcome = Self.load(yaml)
        #expect(outcome.errors.isEmpty, "\(outcome.errors)")
        let config = try #require(outcome.config)
        let pool = try #require(config.pool(named: "ddp-streamer"))
        #expect(pool.affinity == .cookie)
        #expect(pool.healthCheck?.path == "/health")
        #expect(pool.healthCheck?.expectStatus.contains(204) == true)
        #expect(pool.healthCheck?.expectStatus.contains(250) == false)
        #expect(pool.healthCheck?.expectStatus.contains(302) == true)
        #expect(config.discovery.dnsRefresh == .seconds(30))
        #expect(config.admin?.address == HostPort(host: "127.0.0.1", port: 9901))
        #expect(config.listeners[0].proxyProtocol)
        #expect(config.routes[1].compress)
        // Every key of the schema is implemented: none of them warns.
        #expect(outcome.warnings.isEmpty, "\(outcome.warnings)")
    }

    @Test("drain_rate takes decimals, rebalance auto, and the admin token is the token file's first line")
    func drainAndAdminKeys() throws {
        let directory = "/tmp/junction-token-\(getpid())"
        mkdir(directory, 0o700)
        defer { _ = unlink(directory + "/admin.token"); _ = rmdir(directory) }
        let file = fopen(directory + "/admin.token", "w")
        fputs("  0123456789abcdefXYZ \r\nsecond line\n", file)
        fclose(file)
        let yaml =
            Self.valid
            .replacingOccurrences(
                of: "    retries: 1\n",
                with: "    retries: 1\n    drain_rate: 0.5\n    rebalance: auto\n"
            )
            .replacingOccurrences(of: "routes:\n", with: "admin:\n  token_file: admin.token\nroutes:\n")
        let outcome = ConfigLoader.parse(yaml: yaml, file: "j.yaml", baseDirectory: directory)
        let config = try #require(outcome.config, "\(outcome.errors)")
        let ddp = try #require(config.pool(named: "ddp-streamer"))
        #expect(ddp.drainRate == 0.5 && ddp.rebalance == .auto)
        let monolith = try #require(config.pool(named: "monolith"))
        #expect(monolith.drainRate == 20 && monolith.rebalance == .manual, "the defaults")
        let token = try #require(config.admin?.token)
        #expect(token.matches(Array("0123456789abcdefXYZ".utf8)))
        #expect("\(token)" == "<admin token>", "never printed")

        // A short token is refused where it is configured.
        let short = fopen(directory + "/admin.token", "w")
        fputs("short\n", short)
        fclose(short)
        let refused = ConfigLoader.parse(yaml: yaml, file: "j.yaml", baseDirectory: directory)
        #expect(
            refused.errors.map(\.description) == [
                "j.yaml:6:15: admin.token_file: \(directory)/admin.token: the token (the file's first line) must be at least 16 characters"
            ]
        )
    }

    @Test("Relative certificate paths resolve against the config file's directory")
    func tlsPaths() throws {
        let yaml = Self.valid.replacingOccurrences(
            of: "    address: 127.0.0.1:8080",
            with:
                "    address: 127.0.0.1:8080\n    tls:\n      certificates:\n        - cert: certs/a.pem\n          key: /abs/a-key.pem\n      min_version: 1.3"
        )
        let config = try #require(Self.load(yaml).config)
        let tls = try #require(config.listeners[0].tls)
        #expect(tls.certificates[0].certPath == "/etc/junction/certs/a.pem")
        #expect(tls.certificates[0].keyPath == "/abs/a-key.pem")
        #expect(tls.certificates[0].configPath == "listeners[0].tls.certificates[0]")
        #expect(tls.minVersion == .tls13, "an unquoted 1.3 is accepted")
    }

    @Test("An unreachable route behind a catch-all and an unused pool are warnings")
    func reachabilityWarnings() {
        let yaml = Self.valid.replacingOccurrences(
            of: "  - name: monolith\n    pool: monolith",
            with: "  - name: monolith\n    pool: monolith\n  - name: never\n    pool: monolith"
        )
        let warnings = Self.load(yaml).warnings.map(\.description)
        #expect(warnings.contains { $0.contains("routes[2]: route \"never\" is never used") }, "\(warnings)")
    }
}
