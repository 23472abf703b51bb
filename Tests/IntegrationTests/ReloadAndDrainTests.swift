import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// Reload under load, graceful drain, and the PROXY protocol: what an operator meets on a bad day.
@Suite("Reload, drain, PROXY protocol", .junctionTimeLimit(minutes: 5))
struct ReloadAndDrainTests {
    @Test(
        "SIGHUP under load with 100 WebSockets open: no failed request, every WebSocket still echoes, the new backend gets traffic"
    )
    func reloadUnderLoad() throws {
        let first = try HTTPTestBackend(name: "first")
        defer { first.stop() }
        let added = try HTTPTestBackend(name: "added")
        defer { added.stop() }
        let ddp = try DDPBackend(name: "ddp-a")
        defer { ddp.stop() }
        let admin = "admin:\n  address: 127.0.0.1:0\n"
        let junction = try JunctionProcess(
            yaml: TestConfig.split(monolith: [first.address], ddp: [ddp.address]) + admin,
            waitForListeners: 2
        )
        let port = junction.port("http")
        let driver = try WebSocketDriver()
        defer { driver.quit() }
        for index in 0..<100 {
            let answer = try driver.open("w\(index)", url: "ws://127.0.0.1:\(port)/websocket")
            #expect(answer["ok"] as? Bool == true, "WebSocket \(index): \(answer)")
        }
        let load = Process()
        load.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        load.arguments = ["h2load", "--h1", "-n", "3000", "-c", "8", "-t", "1", "http://127.0.0.1:\(port)/echo"]
        let output = Pipe()
        load.standardOutput = output
        load.standardError = output
        try load.run()
        // Reload once the load is flowing.
        #expect(JunctionProcess.wait(timeout: 10) { first.stats.proxiedRequests.load(ordering: .relaxed) >= 100 })
        // The new file adds a backend to the monolith pool and a second listener.
        let reloaded =
            TestConfig.split(
                monolith: [first.address, added.address],
                ddp: [ddp.address],
                extraListeners: "  - name: second\n    address: 127.0.0.1:0\n"
            ) + admin
        try reloaded.write(toFile: junction.configPath, atomically: true, encoding: .utf8)
        junction.signal(SIGHUP)
        load.waitUntilExit()
        let report = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        #expect(report.contains("3000 succeeded, 0 failed, 0 errored, 0 timeout"), "\(report)")
        #expect(report.contains("status codes: 3000 2xx"), "\(report)")
        #expect(junction.waitForStderr { $0.contains("config reloaded generation=2") })
        #expect(junction.waitForStdout { $0.contains("listening name=second") }, "the new listener is bound")
        // The listener that stayed kept its socket; the new one serves too.
        #expect(try Curl.status("http://127.0.0.1:\(port)/echo") == 200)
        #expect(try Curl.status("http://127.0.0.1:\(junction.port("second"))/echo") == 200)
        for index in 0..<100 {
            #expect(
                try driver.echo("w\(index)", size: 64)["ok"] as? Bool == true,
                "WebSocket \(index) after the reload"
            )
        }
        if added.stats.proxiedRequests.load(ordering: .relaxed) == 0 {
            for _ in 0..<10 { _ = try Curl.status("http://127.0.0.1:\(port)/echo") }
        }
        #expect(added.stats.proxiedRequests.load(ordering: .relaxed) > 0, "the backend the reload added gets traffic")
        let status = try Curl.json("http://\(junction.address("admin"))/status")
        #expect((status["config"] as? [String: Any])?["generation"] as? Int == 2, "/status shows the generation")
        #expect(((status["config"] as? [String: Any])?["loaded_at"] as? Double ?? 0) > 1_700_000_000)
        // The tunnels opened under generation 1 still count under generation 2.
        let pools = status["pools"] as? [String: Any]
        #expect((pools?["ddp-streamer"] as? [String: Any])?["tunnels"] as? Int == 100, "\(status)")
        let metrics = try Curl.run(["-s", "http://\(junction.address("admin"))/metrics"])
        #expect(metrics.contains("junction_tunnels_active{pool=\"ddp-streamer\"} 100"), "\(metrics)")

