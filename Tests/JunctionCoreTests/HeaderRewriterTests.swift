import NIOCore
import NIOHTTP1
import Testing

@testable import JunctionCore

/// Header rewriting both ways and the request-smuggling checks.
@Suite("Header rewriting")
struct HeaderRewriterTests {
    static func head(
        _ headers: [(String, String)],
        method: HTTPMethod = .GET,
        version: HTTPVersion = .http1_1
    ) -> HTTPRequestHead {
        HTTPRequestHead(version: version, method: method, uri: "/x?y=1", headers: HTTPHeaders(headers))
    }

    /// The upstream head as Junction writes it, parsed back into fields.
    static func upstream(_ headers: [(String, String)], method: HTTPMethod = .GET) throws -> HTTPRequestHead {
        let head = Self.head(headers, method: method)
        let facts = try HeaderRewriter.inspect(head).get()
        let bytes = HeaderRewriter.upstreamRequestBytes(
            head,
            facts: facts,
            clientAddress: "192.0.2.9",
            scheme: "https",
            requestID: "generated-id",
            defaultHost: "127.0.0.1:8080",
            allocator: ByteBufferAllocator()
        )
        return try Self.parseRequest(String(buffer: bytes))
    }

    /// Splits serialized head text into a structured head (a test helper, not a parser Junction uses).
    static func parseRequest(_ text: String) throws -> HTTPRequestHead {
        #expect(text.hasSuffix("\r\n\r\n"))
        var lines = text.components(separatedBy: "\r\n").filter { !$0.isEmpty }
        let requestLine = lines.removeFirst().split(separator: " ")
        #expect(requestLine.count == 3 && requestLine[2] == "HTTP/1.1")
        let fields = lines.map { line -> (String, String) in
            let colon = line.firstIndex(of: ":")!
            return (String(line[..<colon]), String(line[line.index(colon, offsetBy: 2)...]))
        }
        return HTTPRequestHead(
            version: .http1_1,
            method: HTTPMethod(rawValue: String(requestLine[0])),
            uri: String(requestLine[1]),
            headers: HTTPHeaders(fields)
        )
    }

    /// The client response head as structured fields, and whether the body ends with the connection.
    static func response(
        _ upstream: HTTPResponseHead,
        clientVersion: HTTPVersion = .http1_1,
        bodyless: Bool = false,
        keepAlive: Bool = true,
        isTunnel: Bool = false
    ) -> (head: HTTPHeaders, closeDelimited: Bool, framing: WireFraming) {
        var headers = HTTPHeaders()
        let (framing, closeDelimited) = HeaderRewriter.rewriteResponseHeaders(
            upstream,
            requestID: "rid",
            clientVersion: clientVersion,
            bodyless: bodyless,
            keepAlive: keepAlive,
            isTunnel: isTunnel,
            into: &headers
        )
        return (headers, closeDelimited, framing)
    }

    @Test(
        "A Connection header's options, read byte by byte: the standard three in any case, other names as written",
        arguments: [
            ("keep-alive", [ConnectionOption.keepAlive]),
            ("Keep-Alive", [.keepAlive]),
            ("close", [.close]),
            ("Upgrade", [.upgrade]),
            ("", []),
            (" , ,\t,", []),
            ("keep-alive, X-Hop", [.keepAlive, .named("X-Hop")]),
            ("\tX-A ,x-b,,  close  ", [.named("X-A"), .named("x-b"), .close]),
            ("keep-alives, closed, upgrad", [.named("keep-alives"), .named("closed"), .named("upgrad")]),
            ("KEEP-ALIVE,UPGRADE", [.keepAlive, .upgrade]),
            ("a b, c", [.named("a b"), .named("c")]),
            ("ümlaut, x", [.named("ümlaut"), .named("x")]),
            (",", []),
        ] as [(String, [ConnectionOption])]
    )
    func connectionOptions(value: String, expected: [ConnectionOption]) {
        var options: [ConnectionOption] = []
        ConnectionOption.forEach(in: value) { options.append($0) }
        #expect(options == expected)
    }

    @Test("Host is kept, hop-by-hop headers and those Connection names are removed, target untouched")
    func requestHopByHop() throws {
        let rewritten = try Self.upstream([
            ("Host", "chat.example.com"), ("Connection", "keep-alive, X-Hop"), ("X-Hop", "1"),
            ("Keep-Alive", "timeout=5"),
            ("Proxy-Connection", "keep-alive"), ("TE", "trailers"), ("Trailer", "X-T"), ("Upgrade", "h2c"),
            ("Accept", "*/*"), ("Cookie", "a=b"),
        ])
        #expect(rewritten.uri == "/x?y=1")
        #expect(rewritten.version == .http1_1)
        #expect(rewritten.headers["Host"] == ["chat.example.com"])
        for name in ["Connection", "X-Hop", "Keep-Alive", "Proxy-Connection", "TE", "Trailer", "Upgrade"] {
            #expect(rewritten.headers[name].isEmpty, "\(name) must not be forwarded")
        }
        #expect(rewritten.headers["Accept"] == ["*/*"])
        #expect(rewritten.headers["Cookie"] == ["a=b"])
    }

