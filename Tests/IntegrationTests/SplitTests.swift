import Foundation
import Testing

/// The Rocket.Chat split through the real proxy, with curl and a real WebSocket client, over
/// plain HTTP and TLS.
@Suite("Rocket.Chat split", .junctionTimeLimit(minutes: 5))
struct SplitTests {
    @Test("WebSocket paths go to ddp-streamer, everything else to the monolith, over http and https")
    func split() throws {
        let monolith = try HTTPTestBackend(name: "monolith")
        defer { monolith.stop() }
        let ddp = try DDPBackend(name: "ddp-a")
        defer { ddp.stop() }
        let certificates = try TestCertificates()
        let issued = try certificates.issue(commonName: "localhost", dnsNames: ["localhost"])
        let directory = try TestPaths.makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let caFile = directory.appendingPathComponent("ca.pem").path
        try certificates.caPEM.write(toFile: caFile, atomically: true, encoding: .utf8)
        let junction = try JunctionProcess(
            yaml: TestConfig.split(monolith: [monolith.address], ddp: [ddp.address], tls: true),
            files: ["cert.pem": issued.certificatePEM, "key.pem": issued.keyPEM],
            waitForListeners: 2
        )
        let plain = "http://127.0.0.1:\(junction.port("http"))"
        let secure = "https://localhost:\(junction.port("https"))"
        let tlsArguments = ["--cacert", caFile, "--resolve", "localhost:\(junction.port("https")):127.0.0.1"]

        for (base, extra) in [(plain, [String]()), (secure, tlsArguments)] {
            // Plain GETs of every kind land on the monolith...
            for path in ["/", "/api/v1/info", "/sockjsx", "/home?x=/websocket"] {
                let echo = try Curl.json(base + path, extra: extra)
                #expect(echo["backend"] as? String == "monolith", "\(base)\(path)")
                #expect(echo["target"] as? String == path, "target forwarded byte for byte")
            }
            // ...and SockJS info requests on /sockjs go to ddp-streamer.
            let info = try Curl.json(base + "/sockjs/info?cb=abc", extra: extra)
            #expect(info["backend"] as? String == "ddp-a")
            #expect(info["websocket"] as? Bool == true)
        }

        // WebSockets: raw DDP on exactly /websocket, SockJS framing elsewhere, over ws:// and wss://.
        let driver = try WebSocketDriver()
        defer { driver.quit() }
        let wsPlain = "ws://127.0.0.1:\(junction.port("http"))"
        let wsSecure = "wss://localhost:\(junction.port("https"))"
        var opened = 0
        for (base, cafile) in [(wsPlain, nil), (wsSecure, caFile)] as [(String, String?)] {
            for path in ["/websocket", "/sockjs/123/abcdef/websocket", "/websocket?x=1"] {
                opened += 1
                let id = "s\(opened)"
                let answer = try driver.open(id, url: base + path, cafile: cafile)
                #expect(answer["ok"] as? Bool == true, "\(base)\(path): \(answer)")
                #expect(answer["backend"] as? String == "ddp-a")
                #expect(answer["session"] as? String == "ddp-a-session", "DDP connect -> connected")
                #expect(answer["target"] as? String == path, "the upgrade target is forwarded untouched")
                #expect(answer["xff"] as? String == "127.0.0.1")
                let echo = try driver.echo(id, size: 200_000)
                #expect(echo["ok"] as? Bool == true, "a 200 kB DDP message round-trips through the tunnel")
                try driver.close(id)
            }
        }
        #expect(junction.waitForStdout { $0.components(separatedBy: " proto=ws ").count - 1 == opened })
        #expect(junction.stop() == 0)
    }