        // A reload that drops a backend drops its series too, and says what changed.
        try (TestConfig.split(monolith: [added.address], ddp: [ddp.address]) + admin)
            .write(toFile: junction.configPath, atomically: true, encoding: .utf8)
        junction.signal(SIGHUP)
        #expect(junction.waitForStderr { $0.contains("config reloaded generation=3") })
        #expect(
            junction.stderr.contains("backends changed by reload added= pool=monolith removed=\(first.address)"),
            "\(junction.stderr)"
        )
        let after = try Curl.run(["-s", "http://\(junction.address("admin"))/metrics"])
        #expect(!after.contains("backend=\"\(first.address)\""), "\(after)")
        #expect(after.contains("backend=\"\(added.address)\""), "\(after)")
        #expect(after.contains("junction_tunnels_active{pool=\"ddp-streamer\"} 100"), "\(after)")
    }

    @Test(
        "A backend a reload removes stays in /status (draining, with its tunnels) and /metrics until its last tunnel closes; so does a removed pool; /status names the process"
    )
    func removedBackendStaysListed() throws {
        let a = try DDPBackend(name: "A")
        defer { a.stop() }
        let b = try DDPBackend(name: "B")
        defer { b.stop() }
        // drain_rate 0: the removed backend's tunnels stay until their clients close them.
        let yaml = RuntimeControlTests.ddpConfig([a.address, b.address], poolExtra: "    drain_rate: 0")
        let startedBefore = Date().timeIntervalSince1970.rounded(.down)
        let junction = try JunctionProcess(yaml: yaml, files: RuntimeControlTests.files, waitForListeners: 2)
        let startedAfter = Date().timeIntervalSince1970
        let admin = "http://\(junction.address("admin"))"
        let metrics = { (try? Curl.run(["-s", admin + "/metrics"])) ?? "" }
        let pools = { ((try? Curl.json(admin + "/status"))?["pools"] as? [String: Any]) ?? [:] }

        // The process: the child's pid, started while the test ran, this build's version.
        let process = try Curl.json(admin + "/status")["process"] as? [String: Any] ?? [:]
        #expect(process["pid"] as? Int == Int(junction.pid), "\(process)")
        let startedAt = Double(process["started_at"] as? Int ?? 0)
        #expect(startedAt >= startedBefore && startedAt <= startedAfter, "\(process) within the test's run")
        let version = try ProcessRunner.run([TestPaths.junctionBinary, "version"]).stdout
        #expect(
            version.trimmingCharacters(in: .whitespacesAndNewlines)
                == "junction \(process["version"] as? String ?? "?")"
        )

        let driver = try WebSocketDriver()
        defer { driver.quit() }
        var sessions: [String: [String]] = [:]
        for index in 0..<4 {
            let answer = try driver.open("w\(index)", url: "ws://127.0.0.1:\(junction.port("http"))/websocket")
            #expect(answer["ok"] as? Bool == true, "\(answer)")
            sessions[answer["backend"] as? String ?? "?", default: []].append("w\(index)")
        }
        let (onA, onB) = (sessions["A"] ?? [], sessions["B"] ?? [])
        try #require(onA.count == 2 && onB.count == 2, "least connections: \(sessions)")

        // The reload removes A: it stays listed, draining, with its two tunnels.
        try RuntimeControlTests.ddpConfig([b.address], poolExtra: "    drain_rate: 0")
            .write(toFile: junction.configPath, atomically: true, encoding: .utf8)
        junction.signal(SIGHUP)
        #expect(junction.waitForStderr { $0.contains("config reloaded generation=2") })
        let removed = try RuntimeControlTests.backends(junction, pool: "ddp-streamer")[a.address] ?? [:]
        #expect(removed["state"] as? String == "draining" && removed["removed"] as? Bool == true, "\(removed)")
        #expect(removed["tunnels"] as? Int == 2 && removed["active"] as? Int == 2, "\(removed)")
        let kept = try RuntimeControlTests.backends(junction, pool: "ddp-streamer")[b.address] ?? [:]
        #expect(kept["state"] as? String == "active" && kept["removed"] as? Bool == false, "\(kept)")
        let series = "{pool=\"ddp-streamer\",backend=\"\(a.address)\"}"
        let scraped = metrics()
        #expect(scraped.contains("junction_backend_tunnels\(series) 2"), "\(scraped)")
        #expect(scraped.contains("junction_upstream_active_connections\(series) 2"), "\(scraped)")
        #expect(!scraped.contains("junction_backend_healthy\(series)"), "no longer checked: \(scraped)")
        #expect(try driver.echo(onA[0], size: 64)["ok"] as? Bool == true, "the draining tunnel still relays")

        // It takes no writes, and the dashboard offers none for it.
        let drain = try RuntimeControlTests.post(junction, "/pools/ddp-streamer/backends/\(a.address)/drain")
        #expect(drain.status == 409 && (drain.json["error"] as? String)?.contains("removed") == true, "\(drain)")
        #expect(drain.json["state"] as? String == "draining", "\(drain)")
        #expect(
            try RuntimeControlTests.post(junction, "/pools/ddp-streamer/backends/\(a.address)/enable").status == 409
        )
        let dom = try ProcessRunner.run(
            [
                "chromium", "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
                "--virtual-time-budget=3000", "--dump-dom", admin + "/",
            ],
            timeout: 90
        ).stdout
        #expect(dom.contains("<td>\(a.address)</td>"), "\(dom)")
        #expect(dom.contains("<td class=\"draining\">draining (removed)</td>"), "\(dom)")
        #expect(dom.contains("<td class=\"muted\">leaves when its tunnels close</td>"), "\(dom)")
        #expect(!dom.contains("drain \(a.address)</button>") && !dom.contains("enable \(a.address)</button>"), "\(dom)")
        #expect(dom.contains("<button class=\"write\">drain \(b.address)</button>"), "\(dom)")
        #expect(dom.contains("<title>Junction: 2 pools, 2/2 backends up</title>"), "removed ones not counted: \(dom)")

        // Its clients close: one tunnel left, then none, and A is gone from both.
        try driver.close(onA[0])
        #expect(
            JunctionProcess.wait(timeout: 10) {
                (try? RuntimeControlTests.backends(junction, pool: "ddp-streamer")[a.address]?["tunnels"] as? Int) == 1
            }
        )
        try driver.close(onA[1])
        #expect(
            JunctionProcess.wait(timeout: 10) {
                (try? RuntimeControlTests.backends(junction, pool: "ddp-streamer"))?.keys.sorted() == [b.address]
            },
            "\(pools())"
        )
        #expect(JunctionProcess.wait(timeout: 10) { !metrics().contains("backend=\"\(a.address)\"") }, "\(metrics())")

        // A reload that removes the whole pool (its route goes to a new one): ddp-streamer stays
        // listed, removed, with B draining its two tunnels, until they close.
        try RuntimeControlTests.ddpConfig([b.address], poolExtra: "    drain_rate: 0")
            .replacingOccurrences(of: "ddp-streamer", with: "ddp-next")
            .write(toFile: junction.configPath, atomically: true, encoding: .utf8)
        junction.signal(SIGHUP)
        #expect(junction.waitForStderr { $0.contains("config reloaded generation=3") })
        let retired = pools()["ddp-streamer"] as? [String: Any] ?? [:]
        #expect(retired["removed"] as? Bool == true && retired["balance"] == nil && retired["tunnels"] as? Int == 2)
        let retiredBackends = retired["backends"] as? [[String: Any]] ?? []
        #expect(retiredBackends.map { $0["address"] as? String } == [b.address], "\(retired)")
        #expect(
            retiredBackends.first?["state"] as? String == "draining" && retiredBackends.first?["tunnels"] as? Int == 2
        )
        #expect((pools()["ddp-next"] as? [String: Any])?["removed"] as? Bool == false)
        #expect(metrics().contains("junction_backend_tunnels{pool=\"ddp-streamer\",backend=\"\(b.address)\"} 2"))
        #expect(metrics().contains("junction_tunnels_active{pool=\"ddp-streamer\"} 2"), "\(metrics())")
        #expect(try RuntimeControlTests.post(junction, "/pools/ddp-streamer/rebalance").status == 409)
        for id in onB { try driver.close(id) }
        #expect(JunctionProcess.wait(timeout: 10) { pools()["ddp-streamer"] == nil }, "\(pools())")
        #expect(
            JunctionProcess.wait(timeout: 10) {
                let text = metrics()
                return !text.contains("junction_backend_tunnels{pool=\"ddp-streamer\"")
                    && !text.contains("junction_tunnels_active{pool=\"ddp-streamer\"}")
            },
            "\(metrics())"
        )
        #expect(try RuntimeControlTests.post(junction, "/pools/ddp-streamer/rebalance").status == 404)
    }

    @Test("A broken file on SIGHUP is refused with a logged error; the running config keeps serving")
    func brokenReload() throws {
        let backend = try HTTPTestBackend(name: "web")
        defer { backend.stop() }
        let junction = try JunctionProcess(yaml: TestConfig.split(monolith: [backend.address], ddp: ["127.0.0.1:9"]))
        let url = "http://127.0.0.1:\(junction.port("http"))/echo"
        try "listeners: [\nroutes: nope\n".write(toFile: junction.configPath, atomically: true, encoding: .utf8)
        junction.signal(SIGHUP)
        #expect(
            junction.waitForStderr {
                $0.contains("reload refused, generation 1 keeps serving") && $0.contains("invalid YAML")
            }
        )
        #expect(try Curl.json(url)["backend"] as? String == "web")
        // A valid file with an unknown pool is refused the same way.
        try TestConfig.split(monolith: [backend.address], ddp: ["127.0.0.1:9"])
            .replacingOccurrences(of: "pool: monolith", with: "pool: nowhere")
            .write(toFile: junction.configPath, atomically: true, encoding: .utf8)
        junction.signal(SIGHUP)
        #expect(junction.waitForStderr { $0.contains("unknown pool \"nowhere\"") })
        #expect(try Curl.json(url)["backend"] as? String == "web")
        #expect(junction.stop() == 0)
    }

    @Test("SIGTERM sends GOAWAY to HTTP/2 clients and exits 0")
    func drainHTTP2() throws {
        let backend = try HTTPTestBackend(name: "web")
        defer { backend.stop() }
        let junction = try JunctionProcess(
            yaml: TestConfig.split(
                monolith: [backend.address],
                ddp: ["127.0.0.1:9"],
                extraListeners: "  - name: h2c\n    address: 127.0.0.1:0\n    http2: true\n",
                limits: "  shutdown_grace: 3s"
            ),
            waitForListeners: 2
        )
        let probe = try LineProcess([
            "python3", TestPaths.fixture("h2_probe.py"), String(junction.port("h2c")), "goaway", "10",
        ])
        #expect(try probe.readLine().contains("\"ready\": [\"status\", 200]"))
        junction.signal(SIGTERM)
        let result = try probe.readLine()
        #expect(result.contains("\"goaway\", 0"), "GOAWAY with NO_ERROR: \(result)")
        #expect(junction.waitForExit(timeout: 10) == 0)
    }

    /// A PROXY protocol v2 header for a TCP4 connection from `source`.
    static func proxyV2(source: [UInt8], sourcePort: UInt16) -> [UInt8] {
        ProxyHeaderV2.signature + [0x21, 0x11, 0x00, 12] + source + [10, 0, 0, 1]
            + [UInt8(sourcePort >> 8), UInt8(sourcePort & 0xFF), 0x01, 0xBB]
    }

    @Test("PROXY protocol v1 and v2 set the client address; a connection without a valid header is closed")
    func proxyProtocol() throws {
        let backend = try HTTPTestBackend(name: "web")
        defer { backend.stop() }
        let junction = try JunctionProcess(
            yaml: TestConfig.split(monolith: [backend.address], ddp: ["127.0.0.1:9"])
                .replacingOccurrences(
                    of: "    address: 127.0.0.1:0\n",
                    with: "    address: 127.0.0.1:0\n    proxy_protocol: true\n"
                )
        )
        let port = junction.port("http")
        let request = Array("GET /echo HTTP/1.1\r\nHost: t\r\nX-Forwarded-For: 192.0.2.1\r\n\r\n".utf8)
        let headers: [(String, [UInt8], String)] = [
            ("v1 TCP4", Array("PROXY TCP4 203.0.113.9 10.0.0.1 56324 443\r\n".utf8), "203.0.113.9"),
            ("v1 TCP6", Array("PROXY TCP6 2001:db8::7 2001:db8::1 56324 443\r\n".utf8), "2001:db8::7"),
            ("v2 TCP4", Self.proxyV2(source: [198, 51, 100, 23], sourcePort: 40000), "198.51.100.23"),
            ("v1 UNKNOWN", Array("PROXY UNKNOWN\r\n".utf8), "127.0.0.1"),
        ]
        for (name, header, expected) in headers {
            let client = try RawClient(port: port)
            try client.send(header + request)
            let answer = try client.receive(until: "}")
            let body = answer.split(separator: "\r\n\r\n", maxSplits: 1).last.map(String.init) ?? ""
            let echo = try JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any] ?? [:]
            let fields = (echo["headers"] as? [[String]] ?? []).map { ($0[0].lowercased(), $0[1]) }
            #expect(fields.contains { $0 == ("x-forwarded-for", "192.0.2.1, \(expected)") }, "\(name): \(fields)")
            #expect(fields.contains { $0 == ("x-real-ip", expected) }, "\(name)")
        }
        for garbage in [
            "GET /echo HTTP/1.1\r\nHost: t\r\n\r\n", "PROXY TCP4 nonsense\r\n", "PROXY TCP9 1.2.3.4 5.6.7.8 1 2\r\n",
        ] {
            let client = try RawClient(port: port)
            try client.send(garbage)
            #expect(try client.receiveAll().isEmpty, "closed without an answer: \(garbage.prefix(20))")
        }
        #expect(backend.stats.proxiedRequests.load(ordering: .relaxed) == 4)
        #expect(
            junction.waitForStdout { $0.contains("203.0.113.9 - - [") && $0.contains("\"GET /echo HTTP/1.1\" 200 ") },
            "the access log shows the announced client"
        )
    }
}

/// The fixed part of a PROXY protocol v2 header.
enum ProxyHeaderV2 {
    static let signature: [UInt8] = [0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A]
}
