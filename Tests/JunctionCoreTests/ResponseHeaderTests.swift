import NIOCore
import NIOHPACK
import NIOHTTP1
import Testing

@testable import JunctionCore

/// `routes[].response_headers`: what `check` accepts and refuses, and what a route's rules do to a
/// response head on HTTP/1.1 and HTTP/2.
@Suite("Response headers")
struct ResponseHeaderTests {
    /// The monolith route (`routes[1]`, line 11) with a `response_headers` block from line 12: its
    /// first entry is on line 13, column 7.
    static func yaml(_ entries: String) -> String {
        ConfigLoaderTests.valid.replacingOccurrences(
            of: "    pool: monolith\n",
            with: "    pool: monolith\n    response_headers:\n" + entries + "\n"
        )
    }

    static func rules(_ pairs: [(String, String)]) -> ResponseHeaderRules {
        ResponseHeaderRules(pairs.map { ResponseHeaderSetting(name: $0.0, value: $0.1) })!
    }

    @Test("The mapping is read in file order, names as written, an empty value kept (it removes)")
    func decoding() throws {
        let outcome = ConfigLoaderTests.load(
            Self.yaml(
                """
                      Strict-Transport-Security: max-age=63072000; includeSubDomains
                      X-Powered-By: ""
                      x-frame-options: DENY
                      Content-Security-Policy: "default-src 'self'\\tobs\u{e9}"
                """
            )
        )
        #expect(outcome.errors.isEmpty, "\(outcome.errors)")
        let config = try #require(outcome.config)
        #expect(config.routes[0].responseHeaders.isEmpty, "a route without the key")
        #expect(
            config.routes[1].responseHeaders == [
                ResponseHeaderSetting(name: "Strict-Transport-Security", value: "max-age=63072000; includeSubDomains"),
                ResponseHeaderSetting(name: "X-Powered-By", value: ""),
                ResponseHeaderSetting(name: "x-frame-options", value: "DENY"),
                ResponseHeaderSetting(name: "Content-Security-Policy", value: "default-src 'self'\tobs\u{e9}"),
            ]
        )
        #expect(ResponseHeaderRules([]) == nil, "no key, no rules: nothing to do per response")
    }

    /// One `response_headers` block and the error it must produce.
    struct BadCase: CustomStringConvertible, Sendable {
        var name: String
        var entries: String
        var expected: String
        var description: String { self.name }
    }

    static let badCases: [BadCase] = [
        BadCase(
            name: "not a token",
            entries: "      X Bad: v",
            expected: "j.yaml:13:7: routes[1].response_headers.X Bad: a header name must be an RFC 9110 token"
        ),
        BadCase(
            name: "a separator in the name",
            entries: "      \"X-A:b\": v",
            expected: "j.yaml:13:7: routes[1].response_headers.X-A:b: a header name must be an RFC 9110 token"
        ),
        BadCase(
            name: "pseudo-header",
            entries: "      \":status\": \"200\"",
            expected: "j.yaml:13:7: routes[1].response_headers.:status: pseudo-header fields cannot be configured"
        ),
        BadCase(
            name: "hop-by-hop Connection",
            entries: "      connection: close",
            expected:
                "j.yaml:13:7: routes[1].response_headers.connection: connection cannot be configured: a hop-by-hop"
        ),
        BadCase(
            name: "hop-by-hop Transfer-Encoding",
            entries: "      Transfer-Encoding: chunked",
            expected:
                "j.yaml:13:7: routes[1].response_headers.Transfer-Encoding: Transfer-Encoding cannot be configured"
        ),
        BadCase(
            name: "hop-by-hop Upgrade",
            entries: "      Upgrade: h2c",
            expected: "j.yaml:13:7: routes[1].response_headers.Upgrade: Upgrade cannot be configured: a hop-by-hop"
        ),
        BadCase(
            name: "Content-Length breaks framing",
            entries: "      Content-Length: \"0\"",
            expected:
                "j.yaml:13:7: routes[1].response_headers.Content-Length: Content-Length cannot be configured: Junction frames the body itself"
        ),
        BadCase(
            name: "X-Request-ID is Junction's",
            entries: "      X-Request-ID: fixed",
            expected: "j.yaml:13:7: routes[1].response_headers.X-Request-ID: X-Request-ID cannot be configured"
        ),
        BadCase(
            name: "duplicate name in another case",
            entries: "      X-Frame-Options: DENY\n      x-frame-options: SAMEORIGIN",
            expected:
                "j.yaml:14:7: routes[1].response_headers.x-frame-options: duplicate header name (names are case-insensitive; first at j.yaml:13:7)"
        ),
        BadCase(
            name: "leading whitespace",
            entries: "      X-Frame-Options: \" DENY\"",
            expected: "j.yaml:13:24: routes[1].response_headers.X-Frame-Options: a header value must not start or end"
        ),
        BadCase(
            name: "trailing tab",
            entries: "      X-Frame-Options: \"DENY\\t\"",
            expected: "j.yaml:13:24: routes[1].response_headers.X-Frame-Options: a header value must not start or end"
        ),
        BadCase(
            name: "line feed",
            entries: "      X-Frame-Options: \"DE\\nNY\"",
            expected:
                "j.yaml:13:24: routes[1].response_headers.X-Frame-Options: a header value must not contain CR or LF"
        ),
        BadCase(
            name: "carriage return",
            entries: "      X-Frame-Options: \"DE\\rNY\"",
            expected:
                "j.yaml:13:24: routes[1].response_headers.X-Frame-Options: a header value must not contain CR or LF"
        ),
        BadCase(
            name: "NUL",
            entries: "      X-Frame-Options: \"DE\\0NY\"",
            expected: "j.yaml:13:24: routes[1].response_headers.X-Frame-Options: a header value must not contain NUL"
        ),
        BadCase(
            name: "control character",
            entries: "      X-Frame-Options: \"DE\\x01NY\"",
            expected:
                "j.yaml:13:24: routes[1].response_headers.X-Frame-Options: a header value must not contain control"
        ),
        BadCase(
            name: "a number, not a string",
            entries: "      X-Count: 5",
            expected: "j.yaml:13:16: routes[1].response_headers.X-Count: expected a string, got the integer 5"
        ),
        BadCase(
            name: "no value",
            entries: "      X-Powered-By:",
            // The position of an absent value is Yams's to choose: the path and message are checked.
            expected: "routes[1].response_headers.X-Powered-By: expected a string, got nothing"
        ),
        BadCase(
            name: "not a mapping",
            entries: "      - X-Frame-Options",
            expected: "j.yaml:13:7: routes[1].response_headers: expected a mapping of header name to value, got a list"
        ),
    ]

    @Test("check refuses bad names and values with position and key path", arguments: Self.badCases)
    func errors(_ bad: BadCase) {
        let outcome = ConfigLoaderTests.load(Self.yaml(bad.entries))
        #expect(outcome.config == nil)
        let messages = outcome.errors.map(\.description)
        #expect(messages.contains { $0.hasPrefix(bad.expected) || $0.contains(": " + bad.expected) }, "got \(messages)")
    }

    static let upstream = HTTPResponseHead(
        version: .http1_1,
        status: .ok,
        headers: HTTPHeaders([
            ("Content-Type", "text/html"), ("X-Powered-By", "Express"), ("strict-transport-security", "max-age=1"),
            ("Cache-Control", "no-cache"), ("STRICT-TRANSPORT-SECURITY", "max-age=2"), ("Content-Length", "5"),
            ("x-powered-by", "again"),
        ])
    )

    static let hsts = Self.rules([
        ("Strict-Transport-Security", "max-age=63072000"), ("X-Powered-By", ""), ("X-Frame-Options", "DENY"),
    ])

    @Test("HTTP/1.1: set, replace every same-named field in any case, remove; framing and X-Request-ID stay")
    func http1() {
        let (bytes, framing, _) = HeaderRewriter.clientResponseBytes(
            Self.upstream,
            requestID: "rid",
            clientVersion: .http1_1,
            bodyless: false,
            keepAlive: true,
            rules: Self.hsts,
            allocator: ByteBufferAllocator()
        )
        #expect(framing == .raw)
        #expect(
            String(buffer: bytes)
                == "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nCache-Control: no-cache\r\nContent-Length: 5\r\n"
                + "Strict-Transport-Security: max-age=63072000\r\nX-Frame-Options: DENY\r\nX-Request-ID: rid\r\n\r\n"
        )
        // A structured sink (the default `appendRules`) gets the same fields.
        var headers = HTTPHeaders()
        _ = HeaderRewriter.rewriteResponseHeaders(
            Self.upstream,
            requestID: "rid",
            clientVersion: .http1_1,
            bodyless: false,
            keepAlive: true,
            isTunnel: false,
            rules: Self.hsts,
            into: &headers
        )
        #expect(headers["strict-transport-security"] == ["max-age=63072000"])
        #expect(headers["x-powered-by"].isEmpty)
        #expect(headers["X-Frame-Options"] == ["DENY"])
    }

    @Test("Without rules the head is byte for byte what it was")
    func noRules() {
        func bytes(_ rules: ResponseHeaderRules?) -> String {
            String(
                buffer: HeaderRewriter.clientResponseBytes(
                    Self.upstream,
                    requestID: "rid",
                    clientVersion: .http1_1,
                    bodyless: false,
                    keepAlive: true,
                    rules: rules,
                    allocator: ByteBufferAllocator()
                ).head
            )
        }
        #expect(bytes(nil).contains("X-Powered-By: Express\r\n"))
        #expect(bytes(nil).contains("strict-transport-security: max-age=1\r\n"))
        #expect(!bytes(Self.rules([("X-Other", "")])).contains("X-Other"))
        #expect(bytes(Self.rules([("X-Other", "")])) == bytes(nil), "a removal of an absent field changes nothing")
    }

    @Test("Junction's own answer on a route gets the route's headers")
    func ownAnswer() {
        let failure = ProxyFailure.noHealthyBackend(pool: "monolith", retryAfter: 5)
        let (bytes, _, _) = HeaderRewriter.clientResponseBytes(
            failure.responseHead(bodyLength: 10),
            requestID: "rid",
            clientVersion: .http1_1,
            bodyless: false,
            keepAlive: true,
            rules: Self.hsts,
            allocator: ByteBufferAllocator()
        )
        let text = String(buffer: bytes)
        #expect(text.hasPrefix("HTTP/1.1 503 Service Unavailable\r\n"))
        #expect(text.contains("Strict-Transport-Security: max-age=63072000\r\n"))
        #expect(text.contains("Retry-After: 5\r\n"))
    }

    @Test("HTTP/2: the same rules, names lowercased, :status first")
    func http2() {
        let block = HTTP2HeadConverter.response(Self.upstream, requestID: "rid", bodyless: false, rules: Self.hsts)
        let fields = block.map { ($0.name, $0.value) }
        #expect(fields.first! == (":status", "200"))
        #expect(fields.allSatisfy { $0.0 == $0.0.lowercased() })
        #expect(block["strict-transport-security"] == ["max-age=63072000"])
        #expect(block["x-powered-by"].isEmpty)
        #expect(block["x-frame-options"] == ["DENY"])
        #expect(block["cache-control"] == ["no-cache"])
        #expect(block["content-length"] == ["5"])
        #expect(block["x-request-id"] == ["rid"])
        let plain = HTTP2HeadConverter.response(Self.upstream, requestID: "rid", bodyless: false)
        #expect(plain["x-powered-by"] == ["Express", "again"], "no rules: untouched")
    }

    @Test("A WebSocket's 101 and RFC 8441 200 carry the route's headers")
    func tunnels() {
        let switching = HTTPResponseHead(
            version: .http1_1,
            status: .switchingProtocols,
            headers: HTTPHeaders([
                ("Upgrade", "websocket"), ("Connection", "Upgrade"), ("Sec-WebSocket-Accept", "x="),
                ("X-Powered-By", "Express"),
            ])
        )
        let (bytes, _, _) = HeaderRewriter.clientResponseBytes(
            switching,
            requestID: "rid",
            clientVersion: .http1_1,
            bodyless: true,
            keepAlive: true,
            isTunnel: true,
            rules: Self.hsts,
            allocator: ByteBufferAllocator()
        )
        let text = String(buffer: bytes)
        #expect(text.hasPrefix("HTTP/1.1 101 Switching Protocols\r\n"))
        #expect(text.contains("Upgrade: websocket\r\n") && text.contains("Connection: Upgrade\r\n"))
        #expect(text.contains("Strict-Transport-Security: max-age=63072000\r\n"))
        #expect(!text.contains("X-Powered-By"))
        let accepted = HTTP2HeadConverter.webSocketAccepted(switching, requestID: "rid", rules: Self.hsts)
        #expect(accepted[":status"] == ["200"])
        #expect(accepted["strict-transport-security"] == ["max-age=63072000"])
        #expect(accepted["x-request-id"] == ["rid"])
    }

    @Test("Names are matched case-insensitively, only at their full length")
    func covers() {
        let rules = Self.rules([("X-Powered-By", "")])
        #expect(rules.covers("x-powered-by") && rules.covers("X-POWERED-BY"))
        #expect(!rules.covers("X-Powered-By2") && !rules.covers("X-Powered-B") && !rules.covers("Y-Powered-By"))
    }
}