    @Test("Headers: Host kept, hop-by-hop removed, X-Forwarded-*, X-Real-IP and X-Request-ID set")
    func headers() throws {
        let monolith = try HTTPTestBackend(name: "monolith")
        defer { monolith.stop() }
        let junction = try JunctionProcess(yaml: TestConfig.split(monolith: [monolith.address], ddp: ["127.0.0.1:9"]))
        let url = "http://127.0.0.1:\(junction.port("http"))/echo"
        let body = try Curl.run([
            "-D", "-", "-H", "Host: chat.example.com", "-H", "X-Forwarded-For: 203.0.113.7",
            "-H", "Connection: keep-alive, X-Secret", "-H", "X-Secret: hop", "-H", "Keep-Alive: timeout=5",
            "-H", "X-Forwarded-Proto: https", "-H", "X-Real-IP: 1.2.3.4", "-H", "X-Request-ID: trace-42", url,
        ])
        let parts = body.components(separatedBy: "\r\n\r\n")
        let responseHead = parts[0].lowercased()
        let echo = try JSONSerialization.jsonObject(with: Data(parts[1].utf8)) as! [String: Any]
        let headers = (echo["headers"] as! [[String]]).map { ($0[0].lowercased(), $0[1]) }
        func values(_ name: String) -> [String] { headers.filter { $0.0 == name }.map(\.1) }
        #expect(values("host") == ["chat.example.com"])
        #expect(values("x-forwarded-for") == ["203.0.113.7, 127.0.0.1"])
        #expect(values("x-forwarded-proto") == ["http"])
        #expect(values("x-forwarded-host") == ["chat.example.com"])
        #expect(values("x-real-ip") == ["127.0.0.1"])
        #expect(values("x-request-id") == ["trace-42"])
        #expect(values("x-secret").isEmpty, "a header named by Connection is hop-by-hop")
        #expect(values("keep-alive").isEmpty)
        #expect(values("connection").isEmpty)
        #expect(responseHead.contains("x-request-id: trace-42"))

        // A malformed request id is replaced by a generated one, returned to the client.
        let generated = try Curl.run(["-D", "-", "-o", "/dev/null", "-H", "X-Request-ID: bad id!", url])
        let idLine = generated.split(separator: "\r\n").first { $0.lowercased().hasPrefix("x-request-id:") }
        let id = idLine.map { String($0.split(separator: ":")[1].trimmingCharacters(in: .whitespaces)) } ?? ""
        #expect(id.count == 32 && id.allSatisfy(\.isHexDigit), "generated id: \(id)")
        #expect(junction.waitForStdout { $0.contains("id=\(id)") }, "the access log names the request id")
    }

    @Test("Upstream keep-alive: many client requests reuse a few backend connections")
    func keepAliveReuse() throws {
        let monolith = try HTTPTestBackend(name: "monolith")
        defer { monolith.stop() }
        let junction = try JunctionProcess(yaml: TestConfig.split(monolith: [monolith.address], ddp: ["127.0.0.1:9"]))
        let url = "http://127.0.0.1:\(junction.port("http"))/echo"
        // 20 curl processes, one after the other, 10 requests each on one client connection.
        for _ in 0..<20 {
            let urls = (0..<10).flatMap { _ in ["-o", "/dev/null", url] }
            let output = try Curl.run(["-w", "%{http_code}\\n"] + urls)
            #expect(output.split(separator: "\n").allSatisfy { $0 == "200" })
        }
        #expect(monolith.stats.requests.load(ordering: .relaxed) == 200)
        let connections = monolith.stats.connections.load(ordering: .relaxed)
        #expect(connections <= 2, "200 requests over \(connections) upstream connections (one per event loop at most)")
    }

    @Test("The access log in JSON: one parseable line per request with its route, pool, backend and id")
    func jsonAccessLog() throws {
        let monolith = try HTTPTestBackend(name: "monolith")
        defer { monolith.stop() }
        let yaml = TestConfig.split(monolith: [monolith.address], ddp: ["127.0.0.1:9"])
            .replacingOccurrences(of: "  level: info", with: "  level: info\n  format: json")
        let junction = try JunctionProcess(yaml: yaml)
        let url = "http://127.0.0.1:\(junction.port("http"))"
        _ = try Curl.run(["-o", "/dev/null", "-H", "X-Request-ID: json-1", "-d", "12345", url + "/echo?q=\"x\""])
        _ = try Curl.run(["-o", "/dev/null", "-H", "X-Request-ID: json-2", url + "/websocket"])
        #expect(junction.waitForStdout { $0.contains("json-2") })
        let lines = junction.stdout.split(separator: "\n").filter { $0.hasPrefix("{") }
        let records = try lines.map { try JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any] }
        let first = try #require(records.first { $0["request_id"] as? String == "json-1" })
        #expect(first["method"] as? String == "POST")
        #expect(first["target"] as? String == "/echo?q=\"x\"", "client-controlled text is escaped, the line stays JSON")
        #expect(first["status"] as? Int == 200)
        #expect(first["bytes_in"] as? Int == 5)
        #expect((first["bytes_out"] as? Int ?? 0) > 0)
        #expect(first["route"] as? String == "monolith")
        #expect(first["pool"] as? String == "monolith")
        #expect(first["backend"] as? String == monolith.address)
        #expect(first["duration"] is Double || first["duration"] is Int)
        #expect(first["upstream_time"] is Double || first["upstream_time"] is Int, "a backend answered")
        #expect(first["protocol"] as? String == "http/1.1")
        #expect((first["user_agent"] as? String)?.hasPrefix("curl/") == true)
        #expect(first["client"] as? String == "127.0.0.1")
        #expect(first["listener"] as? String == "http")
        let second = try #require(records.first { $0["request_id"] as? String == "json-2" })
        #expect(second["status"] as? Int == 502)
        #expect(second["pool"] as? String == "ddp-streamer")
        #expect(second["upstream_time"] == nil, "no backend answered")
    }
}