    @Test("X-Forwarded-For appends the client; Proto, Host, Real-IP are overwritten; a good request id is kept")
    func forwardedHeaders() throws {
        let rewritten = try Self.upstream([
            ("Host", "chat.example.com"), ("X-Forwarded-For", "203.0.113.1"), ("x-forwarded-for", "198.51.100.2"),
            ("X-Forwarded-Proto", "http"), ("X-Forwarded-Host", "evil"), ("X-Real-IP", "10.0.0.1"),
            ("X-Request-ID", "abc-123"),
        ])
        #expect(rewritten.headers["X-Forwarded-For"] == ["203.0.113.1, 198.51.100.2, 192.0.2.9"])
        #expect(rewritten.headers["X-Forwarded-Proto"] == ["https"])
        #expect(rewritten.headers["X-Forwarded-Host"] == ["chat.example.com"])
        #expect(rewritten.headers["X-Real-IP"] == ["192.0.2.9"])
        let facts = try HeaderRewriter.inspect(Self.head([("Host", "h"), ("X-Request-ID", "abc-123")])).get()
        #expect(facts.requestID == "abc-123")
        // The id handed in (the client's, or a generated one) is the one sent upstream.
        #expect(rewritten.headers["X-Request-ID"] == ["generated-id"])
    }

    @Test(
        "Request ids outside [A-Za-z0-9._:/+=-]{1,200} are not kept",
        arguments: ["", "a b", "x\"y", String(repeating: "a", count: 201), "é"]
    )
    func badRequestIDs(id: String) throws {
        let facts = try HeaderRewriter.inspect(Self.head([("Host", "h"), ("X-Request-ID", id)])).get()
        #expect(facts.requestID == nil)
    }

    @Test("Generated request ids are 32 hex digits and differ")
    func generatedIDs() {
        var generator = RequestID()
        let ids = (0..<100).map { _ in generator.next() }
        #expect(Set(ids).count == 100)
        #expect(ids.allSatisfy { $0.count == 32 && $0.allSatisfy(\.isHexDigit) && RequestID.isAcceptable($0) })
    }

    @Test("A WebSocket upgrade keeps Upgrade and Connection: Upgrade; framing is re-established")
    func upgradeAndFraming() throws {
        let upgrade = try Self.upstream([
            ("Host", "h"), ("Connection", "Upgrade"), ("Upgrade", "websocket"), ("Sec-WebSocket-Key", "k=="),
            ("Sec-WebSocket-Version", "13"),
        ])
        #expect(upgrade.headers["Connection"] == ["Upgrade"])
        #expect(upgrade.headers["Upgrade"] == ["websocket"])
        #expect(upgrade.headers["Sec-WebSocket-Key"] == ["k=="])
        let chunked = try Self.upstream([("Host", "h"), ("Transfer-Encoding", "chunked")], method: .POST)
        #expect(chunked.headers["Transfer-Encoding"] == ["chunked"])
        #expect(chunked.headers["Content-Length"].isEmpty)
        let sized = try Self.upstream(
            [("Host", "h"), ("Content-Length", "5"), ("Expect", "100-continue")],
            method: .PUT
        )
        #expect(sized.headers["Content-Length"] == ["5"])
        #expect(sized.headers["Expect"].isEmpty, "Junction answers the expectation itself")
    }

    /// A head that must be refused, and why.
    struct Smuggle: CustomStringConvertible, Sendable {
        var headers: [(String, String)]
        var version: HTTPVersion = .http1_1
        var problem: RequestHeadProblem
        var description: String { "\(self.problem)" }
    }

    @Test(
        "Request heads that could smuggle a second request are refused",
        arguments: [
            Smuggle(
                headers: [("Host", "h"), ("Content-Length", "5"), ("Transfer-Encoding", "chunked")],
                problem: .contentLengthWithTransferEncoding
            ),
            Smuggle(
                headers: [("Host", "h"), ("Content-Length", "5"), ("Content-Length", "6")],
                problem: .conflictingContentLength
            ),
            Smuggle(headers: [("Host", "h"), ("Content-Length", "+5")], problem: .invalidContentLength),
            Smuggle(headers: [("Host", "h"), ("Content-Length", "5, 5")], problem: .invalidContentLength),
            Smuggle(headers: [("Host", "h"), ("Transfer-Encoding", "gzip")], problem: .unsupportedTransferEncoding),
            Smuggle(
                headers: [("Host", "h"), ("Transfer-Encoding", "chunked, gzip")],
                problem: .unsupportedTransferEncoding
            ),
            Smuggle(headers: [], problem: .missingHost),
            Smuggle(headers: [("Host", "a"), ("Host", "b")], problem: .multipleHosts),
            Smuggle(headers: [("Host", "h"), ("Expect", "something")], problem: .unsupportedExpectation),
        ]
    )
    func smuggling(_ smuggle: Smuggle) {
        let head = Self.head(smuggle.headers, method: .POST, version: smuggle.version)
        #expect(HeaderRewriter.inspect(head) == .failure(smuggle.problem))
    }

