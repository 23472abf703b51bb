import NIOCore
import NIOHPACK
import NIOHTTP1
import Testing

@testable import JunctionCore

/// Request targets (RFC 9112 3.2) and Host values (RFC 9110 7.2): what is routed where, what is
/// forwarded, and what is refused with 400.
@Suite("Request targets and Host")
struct RequestTargetTests {
    @Test(
        "Valid Host values: names, a trailing dot, ports, IPv4, IPv6 and IPvFuture literals, sub-delims, the empty value",
        arguments: [
            "chat.example.com", "chat.example.com.", "chat.example.com:8443", "localhost:", "[::1]:", "127.0.0.1",
            "127.0.0.1:80", "[::1]", "[2001:db8::7]:443", "[::ffff:192.0.2.1]", "[v1.fe80::a+en1]", "a-b_c~d",
            "x%41y", "!$&'()*+,;=", "", "EXAMPLE.com:65535",
        ]
    )
    func validHosts(host: String) {
        #expect(Authority.isValid(host), "\(host)")
    }

    @Test(
        "Invalid Host values: userinfo, a path, a query, spaces, bad ports, broken literals, controls",
        arguments: [
            "evil@chat.example.com", "chat.example.com/api", "chat.example.com?x", "chat example.com",
            "chat.example.com:http", "chat.example.com:65536", "chat.example.com:123456", "chat:80:80", "[::1",
            "[::1]x", "[]", "[:::1]", "[v1.]", "[vx.1]", "1.2.3.4]", "a%4", "a%zz", "\u{7f}", "a\u{0}b",
            "ch\u{e4}t.example.com", "[::1]:99999", "a\"b", "a<b", "a\\b", "chat.example.com#x",
        ]
    )
    func invalidHosts(host: String) {
        #expect(!Authority.isValid(host), "\(host)")
    }

    @Test(
        "Target forms",
        arguments: [
            ("/websocket", "GET", RequestTarget.origin),
            ("/", "POST", .origin),
            ("*", "OPTIONS", .asterisk),
            ("http://chat.example.com/x?y=1", "GET", .absolute(authority: "chat.example.com", originForm: "/x?y=1")),
            ("HTTPS://chat.example.com:8443", "GET", .absolute(authority: "chat.example.com:8443", originForm: "/")),
            ("http://[::1]:80?q", "GET", .absolute(authority: "[::1]:80", originForm: "/?q")),
            ("http://evil.example/websocket", "GET", .absolute(authority: "evil.example", originForm: "/websocket")),
            // Found by FuzzHost: "/" and a combining mark make one Character; the target is bytes.
            ("http://a.example/\u{61A}x", "GET", .absolute(authority: "a.example", originForm: "/\u{61A}x")),
        ] as [(String, String, RequestTarget)]
    )
    func targetForms(target: String, method: String, expected: RequestTarget) {
        #expect(RequestTarget.parse(target, method: method) == .success(expected))
    }

    @Test(
        "Refused targets",
        arguments: [
            ("*", "GET", RequestTarget.Problem.asteriskWithoutOptions),
            ("x", "GET", .invalid),
            ("websocket", "GET", .invalid),
            ("ftp://chat.example.com/", "GET", .unsupportedScheme),
            ("http://user@chat.example.com/", "GET", .invalidAuthority),
            ("http:///x", "GET", .invalidAuthority),
            ("http://:80/x", "GET", .invalidAuthority),
            ("http://chat.example.com#frag", "GET", .invalid),
            ("chat.example.com:443", "CONNECT", .connect),
            ("/x", "CONNECT", .connect),
            ("", "GET", .invalid),
        ] as [(String, String, RequestTarget.Problem)]
    )
    func refusedTargets(target: String, method: String, problem: RequestTarget.Problem) {
        #expect(RequestTarget.parse(target, method: method) == .failure(problem))
    }

    /// The upstream head for a request, as text.
    static func upstream(_ target: String, headers: [(String, String)]) throws -> String {
        let head = HTTPRequestHead(version: .http1_1, method: .GET, uri: target, headers: HTTPHeaders(headers))
        let facts = try HeaderRewriter.inspect(head).get()
        let bytes = HeaderRewriter.upstreamRequestBytes(
            head,
            facts: facts,
            clientAddress: "192.0.2.9",
            scheme: "http",
            requestID: "id",
            defaultHost: "127.0.0.1:80",
            allocator: ByteBufferAllocator()
        )
        return String(buffer: bytes)
    }

