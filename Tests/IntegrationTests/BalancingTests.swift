import Foundation
import Testing

/// least_conn counting open tunnels, and failover when a backend dies.
@Suite("Balancing and failover", .junctionTimeLimit(minutes: 5))
struct BalancingTests {
    @Test("least_conn counts open WebSocket tunnels: new tunnels go to the emptier backend")
    func leastConnWithTunnels() throws {
        let a = try DDPBackend(name: "ddp-a")
        defer { a.stop() }
        let b = try DDPBackend(name: "ddp-b")
        defer { b.stop() }
        let monolith = try HTTPTestBackend(name: "monolith")
        defer { monolith.stop() }
        let junction = try JunctionProcess(
            yaml: TestConfig.split(
                monolith: [monolith.address],
                ddp: [a.address, b.address],
                limits: "  shutdown_grace: 2s"
            ) + "admin:\n  address: 127.0.0.1:0\n",
            waitForListeners: 2
        )
        let url = "ws://127.0.0.1:\(junction.port("http"))/websocket"
        let driver = try WebSocketDriver()
        defer { driver.quit() }

        // Six tunnels held open split evenly: each new one goes where fewer are open.
        var placement: [String: String] = [:]
        for index in 0..<6 {
            let answer = try driver.open("t\(index)", url: url)
            #expect(answer["ok"] as? Bool == true, "\(answer)")
            placement["t\(index)"] = answer["backend"] as? String
        }
        let onA = placement.filter { $0.value == "ddp-a" }.map(\.key).sorted()
        let onB = placement.filter { $0.value == "ddp-b" }.map(\.key).sorted()
        #expect(onA.count == 3 && onB.count == 3, "placement: \(placement)")

        // Close three tunnels on ddp-a: it now has 0 open against ddp-b's 3, so the next three
        // tunnels all go to ddp-a (round robin would have sent some to ddp-b).
        for id in onA { try driver.close(id) }
        // Until the proxy has seen the closes.
        #expect(
            JunctionProcess.wait(timeout: 5) {
                let status = try? Curl.json("http://\(junction.address("admin"))/status")
                let pool = (status?["pools"] as? [String: Any])?["ddp-streamer"] as? [String: Any]
                let backends = pool?["backends"] as? [[String: Any]] ?? []
                return backends.first { $0["address"] as? String == a.address }?["active"] as? Int == 0
            }
        )
        for index in 6..<9 {
            let answer = try driver.open("t\(index)", url: url)
            #expect(answer["backend"] as? String == "ddp-a", "tunnel \(index) went to \(answer["backend"] ?? "?")")
        }
        driver.quit()
        #expect(junction.stop() == 0)
    }

    @Test("A killed backend: the next requests go to the other backend, none fails")
    func killedBackend() throws {
        let first = try HTTPTestBackend(name: "mono-1")
        let second = try HTTPTestBackend(name: "mono-2")
        defer { second.stop() }
        let junction = try JunctionProcess(
            yaml: TestConfig.split(monolith: [first.address, second.address], ddp: ["127.0.0.1:9"])
        )
        let url = "http://127.0.0.1:\(junction.port("http"))/echo"
        var seen: Set<String> = []
        for _ in 0..<10 {
            seen.insert(try Curl.json(url)["backend"] as? String ?? "?")
        }
        #expect(seen == ["mono-1", "mono-2"], "both backends serve while both are up")

        first.stop()
        // Pooled connections to mono-1 are now dead and its port refuses: every request must still
        // succeed, on mono-2 (a refused connect is retried on another backend for any method).
        for index in 0..<30 {
            let method = index.isMultiple(of: 2) ? "GET" : "POST"
            let answer = try Curl.json(url, extra: method == "POST" ? ["-d", "x=1"] : [])
            #expect(answer["backend"] as? String == "mono-2", "request \(index) (\(method)): \(answer)")
        }
        #expect(junction.stop() == 0)
    }

    @Test("A pool whose only backend is down answers 502, then 503 with Retry-After while it backs off")
    func allBackendsDown() throws {
        let monolith = try HTTPTestBackend(name: "monolith")
        defer { monolith.stop() }
        let junction = try JunctionProcess(yaml: TestConfig.split(monolith: [monolith.address], ddp: ["127.0.0.1:9"]))
        let url = "http://127.0.0.1:\(junction.port("http"))/websocket"
        // Two requests back to back on one connection: the first finds the refused backend, the
        // second finds it backing off.
        let output = try Curl.run(["-D", "-", "-w", "time=%{time_total}\\n", url, url])
        let responses = output.components(separatedBy: "HTTP/1.1 ").dropFirst()
        #expect(responses.count == 2, "\(output)")
        let first = responses.first ?? ""
        let second = responses.dropFirst().first ?? ""
        #expect(first.hasPrefix("502 "), "refused connect, no other backend: \(first)")
        #expect(first.contains("502 Bad Gateway: no backend of pool ddp-streamer could be reached"))
        #expect(second.hasPrefix("503 "), "\(second)")
        #expect(second.lowercased().contains("retry-after: 1"))
        #expect(second.contains("503 Service Unavailable: no healthy backend in pool ddp-streamer (request "))
        let seconds = second.split(separator: "time=").last.flatMap {
            Double($0.trimmingCharacters(in: .whitespacesAndNewlines))
        }
        #expect((seconds ?? 9) < 0.5, "answered at once: \(seconds ?? -1) s")
        // The monolith is unaffected.
        #expect(try Curl.status("http://127.0.0.1:\(junction.port("http"))/") == 200)
    }

    @Test("A backend that does not answer within timeouts.response gets 504; the pool keeps serving")
    func responseTimeout() throws {
        let monolith = try HTTPTestBackend(name: "monolith")
        defer { monolith.stop() }
        let junction = try JunctionProcess(
            yaml: TestConfig.split(
                monolith: [monolith.address],
                ddp: ["127.0.0.1:9"],
                monolithPoolExtra: "    timeouts:\n      response: 1s"
            )
        )
        let base = "http://127.0.0.1:\(junction.port("http"))"
        let started = Date()
        let answer = try Curl.run(["-D", "-", base + "/slow?ms=3000"])
        let elapsed = Date().timeIntervalSince(started)
        #expect(answer.hasPrefix("HTTP/1.1 504 "), "\(answer)")
        #expect(answer.contains("504 Gateway Timeout: a backend of pool monolith did not answer in time"))
        // A 504 at all means the timeout fired before the backend's answer at 3 s.
        #expect(elapsed >= 0.9, "answered after \(elapsed) s")
        #expect(try Curl.json(base + "/slow?ms=100")["backend"] as? String == "monolith")
    }

    @Test("max_connections: a connection over the limit waits until one closes, then is served")
    func maxConnections() throws {
        let monolith = try HTTPTestBackend(name: "monolith")
        defer { monolith.stop() }
        let junction = try JunctionProcess(
            yaml: TestConfig.split(monolith: [monolith.address], ddp: ["127.0.0.1:9"], limits: "  max_connections: 2")
        )
        let port = junction.port("http")
        var holders = [try RawClient(port: port), try RawClient(port: port)]
        for holder in holders {
            try holder.send("GET /echo HTTP/1.1\r\nHost: t\r\n\r\n")
            _ = try holder.receive(until: "}")
        }
        // The kernel accepts the third connection into the backlog; Junction does not take it yet.
        let waiting = try RawClient(port: port, receiveTimeout: 1)
        try waiting.send("GET /echo HTTP/1.1\r\nHost: t\r\n\r\n")
        #expect(throws: (any Error).self, "no answer while two connections are open") { try waiting.receive() }
        holders.removeFirst()  // closes one
        let served = try RawClient.waitForAnswer(waiting, until: "}", timeout: 5)
        #expect(served.hasPrefix("HTTP/1.1 200 OK"), "\(served)")
    }
}
