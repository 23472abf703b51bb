import NIOCore
import Testing

@testable import JunctionCore

/// Routing on the normalised path, at segment boundaries, with host conditions; the value syntaxes.
@Suite("Routing and value parsing")
struct RoutingTests {
    static func table(_ routes: [RouteConfig]) -> RouteTable {
        let pool = Pool(
            name: "p",
            backends: [],
            balancer: LeastConnectionsBalancer(),
            timeouts: UpstreamTimeouts(),
            retries: 0,
            healthCheck: nil
        )
        return RouteTable(routes: routes.map { Route(config: $0, pool: pool) })
    }

    static let split: RouteTable = {
        var ddp = RouteConfig(name: "ddp", pool: "p")
        ddp.pathPrefixes = ["/sockjs", "/websocket/"]
        return table([ddp, RouteConfig(name: "monolith", pool: "p")])
    }()

    @Test(
        "The Rocket.Chat split routes on the normalised path",
        arguments: [
            ("/websocket", "ddp"),
            ("/websocket/", "ddp"),
            ("/websocket?x", "ddp"),
            ("/websocket#frag", "ddp"),
            ("/sockjs", "ddp"),
            ("/sockjs/", "ddp"),
            ("/sockjs/info?cb=x", "ddp"),
            ("/sockjs/123/abc/websocket", "ddp"),
            ("/%73ockjs/info", "ddp"),
            ("/%77ebsocket", "ddp"),
            ("/a/../websocket", "ddp"),
            ("/./sockjs/x", "ddp"),
            ("/%2e%2e/websocket", "ddp"),
            ("http://chat.example.com/websocket", "ddp"),
            ("/sockjsx", "monolith"),
            ("/websockets", "monolith"),
            ("//websocket", "monolith"),
            ("/api/websocket", "monolith"),
            ("/sockjs%2Finfo", "monolith"),
            ("/", "monolith"),
            ("*", "monolith"),
            ("/home?next=/websocket", "monolith"),
        ]
    )
    func split(target: String, expected: String) {
        #expect(Self.split.route(hostHeader: "chat.example.com", target: target)?.name == expected)
    }

    @Test(
        "Path normalisation",
        arguments: [
            ("/a/b/../c", "/a/c"),
            ("/a/./b/.", "/a/b/"),
            ("/a/b/..", "/a/"),
            ("/..", "/"),
            ("/../../x", "/x"),
            ("//x//y", "//x//y"),
            ("/%41%7e%2D", "/A~-"),
            ("/%2F%20", "/%2F%20"),
            ("/x?y=%2e%2e", "/x"),
            ("", "/"),
            ("http://h:1", "/"),
        ]
    )
    func normalise(target: String, expected: String) {
        #expect(PathNormalizer.routingPath(of: target) == expected)
    }

    @Test("Host conditions: exact, wildcard subdomain, port and case ignored; first match wins")
    func hosts() {
        var exact = RouteConfig(name: "exact", pool: "p")
        exact.hosts = ["chat.example.com"]
        var wildcard = RouteConfig(name: "wildcard", pool: "p")
        wildcard.hosts = ["*.example.com"]
        var ddpOnOther = RouteConfig(name: "other-ddp", pool: "p")
        ddpOnOther.hosts = ["other.test"]
        ddpOnOther.pathPrefixes = ["/websocket"]
        let table = Self.table([exact, wildcard, ddpOnOther])
        #expect(table.route(hostHeader: "chat.example.com", target: "/")?.name == "exact")
        #expect(table.route(hostHeader: "CHAT.Example.com:8443", target: "/")?.name == "exact")
        #expect(table.route(hostHeader: "chat.example.com.", target: "/")?.name == "exact")
        #expect(table.route(hostHeader: "live.example.com", target: "/")?.name == "wildcard")
        #expect(table.route(hostHeader: "a.b.example.com", target: "/")?.name == "wildcard")
        #expect(table.route(hostHeader: "example.com", target: "/") == nil, "*.example.com needs a subdomain")
        #expect(table.route(hostHeader: "other.test", target: "/websocket")?.name == "other-ddp")
        #expect(table.route(hostHeader: "other.test", target: "/") == nil, "no route: 404")
        #expect(table.route(hostHeader: nil, target: "/") == nil)
        #expect(HostPattern("*.") == nil)
        #expect(HostPattern("bad host") == nil)
        #expect(HostPattern.normalizedHost("[::1]:8080") == "::1")
    }