    @Test("Absolute-form goes upstream in origin-form with Host and X-Forwarded-Host set to its authority")
    func absoluteForm() throws {
        let text = try Self.upstream("http://evil.example/x?y=1", headers: [("Host", "chat.example.com")])
        #expect(text.hasPrefix("GET /x?y=1 HTTP/1.1\r\n"), "\(text)")
        #expect(text.contains("\r\nHost: evil.example\r\n"))
        #expect(!text.contains("chat.example.com"), "one authority only: \(text)")
        #expect(text.contains("\r\nX-Forwarded-Host: evil.example\r\n"))
        let plain = try Self.upstream("/x", headers: [("Host", "chat.example.com")])
        #expect(plain.hasPrefix("GET /x HTTP/1.1\r\nHost: chat.example.com\r\n"), "origin-form untouched: \(plain)")
    }

    @Test(
        "A bad Host or target is a 400 problem",
        arguments: [
            ("/x", "evil@chat.example.com", RequestHeadProblem.invalidHost),
            ("/x", "chat.example.com/api", .invalidHost),
            ("x", "chat.example.com", .target(.invalid)),
            ("*", "chat.example.com", .target(.asteriskWithoutOptions)),
            ("http://a@b/", "chat.example.com", .target(.invalidAuthority)),
        ] as [(String, String, RequestHeadProblem)]
    )
    func refusedHeads(target: String, host: String, problem: RequestHeadProblem) {
        let head = HTTPRequestHead(version: .http1_1, method: .GET, uri: target, headers: ["Host": host])
        #expect(HeaderRewriter.inspect(head) == .failure(problem))
    }

    static func h2(_ fields: [(String, String)]) -> HTTP2HeadConverter.Problem? {
        if case .failure(let problem) = HTTP2HeadConverter.request(HPACKHeaders(fields), endStream: true) {
            return problem
        }
        return nil
    }

    @Test(
        "HTTP/2: :path must start with / (or be * for OPTIONS); :authority is host[:port] and agrees with Host",
        arguments: [
            (
                [(":method", "GET"), (":path", "x"), (":authority", "a")],
                HTTP2HeadConverter.Problem?.some(.invalidPath)
            ),
            ([(":method", "GET"), (":path", "*"), (":authority", "a")], .invalidPath),
            ([(":method", "OPTIONS"), (":path", "*"), (":authority", "a")], nil),
            ([(":method", "GET"), (":path", "/x"), (":authority", "u@a")], .invalidAuthority),
            ([(":method", "GET"), (":path", "/x"), (":authority", "a/b")], .invalidAuthority),
            ([(":method", "GET"), (":path", "/x"), (":authority", "")], .invalidAuthority),
            ([(":method", "GET"), (":path", "/x"), (":authority", "a"), ("host", "b")], .conflictingHost),
            ([(":method", "GET"), (":path", "/x"), (":authority", "A:1"), ("host", "a:1")], nil),
            ([(":method", "GET"), (":path", "/x"), ("host", "a b")], .invalidAuthority),
            ([(":method", "GET"), (":path", "/x"), (":authority", "[::1]:8443")], nil),
            // Found by FuzzHTTP2Head: a method or a field value HTTP/1.1 parsers refuse.
            ([(":method", "pOST"), (":path", "/x"), (":authority", "a")], .invalidMethod),
            ([(":method", "GE\u{c6}T"), (":path", "/x"), (":authority", "a")], .invalidMethod),
            ([(":method", "PROPFIND"), (":path", "/x"), (":authority", "a")], nil),
            ([(":method", "GET"), (":path", "/x"), (":authority", "a"), ("cookie", "b=\u{12}")], .invalidFieldValue),
            ([(":method", "GET"), (":path", "/x"), (":authority", "a"), ("x-tab", "a\tb")], nil),
        ] as [([(String, String)], HTTP2HeadConverter.Problem?)]
    )
    func http2Heads(fields: [(String, String)], problem: HTTP2HeadConverter.Problem?) {
        #expect(Self.h2([(":scheme", "https")] + fields) == problem, "\(fields)")
    }
}