    @Test("Repeated identical Content-Length is accepted; HTTP/1.0 may omit Host and closes by default")
    func acceptedEdgeCases() throws {
        let twice = try HeaderRewriter.inspect(
            Self.head([("Host", "h"), ("Content-Length", "5"), ("content-length", "5")])
        ).get()
        #expect(twice.framing == .contentLength(5))
        let old = try HeaderRewriter.inspect(Self.head([], version: .http1_0)).get()
        #expect(old.wantsClose)
        #expect(old.host == nil)
        let oldKeepAlive = try HeaderRewriter.inspect(Self.head([("Connection", "Keep-Alive")], version: .http1_0))
            .get()
        #expect(!oldKeepAlive.wantsClose)
        let close = try HeaderRewriter.inspect(Self.head([("Host", "h"), ("Connection", "close")])).get()
        #expect(close.wantsClose)
    }

    @Test("Responses: hop-by-hop out, X-Request-ID in, framing chosen for the client")
    func responses() {
        let upstream = HTTPResponseHead(
            version: .http1_1,
            status: .ok,
            headers: HTTPHeaders([
                ("Content-Type", "text/plain"), ("Transfer-Encoding", "chunked"),
                ("Connection", "keep-alive, X-Private"),
                ("X-Private", "1"), ("Keep-Alive", "timeout=5"), ("Set-Cookie", "a=b"), ("X-Request-ID", "upstream's"),
            ])
        )
        let (head, closeDelimited, framing) = Self.response(upstream)
        #expect(!closeDelimited)
        #expect(framing == .chunked)
        #expect(head["Transfer-Encoding"] == ["chunked"], "re-framed for this hop")
        #expect(head["Connection"].isEmpty && head["X-Private"].isEmpty && head["Keep-Alive"].isEmpty)
        #expect(head["Set-Cookie"] == ["a=b"])
        #expect(head["X-Request-ID"] == ["rid"])

        // An HTTP/1.0 client and no length: the body ends with the connection.
        let (old, oldClose, oldFraming) = Self.response(upstream, clientVersion: .http1_0)
        #expect(oldClose)
        #expect(oldFraming == .raw)
        #expect(old["Connection"] == ["close"])
        #expect(old["Transfer-Encoding"].isEmpty)

        // HEAD keeps the Content-Length that describes the representation, adds no chunking.
        let sized = HTTPResponseHead(version: .http1_1, status: .ok, headers: HTTPHeaders([("Content-Length", "42")]))
        let (toHead, _, headFraming) = Self.response(sized, bodyless: true, keepAlive: false)
        #expect(toHead["Content-Length"] == ["42"])
        #expect(toHead["Transfer-Encoding"].isEmpty)
        #expect(toHead["Connection"] == ["close"])
        #expect(headFraming == .none)

        // A 101 keeps Upgrade for the tunnel.
        let switching = HTTPResponseHead(
            version: .http1_1,
            status: .switchingProtocols,
            headers: HTTPHeaders([("Upgrade", "websocket"), ("Connection", "Upgrade"), ("Sec-WebSocket-Accept", "x=")])
        )
        let (tunnel, _, _) = Self.response(switching, bodyless: true, isTunnel: true)
        #expect(tunnel["Upgrade"] == ["websocket"])
        #expect(tunnel["Connection"] == ["Upgrade"])
        #expect(tunnel["Sec-WebSocket-Accept"] == ["x="])

        // The bytes an HTTP/1.1 client gets: status line, fields, empty line.
        let (bytes, _, _) = HeaderRewriter.clientResponseBytes(
            sized,
            requestID: "rid",
            clientVersion: .http1_1,
            bodyless: false,
            keepAlive: true,
            allocator: ByteBufferAllocator()
        )
        #expect(String(buffer: bytes) == "HTTP/1.1 200 OK\r\nContent-Length: 42\r\nX-Request-ID: rid\r\n\r\n")
    }

    @Test("Error answers are one line of text naming status, reason and request id")
    func errorBodies() {
        let failure = ProxyFailure.noHealthyBackend(pool: "ddp-streamer", retryAfter: 5)
        #expect(
            failure.body(requestID: "1f3a")
                == "503 Service Unavailable: no healthy backend in pool ddp-streamer (request 1f3a)\n"
        )
        let head = failure.responseHead(bodyLength: 10)
        #expect(head.status == .serviceUnavailable)
        #expect(head.headers["Retry-After"] == ["5"])
        #expect(head.headers["Content-Type"] == ["text/plain; charset=utf-8"])
        #expect(ProxyFailure.headersTooLarge.status.code == 431)
        #expect(ProxyFailure.bodyTooLarge.status.code == 413)
        #expect(ProxyFailure.headerTimeout.status.code == 408)
        #expect(ProxyFailure.upstreamTimeout(pool: "p").status.code == 504)
    }
}
