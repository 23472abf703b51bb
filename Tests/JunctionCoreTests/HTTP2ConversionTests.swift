import Foundation
import NIOCore
import NIOEmbedded
import NIOHPACK
import NIOHTTP1
import Testing

@testable import JunctionCore

/// HTTP/2 <-> HTTP/1.1 head conversion (RFC 9113 8.3, RFC 8441) and the h2c preface sniffer.
@Suite("HTTP/2 conversion")
struct HTTP2ConversionTests {
    static func block(_ fields: [(String, String)]) -> HPACKHeaders {
        HPACKHeaders(fields)
    }

    static func problem(
        _ result: Result<HTTP2HeadConverter.Request, HTTP2HeadConverter.Problem>
    ) -> HTTP2HeadConverter.Problem? {
        if case .failure(let problem) = result { return problem }
        return nil
    }

    @Test("A request: pseudo-headers become the request line and Host, cookies are joined, framing follows the stream")
    func request() throws {
        let converted = try HTTP2HeadConverter.request(
            Self.block([
                (":method", "POST"), (":scheme", "https"), (":authority", "chat.example.com"),
                (":path", "/api/v1/x?y=1"),
                ("cookie", "a=1"), ("content-type", "application/json"), ("cookie", "b=2"), ("x-request-id", "abc"),
            ]),
            endStream: false
        ).get()
        #expect(converted.head.method == .POST)
        #expect(converted.head.uri == "/api/v1/x?y=1")
        #expect(converted.head.headers["host"] == ["chat.example.com"])
        #expect(converted.head.headers["cookie"] == ["a=1; b=2"], "RFC 9113 8.2.3")
        #expect(converted.facts.host == "chat.example.com")
        #expect(converted.facts.requestID == "abc")
        #expect(converted.facts.framing == .chunked, "a body of unknown length goes upstream chunked")
        #expect(converted.webSocketKey == nil)

        let sized = try HTTP2HeadConverter.request(
            Self.block([(":method", "PUT"), (":scheme", "https"), (":path", "/u"), ("content-length", "12")]),
            endStream: false
        ).get()
        #expect(sized.facts.framing == .contentLength(12))
        #expect(sized.head.headers["content-length"].isEmpty, "the rewriter writes the length")
        let bodyless = try HTTP2HeadConverter.request(
            Self.block([(":method", "GET"), (":scheme", "https"), (":path", "/")]),
            endStream: true
        ).get()
        #expect(bodyless.facts.framing == .none)
    }

    @Test("RFC 8441: CONNECT with :protocol websocket becomes a GET upgrade with a fresh key")
    func extendedConnect() throws {
        let converted = try HTTP2HeadConverter.request(
            Self.block([
                (":method", "CONNECT"), (":protocol", "websocket"), (":scheme", "https"), (":authority", "chat:8443"),
                (":path", "/websocket"), ("sec-websocket-version", "13"), ("sec-websocket-protocol", "ddp"),
            ]),
            endStream: false
        ).get()
        #expect(converted.head.method == .GET)
        #expect(converted.head.uri == "/websocket")
        #expect(converted.facts.isWebSocketUpgrade)
        #expect(converted.facts.framing == .none)
        let key = try #require(converted.webSocketKey)
        #expect(Data(base64Encoded: key)?.count == 16)
        #expect(converted.head.headers["sec-websocket-key"] == [key])
        #expect(converted.head.headers["sec-websocket-protocol"] == ["ddp"])
        // The upstream head then carries the upgrade.
        var fields = HTTPHeaders()
        HeaderRewriter.rewriteRequestHeaders(
            converted.head.headers,
            facts: converted.facts,
            clientAddress: "192.0.2.1",
            scheme: "https",
            requestID: "r",
            defaultHost: "x",
            into: &fields
        )
        #expect(fields["Upgrade"] == ["websocket"] && fields["Connection"] == ["Upgrade"])

        let plainConnect = HTTP2HeadConverter.request(
            Self.block([(":method", "CONNECT"), (":authority", "example.com:443")]),
            endStream: false
        )
        #expect(Self.problem(plainConnect) == .unsupportedConnect("CONNECT"))
        let otherProtocol = HTTP2HeadConverter.request(
            Self.block([(":method", "CONNECT"), (":protocol", "webtransport"), (":path", "/"), (":scheme", "https")]),
            endStream: false
        )
        #expect(Self.problem(otherProtocol) == .unsupportedConnect("CONNECT with :protocol webtransport"))
    }

    @Test("A response: :status first, names lowercased, connection-specific fields dropped, length kept")
    func response() {
        let upstream = HTTPResponseHead(
            version: .http1_1,
            status: .ok,
            headers: HTTPHeaders([
                ("Content-Type", "text/html"), ("Content-Length", "42"), ("Connection", "keep-alive"),
                ("Keep-Alive", "timeout=5"), ("Transfer-Encoding", "chunked"), ("Set-Cookie", "s=1"),
            ])
        )
        let block = HTTP2HeadConverter.response(upstream, requestID: "rid", bodyless: false)
        let fields = block.map { ($0.name, $0.value) }
        #expect(fields.first! == (":status", "200"))
        #expect(fields.allSatisfy { $0.0 == $0.0.lowercased() })
        #expect(block["content-type"] == ["text/html"])
        #expect(block["content-length"] == ["42"])
        #expect(block["set-cookie"] == ["s=1"])
        #expect(block["x-request-id"] == ["rid"])
        for name in ["connection", "keep-alive", "transfer-encoding"] {
            #expect(block[name].isEmpty, "\(name) is connection-specific")
        }
        let accepted = HTTP2HeadConverter.webSocketAccepted(
            HTTPResponseHead(
                version: .http1_1,
                status: .switchingProtocols,
                headers: HTTPHeaders([
                    ("Upgrade", "websocket"), ("Sec-WebSocket-Accept", "x"), ("Sec-WebSocket-Protocol", "ddp"),
                ])
            ),
            requestID: "rid"
        )
        #expect(accepted[":status"] == ["200"])
        #expect(accepted["sec-websocket-protocol"] == ["ddp"])
        #expect(accepted["sec-websocket-accept"].isEmpty && accepted["upgrade"].isEmpty)
    }

    @Test(
        "HTTPS redirect locations",
        arguments: [
            ("chat.example.com:8080", 8443, "/a?b", "https://chat.example.com:8443/a?b"),
            ("chat.example.com", 443, "/", "https://chat.example.com/"),
            ("[::1]:8080", 8443, "/x", "https://[::1]:8443/x"),
            ("", 8443, "/x", "https://localhost:8443/x"),
            ("a.example", 8443, "/\u{61A}x", "https://a.example:8443/\u{61A}x"),
        ]
    )
    func redirects(host: String, port: Int, target: String, expected: String) {
        #expect(HTTPSRedirect.location(host: host.isEmpty ? nil : host, port: port, target: target) == expected)
    }
}
