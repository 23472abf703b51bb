import Foundation
import Testing

/// Bad input from clients gets the right 4xx, never reaches a backend as something else, and the
/// proxy keeps serving everyone else.
@Suite("Malformed requests, smuggling and limits", .junctionTimeLimit(minutes: 5))
struct HardeningTests {
    /// A raw request and the status it must get.
    struct Case: CustomStringConvertible, Sendable {
        var name: String
        var request: String
        var status: Int
        var description: String { self.name }
    }

    static let cases: [Case] = [
        Case(
            name: "Content-Length with Transfer-Encoding",
            request:
                "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            status: 400
        ),
        Case(
            name: "two different Content-Lengths",
            request: "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
            status: 400
        ),
        Case(
            name: "Content-Length list",
            request: "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5, 6\r\n\r\nhello!",
            status: 400
        ),
        Case(
            name: "bad chunk size",
            request: "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
            status: 400
        ),
        Case(
            name: "Transfer-Encoding other than chunked",
            request: "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip\r\n\r\n",
            status: 400
        ),
        Case(
            name: "obfuscated Transfer-Encoding",
            request: "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n",
            status: 400
        ),
        Case(name: "HTTP/1.1 without Host", request: "GET /echo HTTP/1.1\r\n\r\n", status: 400),
        Case(name: "two Host headers", request: "GET /echo HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", status: 400),
        Case(name: "space before colon", request: "GET /echo HTTP/1.1\r\nHost : t\r\n\r\n", status: 400),
        Case(
            name: "bare LF line endings in chunked",
            request: "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5\nhello\n0\n\n",
            status: 400
        ),
        Case(name: "garbage", request: "\u{01}\u{02}hello\r\n\r\n", status: 400),
        Case(name: "unknown Expect", request: "GET /echo HTTP/1.1\r\nHost: t\r\nExpect: bananas\r\n\r\n", status: 400),
        Case(
            name: "header over max_header_bytes",
            request: "GET /echo HTTP/1.1\r\nHost: t\r\nX-Big: \(String(repeating: "a", count: 20000))\r\n\r\n",
            status: 431
        ),
        Case(
            name: "Content-Length over max_body_bytes",
            request: "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 2000000\r\n\r\n",
            status: 413
        ),
    ]

    @Test("Malformed and smuggling requests get their 4xx and the proxy keeps serving", arguments: Self.cases)
    func malformed(_ testCase: Case) throws {
        let monolith = try HTTPTestBackend(name: "monolith")
        defer { monolith.stop() }
        let junction = try JunctionProcess(
            yaml: TestConfig.split(
                monolith: [monolith.address],
                ddp: ["127.0.0.1:9"],
                limits: "  max_header_bytes: 16KiB\n  max_body_bytes: 1MiB"
            )
        )
        let client = try RawClient(port: junction.port("http"))
        try client.send(testCase.request)
        let answer = try client.receiveAll()
        #expect(answer.hasPrefix("HTTP/1.1 \(testCase.status) "), "\(testCase.name): \(answer.prefix(200))")
        #expect(answer.lowercased().contains("connection: close"), "the connection is not reused after this")
        #expect(monolith.stats.requests.load(ordering: .relaxed) == 0, "nothing reached the backend")
        // The proxy is unharmed.
        #expect(try Curl.status("http://127.0.0.1:\(junction.port("http"))/echo") == 200)
        #expect(junction.stop() == 0)
    }

    @Test("Pipelined requests are answered in order on one connection")
    func pipelining() throws {
        let monolith = try HTTPTestBackend(name: "monolith")
        defer { monolith.stop() }
        let junction = try JunctionProcess(yaml: TestConfig.split(monolith: [monolith.address], ddp: ["127.0.0.1:9"]))
        let client = try RawClient(port: junction.port("http"))
        // A slow request first: the fast ones behind it must still come back after it.
        let requests =
            "GET /slow?ms=300 HTTP/1.1\r\nHost: t\r\n\r\n" + "GET /echo?n=2 HTTP/1.1\r\nHost: t\r\n\r\n"
            + "POST /sink HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello"
            + "GET /nowhere HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
        try client.send(requests)
        let answer = try client.receiveAll()
        let slow = answer.range(of: "\"slept_ms\":300")
        let echo = answer.range(of: "\"target\":\"\\/echo?n=2\"") ?? answer.range(of: "\"target\":\"/echo?n=2\"")
        let sink = answer.range(of: "\"bytes\":5")
        #expect(slow != nil && echo != nil && sink != nil, "\(answer)")
        if let slow, let echo, let sink {
            #expect(slow.lowerBound < echo.lowerBound && echo.lowerBound < sink.lowerBound)
        }
        #expect(answer.components(separatedBy: "HTTP/1.1 200 OK").count - 1 == 4)
        #expect(junction.stop() == 0)
    }