    @Test(
        "Durations",
        arguments: [
            ("250ms", TimeAmount.milliseconds(250)), ("5s", .seconds(5)), ("2m", .minutes(2)), ("1h", .hours(1)),
            ("0s", .seconds(0)), ("30d", .hours(30 * 24)),
        ]
    )
    func durations(text: String, expected: TimeAmount) {
        #expect(ConfigValueParser.duration(text) == expected)
    }

    @Test("Rejected durations", arguments: ["5", "5 s", "s", "1.5s", "-1s", "5sec", "ms", "1w", ""])
    func badDurations(text: String) {
        #expect(ConfigValueParser.duration(text) == nil)
    }

    @Test("Sizes", arguments: [("64KiB", Int64(65536)), ("10MiB", 10 << 20), ("1GiB", 1 << 30), ("123", 123)])
    func sizes(text: String, expected: Int64) {
        #expect(ConfigValueParser.size(text) == expected)
    }

    @Test("Rejected sizes", arguments: ["1GB", "1 KiB", "KiB", "-1", "1.5MiB", "99999999999999999999GiB"])
    func badSizes(text: String) {
        #expect(ConfigValueParser.size(text) == nil)
    }

    @Test(
        "Addresses",
        arguments: [
            ("127.0.0.1:80", "127.0.0.1", 80), ("[::]:8443", "::", 8443),
            ("ddp-1.internal:3000", "ddp-1.internal", 3000),
            ("localhost:1", "localhost", 1),
        ]
    )
    func addresses(text: String, host: String, port: Int) throws {
        let parsed = try ConfigValueParser.hostPort(text).get()
        #expect(parsed == HostPort(host: host, port: port))
        #expect(parsed.description == text)
    }

    @Test(
        "Rejected addresses",
        arguments: [
            "localhost", "1.2.3.4", ":80", "::1:80", "[::1]80", "host:0", "h:65536", "a b:1", "[zz]:1", "999.1.1.1:80",
        ]
    )
    func badAddresses(text: String) {
        #expect((try? ConfigValueParser.hostPort(text).get()) == nil)
    }

    @Test("Status sets")
    func statusSets() {
        let set = ConfigValueParser.statusSet("200-299, 304,401")
        #expect(set?.contains(204) == true && set?.contains(304) == true && set?.contains(401) == true)
        #expect(set?.contains(300) == false)
        #expect(ConfigValueParser.statusSet("300-200") == nil)
        #expect(ConfigValueParser.statusSet("20x") == nil)
        #expect(ConfigValueParser.statusSet("700") == nil)
    }

    @Test("Percent-decoding is one pass: what decoding makes is not decoded again (found by FuzzRouting)")
    func singlePassDecoding() {
        #expect(PathNormalizer.routingPath(of: "/%%34d") == "/%4d", "and \"%4d\" stays, not \"M\"")
        #expect(PathNormalizer.routingPath(of: "/%%34d/%2e%2e/websocket") == "/websocket")
        #expect(PathNormalizer.routingPath(of: "/%252e%252e/websocket") == "/%252e%252e/websocket")
    }

    @Test("Paths are bytes: a combining mark after / hides no dot segment and no prefix (found by FuzzRouting)")
    func combiningMarks() {
        #expect(PathNormalizer.routingPath(of: "/./\u{31E}/../websocket") == "/websocket")
        #expect(Route.path("/websocket/\u{301}", hasSegmentPrefix: "/websocket"))
        #expect(!Route.path("/websocket\u{301}", hasSegmentPrefix: "/websocket"), "another segment, bytewise")
    }
}
