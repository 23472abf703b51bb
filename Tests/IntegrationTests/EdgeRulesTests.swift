import Foundation
import Testing

/// Request targets, Host values and HTTP/2 `:path` as an attacker sends them: the request as raw
/// bytes, and what the backend received as raw bytes.
@Suite("Request targets, Host and :path at the edge", .junctionTimeLimit(minutes: 5))
struct EdgeRulesTests {
    /// Junction with an `admin.example` route to one backend and everything else to another, on an
    /// HTTP/1.1 listener and an h2c one.
    final class Setup {
        let admin: HTTPTestBackend
        let chat: HTTPTestBackend
        let junction: JunctionProcess

        init() throws {
            self.admin = try HTTPTestBackend(name: "admin-app")
            self.chat = try HTTPTestBackend(name: "chat")
            self.junction = try JunctionProcess(
                yaml: """
                    listeners:
                      - name: http
                        address: 127.0.0.1:0
                      - name: h2c
                        address: 127.0.0.1:0
                        http2: true
                    routes:
                      - name: admin
                        match:
                          host: admin.example
                        pool: admin
                      - name: chat
                        pool: chat
                    pools:
                      admin:
                        backends:
                          - address: \(self.admin.address)
                      chat:
                        backends:
                          - address: \(self.chat.address)
                    logging:
                      access_log: "off"

                    """,
                waitForListeners: 2
            )
        }

        deinit {
            self.admin.stop()
            self.chat.stop()
        }

        /// Sends `request` on a new connection and returns the whole answer.
        func send(_ request: String) throws -> String {
            let client = try RawClient(port: self.junction.port("http"), receiveTimeout: 10)
            try client.send(request)
            return try client.receive(until: "\r\n\r\n")
        }
    }

    @Test("Absolute-form: routed by its authority, forwarded in origin-form with Host set to it")
    func absoluteForm() throws {
        let setup = try Setup()
        let answer = try setup.send(
            "GET http://admin.example/x?y=1 HTTP/1.1\r\nHost: chat.example.com\r\nConnection: close\r\n\r\n"
        )
        #expect(answer.hasPrefix("HTTP/1.1 200 "), "\(answer)")
        let received = setup.admin.stats.receivedText
        #expect(received.hasPrefix("GET /x?y=1 HTTP/1.1\r\nHost: admin.example\r\n"), "\(received)")
        #expect(received.contains("\r\nX-Forwarded-Host: admin.example\r\n"))
        #expect(!received.contains("chat.example.com"), "one authority reaches the backend: \(received)")
        #expect(setup.chat.stats.receivedText.isEmpty, "routed by the target's authority, not the Host")
    }

    @Test(
        "A Host that is not host[:port] is 400, even on a WebSocket upgrade; the backend sees nothing",
        arguments: ["chat.example.com/api", "evil@chat.example.com", "chat.example.com:99999", "chat example.com"]
    )
    func invalidHost(host: String) throws {
        let setup = try Setup()
        let answer = try setup.send(
            "GET /websocket HTTP/1.1\r\nHost: \(host)\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                + "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        #expect(answer.hasPrefix("HTTP/1.1 400 "), "\(host): \(answer)")
        #expect(setup.chat.stats.receivedText.isEmpty && setup.admin.stats.receivedText.isEmpty)
    }

    @Test(
        "Valid edge cases pass: IPv6 literals, ports, a trailing dot, the empty Host, OPTIONS *",
        arguments: [
            ("GET /x HTTP/1.1\r\nHost: [::1]:8080\r\n", "GET /x HTTP/1.1\r\nHost: [::1]:8080\r\n"),
            ("GET /x HTTP/1.1\r\nHost: [2001:db8::7]\r\n", "GET /x HTTP/1.1\r\nHost: [2001:db8::7]\r\n"),
            ("GET /x HTTP/1.1\r\nHost: chat.example.com.\r\n", "GET /x HTTP/1.1\r\nHost: chat.example.com.\r\n"),
            ("GET /x HTTP/1.1\r\nHost: chat.example.com:8443\r\n", "Host: chat.example.com:8443\r\n"),
            ("GET /x HTTP/1.1\r\nHost:\r\n", "GET /x HTTP/1.1\r\nHost: \r\n"),
            ("OPTIONS * HTTP/1.1\r\nHost: chat.example.com\r\n", "OPTIONS * HTTP/1.1\r\nHost: chat.example.com\r\n"),
        ]
    )
    func validEdges(request: String, forwarded: String) throws {
        let setup = try Setup()
        let answer = try setup.send(request + "Connection: close\r\n\r\n")
        #expect(answer.hasPrefix("HTTP/1.1 200 "), "\(request): \(answer)")
        let received = setup.chat.stats.receivedText
        #expect(received.contains(forwarded), "\(request): \(received)")
    }

    @Test(
        "Targets that are neither origin-, absolute- nor asterisk-form with OPTIONS are 400",
        arguments: [
            "GET x HTTP/1.1", "GET * HTTP/1.1", "GET ftp://chat.example.com/ HTTP/1.1",
            "GET http://user@chat.example.com/ HTTP/1.1", "CONNECT chat.example.com:443 HTTP/1.1",
        ]
    )
    func invalidTargets(requestLine: String) throws {
        let setup = try Setup()
        let answer = try setup.send(requestLine + "\r\nHost: chat.example.com\r\n\r\n")
        #expect(answer.hasPrefix("HTTP/1.1 400 "), "\(requestLine): \(answer)")
        #expect(setup.chat.stats.receivedText.isEmpty, "\(requestLine) never reached the backend")
    }

    @Test(
        "HTTP/2: a :path without / is a stream error, a bad :authority 400 or a stream error, OPTIONS * and [::1] pass",
        arguments: [
            ("GET", "x", "chat.example.com", "reset", 1),
            ("GET", "/x", "evil@chat.example.com", "status", 400),
            // A character outside RFC 3986's authority: nghttp2's message checks find it malformed
            // (RFC 9113 8.1.1) and reset the stream before Junction sees the head.
            ("GET", "/x", "chat.example.com/api", "reset", 1),
            ("OPTIONS", "*", "chat.example.com", "status", 200),
            ("GET", "/x", "[::1]:8080", "status", 200),
        ]
    )
    func http2(method: String, path: String, authority: String, outcome: String, code: Int) throws {
        let setup = try Setup()
        let fields = [[":method", method], [":scheme", "http"], [":path", path], [":authority", authority]]
        let json = String(decoding: try JSONSerialization.data(withJSONObject: fields), as: UTF8.self)
        let output = try ProcessRunner.run(
            ["python3", TestPaths.fixture("h2_probe.py"), String(setup.junction.port("h2c")), "headers", json],
            timeout: 30
        )
        let result = try JSONSerialization.jsonObject(with: Data(output.stdout.utf8)) as? [String: Any] ?? [:]
        #expect(result["result"] as? [AnyHashable] == [outcome, code], "\(path) \(authority): \(output.stdout)")
        if code == 200 {
            // HTTP/2 field names are lowercase: `host` upstream.
            let received = setup.chat.stats.receivedText
            #expect(received.hasPrefix("\(method) \(path) HTTP/1.1\r\nhost: \(authority)\r\n"), "\(received)")
        } else {
            #expect(setup.chat.stats.receivedText.isEmpty)
        }
    }
}