    @Test("An incomplete request head times out with 408; an idle connection is closed")
    func headerTimeout() throws {
        let monolith = try HTTPTestBackend(name: "monolith")
        defer { monolith.stop() }
        let junction = try JunctionProcess(
            yaml: TestConfig.split(
                monolith: [monolith.address],
                ddp: ["127.0.0.1:9"],
                limits: "  client_header_timeout: 1s\n  client_idle_timeout: 2s"
            )
        )
        let slowloris = try RawClient(port: junction.port("http"))
        try slowloris.send("GET /echo HTTP/1.1\r\nHost: t\r\nX-A: 1\r\n")
        let started = Date()
        let answer = try slowloris.receiveAll()
        let elapsed = Date().timeIntervalSince(started)
        #expect(answer.hasPrefix("HTTP/1.1 408 "), "\(answer)")
        #expect(elapsed >= 0.7 && elapsed < 3, "answered after \(elapsed) s")

        // A keep-alive connection idle past client_idle_timeout is closed without an answer.
        let idle = try RawClient(port: junction.port("http"))
        try idle.send("GET /echo HTTP/1.1\r\nHost: t\r\n\r\n")
        _ = try idle.receive(until: "}")
        let idleStart = Date()
        let rest = try idle.receiveAll()
        #expect(rest.isEmpty)
        let idleElapsed = Date().timeIntervalSince(idleStart)
        #expect(idleElapsed >= 1.5 && idleElapsed < 4, "closed after \(idleElapsed) s")
        #expect(junction.stop() == 0)
    }

    @Test("A connection that never reaches HTTP (no PROXY header, no TLS handshake, no h2c preface) is closed")
    func setupTimeout() throws {
        let monolith = try HTTPTestBackend(name: "monolith")
        defer { monolith.stop() }
        let ddp = try DDPBackend(name: "ddp-a")
        defer { ddp.stop() }
        let certificates = try TestCertificates()
        let issued = try certificates.issue(commonName: "localhost", dnsNames: ["localhost"])
        let junction = try JunctionProcess(
            yaml: TestConfig.split(
                monolith: [monolith.address],
                ddp: [ddp.address],
                tls: true,
                http2: true,
                extraListeners: """
                      - name: h2c
                        address: 127.0.0.1:0
                        http2: true
                      - name: proxied
                        address: 127.0.0.1:0
                        proxy_protocol: true

                    """,
                limits: "  client_header_timeout: 1s"
            ),
            files: ["cert.pem": issued.certificatePEM, "key.pem": issued.keyPEM],
            waitForListeners: 4
        )
        // Silent clients hold a descriptor each: without this a few thousand would exhaust them.
        for listener in ["https", "h2c", "proxied"] {
            let silent = try RawClient(port: junction.port(listener))
            let started = Date()
            let answer = try silent.receiveAll()
            let elapsed = Date().timeIntervalSince(started)
            #expect(answer.isEmpty, "\(listener): \(answer)")
            #expect(elapsed >= 0.7 && elapsed < 4, "\(listener): closed after \(elapsed) s")
        }
        // A connection that did reach HTTP is not cut by it: a slow second request still works.
        let client = try RawClient(port: junction.port("h2c"))
        try client.send("GET /echo HTTP/1.1\r\nHost: t\r\n\r\n")
        _ = try client.receive(until: "}")
        Thread.sleep(forTimeInterval: 1.6)
        try client.send("GET /echo HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        #expect(
            try client.receiveAll().hasPrefix("HTTP/1.1 200 OK"),
            "the keep-alive connection outlived the setup deadline"
        )
        // Nor is a WebSocket upgraded on such a listener before the deadline.
        let driver = try WebSocketDriver()
        defer { driver.quit() }
        #expect(try driver.open("w", url: "ws://\(junction.address("h2c"))/websocket")["ok"] as? Bool == true)
        Thread.sleep(forTimeInterval: 1.6)
        #expect(try driver.echo("w", size: 100)["ok"] as? Bool == true, "the tunnel outlived the setup deadline")
        try driver.close("w")
        #expect(junction.stop() == 0)
    }

    @Test("A chunked body over max_body_bytes is cut with 413")
    func chunkedBodyLimit() throws {
        let monolith = try HTTPTestBackend(name: "monolith")
        defer { monolith.stop() }
        let junction = try JunctionProcess(
            yaml: TestConfig.split(
                monolith: [monolith.address],
                ddp: ["127.0.0.1:9"],
                limits: "  max_body_bytes: 64KiB"
            )
        )
        let output = try ProcessRunner.run(
            [
                "sh", "-c",
                "head -c 1000000 /dev/zero | curl -sS -o /dev/null -w '%{http_code}' -T - http://127.0.0.1:\(junction.port("http"))/sink",
            ]
        )
        #expect(output.stdout == "413", "\(output.stdout) \(output.stderr)")
        #expect(try Curl.status("http://127.0.0.1:\(junction.port("http"))/echo") == 200)
    }
}
