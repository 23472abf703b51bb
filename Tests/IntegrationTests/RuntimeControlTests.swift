import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// Runtime control of backends against the real binary, with real WebSocket clients that reconnect
/// as Rocket.Chat's do: the admin token rules, a paced drain, enable, a reload that drops a
/// backend, rebalance (by API and by itself), runtime weights, and the close frame 1001 on
/// HTTP/1.1 and HTTP/2.
@Suite("Runtime control: drain, enable, weight, rebalance", .junctionTimeLimit(minutes: 6))
struct RuntimeControlTests {
    static let token = "test-token-0123456789abcdef"

    /// `admin:` with a token file (written by `JunctionProcess(files:)`).
    static let admin = "admin:\n  address: 127.0.0.1:0\n  token_file: admin.token\n"
    static let files = ["admin.token": token + "\n"]

    /// One admin POST: the status and the JSON answer.
    static func post(
        _ junction: JunctionProcess,
        _ path: String,
        token: String? = Self.token,
        body: String? = nil
    ) throws -> (status: Int, json: [String: Any]) {
        var arguments = ["-s", "-X", "POST", "-w", "\n%{http_code}"]
        if let token { arguments += ["-H", "Authorization: Bearer \(token)"] }
        if let body { arguments += ["-H", "Content-Type: application/json", "--data", body] }
        let output = try Curl.run(arguments + ["http://\(junction.address("admin"))\(path)"])
        let lines = output.split(separator: "\n", omittingEmptySubsequences: false)
        let status = Int(lines.last ?? "") ?? -1
        let json =
            (try? JSONSerialization.jsonObject(with: Data(lines.dropLast().joined(separator: "\n").utf8)))
            as? [String: Any] ?? [:]
        return (status, json)
    }

    /// The backends of `pool` in `/status`, by address.
    static func backends(_ junction: JunctionProcess, pool: String) throws -> [String: [String: Any]] {
        let status = try Curl.json("http://\(junction.address("admin"))/status")
        let list = ((status["pools"] as? [String: Any])?[pool] as? [String: Any])?["backends"] as? [[String: Any]] ?? []
        return Dictionary(list.map { ($0["address"] as? String ?? "?", $0) }, uniquingKeysWith: { first, _ in first })
    }

    /// Polls the fleet until `condition` holds (or `timeout` passes); returns the last status.
    static func waitFor(
        _ fleet: WebSocketFleet,
        timeout: TimeInterval = 30,
        _ condition: (WebSocketFleet.Status) -> Bool
    ) throws -> WebSocketFleet.Status {
        var status = try fleet.status()
        _ = JunctionProcess.wait(timeout: timeout) {
            status = (try? fleet.status()) ?? status
            return condition(status)
        }
        return status
    }

    /// The most closes that fell within any `window` seconds.
    static func densest(_ closes: [WebSocketFleet.Close], window: Double) -> Int {
        let times = closes.map(\.time).sorted()
        var best = 0
        for (index, start) in times.enumerated() {
            best = max(best, times[index...].prefix { $0 - start < window }.count)
        }
        return best
    }

    static func ddpConfig(_ backends: [String], poolExtra: String, http2: Bool = false) -> String {
        TestConfig.split(monolith: ["127.0.0.1:9"], ddp: backends, ddpPoolExtra: poolExtra)
            .replacingOccurrences(
                of: "    address: 127.0.0.1:0\n",
                with: "    address: 127.0.0.1:0\n    http2: \(http2)\n"
            )
            + Self.admin
    }

    @Test(
        "Admin writes: 403 without a token file, 401 without or with a wrong token, 404 unknown, 400 bad weight, JSON"
    )
    func tokenRules() throws {
        let ddp = try DDPBackend(name: "A")
        defer { ddp.stop() }
        let drainPath = "/pools/ddp-streamer/backends/\(ddp.address)/drain"

        let open = try JunctionProcess(
            yaml: TestConfig.split(monolith: ["127.0.0.1:9"], ddp: [ddp.address]) + "admin:\n  address: 127.0.0.1:0\n",
            waitForListeners: 2
        )
        let forbidden = try Self.post(open, drainPath)
        #expect(forbidden.status == 403, "\(forbidden)")
        #expect((forbidden.json["error"] as? String)?.contains("admin.token_file") == true)
        #expect(try Self.backends(open, pool: "ddp-streamer")[ddp.address]?["state"] as? String == "active")
        #expect(open.stop() == 0)

        let junction = try JunctionProcess(
            yaml: TestConfig.split(monolith: ["127.0.0.1:9"], ddp: [ddp.address]) + Self.admin,
            files: Self.files,
            waitForListeners: 2
        )
        #expect(try Self.post(junction, drainPath, token: nil).status == 401)
        #expect(try Self.post(junction, drainPath, token: Self.token + "x").status == 401)
        #expect(try Self.post(junction, drainPath, token: String(Self.token.dropLast())).status == 401)
        let headers = try Curl.run([
            "-s", "-D", "-", "-o", "/dev/null", "-X", "POST", "http://\(junction.address("admin"))\(drainPath)",
        ])
        #expect(headers.contains("WWW-Authenticate: Bearer"), "\(headers)")
        #expect(try Self.backends(junction, pool: "ddp-streamer")[ddp.address]?["state"] as? String == "active")

        #expect(try Self.post(junction, "/pools/nope/rebalance").status == 404)
        #expect(try Self.post(junction, "/pools/ddp-streamer/backends/127.0.0.1:1/drain").status == 404)
        #expect(try Self.post(junction, "/pools/ddp-streamer/backends/\(ddp.address)/explode").status == 404)
        let weightPath = "/pools/ddp-streamer/backends/\(ddp.address)/weight"
        for body in ["{\"weight\": 0}", "{\"weight\": 101}", "{\"weight\": \"3\"}", "3"] {
            let answer = try Self.post(junction, weightPath, body: body)
            #expect(answer.status == 400, "\(body): \(answer)")
        }
        let get = try Curl.run([
            "-s", "-o", "/dev/null", "-w", "%{http_code}", "http://\(junction.address("admin"))\(drainPath)",
        ])
        #expect(get == "405", "a write path answers GET with 405")

        let drained = try Self.post(junction, drainPath)
        #expect(drained.status == 202 && drained.json["state"] as? String == "drained", "\(drained)")
        let weighted = try Self.post(junction, weightPath, body: "{\"weight\": 7}")
        #expect(weighted.status == 200 && weighted.json["weight"] as? Int == 7, "\(weighted)")
        let enabled = try Self.post(junction, "/pools/ddp-streamer/backends/\(ddp.address)/enable")
        #expect(enabled.status == 200 && enabled.json["state"] as? String == "active", "\(enabled)")
        let rebalance = try Self.post(junction, "/pools/ddp-streamer/rebalance")
        #expect(rebalance.status == 202 && rebalance.json["to_close"] as? Int == 0, "\(rebalance)")
        #expect(junction.stderr.contains("backend draining by admin backend=\(ddp.address)"), "the write is logged")
        #expect(!junction.stderr.contains(Self.token), "the token is never logged")
        #expect(junction.stop() == 0)
    }

    @Test(
        "Draining a backend with 20 tunnels at drain_rate 8 closes them one by one over about 2.5 s with close 1001; they reconnect elsewhere; enable brings it back"
    )
    func pacedDrainAndEnable() throws {
        let a = try DDPBackend(name: "A")
        defer { a.stop() }
        let b = try DDPBackend(name: "B")
        defer { b.stop() }
        let junction = try JunctionProcess(
            yaml: Self.ddpConfig([a.address, b.address], poolExtra: "    drain_rate: 8"),
            files: Self.files,
            waitForListeners: 2
        )
        let url = "ws://127.0.0.1:\(junction.port("http"))/websocket"
        let fleet = try WebSocketFleet()
        defer { fleet.quit() }
        // Twenty reconnecting clients on A (B drained meanwhile), then five more on B.
        #expect(try Self.post(junction, "/pools/ddp-streamer/backends/\(b.address)/drain").status == 202)
        #expect(try fleet.open(20, url: url, reconnect: true) == ["A": 20])
        #expect(try Self.post(junction, "/pools/ddp-streamer/backends/\(b.address)/enable").status == 200)
        #expect(try fleet.open(5, url: url, reconnect: false) == ["B": 5])

        let drain = try Self.post(junction, "/pools/ddp-streamer/backends/\(a.address)/drain")
        #expect(drain.status == 202 && drain.json["state"] as? String == "draining", "\(drain)")
        let status = try Self.waitFor(fleet) { $0.closes.count >= 20 && $0.open["B"] == 25 }
        #expect(status.open == ["B": 25], "every client reconnected, to B: \(status.open)")
        let closes = status.closes
        #expect(closes.count == 20 && closes.allSatisfy { $0.backend == "A" }, "B's five tunnels stay: \(closes)")
        #expect(closes.allSatisfy { $0.code == 1001 }, "close 1001 to every client: \(closes.map(\.code))")
        let times = closes.map(\.time)
        let spread = (times.max() ?? 0) - (times.min() ?? 0)
        // 19 intervals of 1/8 s: 2.4 s. Not one burst, not slower than the rate by much.
        #expect(spread > 1.9 && spread < 6, "spread \(spread) s")
        #expect(Self.densest(closes, window: 0.3) <= 4, "no burst: \(times.sorted())")

        #expect(
            JunctionProcess.wait(timeout: 10) {
                (try? Self.backends(junction, pool: "ddp-streamer")[a.address]?["state"] as? String) == "drained"
            }
        )
        let metrics = try Curl.run(["-s", "http://\(junction.address("admin"))/metrics"])
        #expect(
            metrics.contains("junction_tunnels_closed_total{pool=\"ddp-streamer\",reason=\"drain\"} 20"),
            "\(metrics)"
        )
        #expect(junction.waitForStderr { $0.contains("backend drained backend=\(a.address)") })

        // Enabled, A takes new tunnels again (it has the fewest).
        let enabled = try Self.post(junction, "/pools/ddp-streamer/backends/\(a.address)/enable")
        #expect(enabled.status == 200 && enabled.json["state"] as? String == "active")
        #expect(try fleet.open(2, url: url, reconnect: false) == ["A": 2])
    }

    @Test("A reload that drops a backend drains its tunnels at the pool's rate, not all at once")
    func reloadDropDrains() throws {
        let a = try DDPBackend(name: "A")
        defer { a.stop() }
        let b = try DDPBackend(name: "B")
        defer { b.stop() }
        let junction = try JunctionProcess(
            yaml: Self.ddpConfig([a.address, b.address], poolExtra: "    drain_rate: 4"),
            files: Self.files,
            waitForListeners: 2
        )
        let fleet = try WebSocketFleet()
        defer { fleet.quit() }
        #expect(
            try fleet.open(12, url: "ws://127.0.0.1:\(junction.port("http"))/websocket", reconnect: true) == [
                "A": 6, "B": 6,
            ]
        )
        try Self.ddpConfig([b.address], poolExtra: "    drain_rate: 4")
            .write(toFile: junction.configPath, atomically: true, encoding: .utf8)
        junction.signal(SIGHUP)
        #expect(junction.waitForStderr { $0.contains("config reloaded generation=2") })
        let status = try Self.waitFor(fleet) { $0.closes.count >= 6 && $0.open["B"] == 12 }
        #expect(status.open == ["B": 12], "\(status.open)")
        #expect(
            status.closes.count == 6 && status.closes.allSatisfy { $0.backend == "A" && $0.code == 1001 },
            "\(status.closes)"
        )
        let times = status.closes.map(\.time)
        let spread = (times.max() ?? 0) - (times.min() ?? 0)
        #expect(spread > 0.9 && spread < 5, "5 intervals of 1/4 s: \(spread) s")
        #expect(junction.waitForStderr { $0.contains("backend drained backend=\(a.address)") })
        let metrics = try Curl.run(["-s", "http://\(junction.address("admin"))/metrics"])
        #expect(
            metrics.contains("junction_tunnels_closed_total{pool=\"ddp-streamer\",reason=\"drain\"} 6"),
            "\(metrics)"
        )
    }

    @Test(
        "POST rebalance moves 20/0 tunnels to 10/10 as clients reconnect; weights set at run time steer new tunnels 3:1 and hold across a reload"
    )
    func rebalanceAndWeights() throws {
        let a = try DDPBackend(name: "A")
        defer { a.stop() }
        let b = try DDPBackend(name: "B")
        defer { b.stop() }
        let yaml = Self.ddpConfig([a.address, b.address], poolExtra: "    drain_rate: 20")
        let junction = try JunctionProcess(yaml: yaml, files: Self.files, waitForListeners: 2)
        let url = "ws://127.0.0.1:\(junction.port("http"))/websocket"
        do {
            let fleet = try WebSocketFleet()
            defer { fleet.quit() }
            #expect(try Self.post(junction, "/pools/ddp-streamer/backends/\(b.address)/drain").status == 202)
            #expect(try fleet.open(20, url: url, reconnect: true) == ["A": 20])
            #expect(try Self.post(junction, "/pools/ddp-streamer/backends/\(b.address)/enable").status == 200)
            let rebalance = try Self.post(junction, "/pools/ddp-streamer/rebalance")
            #expect(rebalance.status == 202 && rebalance.json["to_close"] as? Int == 10, "\(rebalance)")
            let status = try Self.waitFor(fleet) { $0.closes.count >= 10 && $0.connecting == 0 }
            #expect(
                (8...12).contains(status.open["A"] ?? 0) && (8...12).contains(status.open["B"] ?? 0),
                "\(status.open)"
            )
            #expect(status.closes.allSatisfy { $0.backend == "A" && $0.code == 1001 }, "\(status.closes)")
            let metrics = try Curl.run(["-s", "http://\(junction.address("admin"))/metrics"])
            #expect(metrics.contains("reason=\"rebalance\"} 10"), "\(metrics)")
            // Balanced now: a second rebalance closes nothing.
            #expect(try Self.post(junction, "/pools/ddp-streamer/rebalance").json["to_close"] as? Int == 0)
        }
        #expect(
            JunctionProcess.wait(timeout: 20) {
                (try? Self.backends(junction, pool: "ddp-streamer").values.allSatisfy { $0["tunnels"] as? Int == 0 })
                    == true
            },
            "the first fleet's tunnels are gone"
        )

        #expect(
            try Self.post(junction, "/pools/ddp-streamer/backends/\(a.address)/weight", body: "{\"weight\": 3}").status
                == 200
        )
        let fleet = try WebSocketFleet()
        defer { fleet.quit() }
        let landed = try fleet.open(40, url: url, reconnect: false)
        #expect((29...31).contains(landed["A"] ?? 0) && (9...11).contains(landed["B"] ?? 0), "3:1 \(landed)")

        // A reload of the same file keeps what the API set.
        junction.signal(SIGHUP)
        #expect(junction.waitForStderr { $0.contains("config reloaded generation=2") })
        let backends = try Self.backends(junction, pool: "ddp-streamer")
        #expect(
            backends[a.address]?["weight"] as? Int == 3 && backends[b.address]?["weight"] as? Int == 1,
            "\(backends)"
        )
    }

    @Test("rebalance: auto moves tunnels to a backend a reload adds: 20/0 becomes 10/10")
    func autoRebalance() throws {
        let a = try DDPBackend(name: "A")
        defer { a.stop() }
        let b = try DDPBackend(name: "B")
        defer { b.stop() }
        let extra = "    drain_rate: 20\n    rebalance: auto"
        let junction = try JunctionProcess(
            yaml: Self.ddpConfig([a.address], poolExtra: extra),
            files: Self.files,
            waitForListeners: 2
        )
        let fleet = try WebSocketFleet()
        defer { fleet.quit() }
        #expect(
            try fleet.open(20, url: "ws://127.0.0.1:\(junction.port("http"))/websocket", reconnect: true) == ["A": 20]
        )
        try Self.ddpConfig([a.address, b.address], poolExtra: extra)
            .write(toFile: junction.configPath, atomically: true, encoding: .utf8)
        junction.signal(SIGHUP)
        #expect(junction.waitForStderr { $0.contains("config reloaded generation=2") })
        // The new backend settles for 2 s, then the pool rebalances once.
        #expect(
            junction.waitForStderr(timeout: 20) {
                $0.contains("rebalance drain_rate=20.0 pool=ddp-streamer to_close=10")
            }
        )
        let status = try Self.waitFor(fleet) { $0.closes.count >= 10 && $0.connecting == 0 }
        #expect((8...12).contains(status.open["A"] ?? 0) && (8...12).contains(status.open["B"] ?? 0), "\(status.open)")
        #expect(status.closes.count == 10, "once: \(status.closes.count) closes")
    }

    @Test("Draining a tunnel in the middle of a frame resets the client's connection instead of corrupting the frame")
    func midFrameReset() throws {
        let peer = try LineProcess(["python3", TestPaths.fixture("ws_midframe.py")])
        defer { peer.terminate() }
        let ready = try peer.readLine()
        let backend = "127.0.0.1:\(ready.dropFirst("ready ".count))"
        let junction = try JunctionProcess(
            yaml: Self.ddpConfig([backend], poolExtra: "    drain_rate: 20"),
            files: Self.files,
            waitForListeners: 2
        )
        peer.writeLine("\(junction.port("http"))")
        #expect(try peer.readLine() == "connected")
        #expect(try Self.post(junction, "/pools/ddp-streamer/backends/\(backend)/drain").status == 202)
        let result = try JSONSerialization.jsonObject(with: Data(try peer.readLine().utf8)) as? [String: Any] ?? [:]
        #expect(result["reset"] as? Bool == true, "a TCP reset: \(result)")
        #expect(result["after"] as? String == "", "no close frame inside the backend's frame: \(result)")
    }

    @Test("Draining an RFC 8441 tunnel sends close 1001 in a DATA frame and ends the stream")
    func http2CloseFrame() throws {
        let a = try DDPBackend(name: "A")
        defer { a.stop() }
        let junction = try JunctionProcess(
            yaml: Self.ddpConfig([a.address], poolExtra: "    drain_rate: 20", http2: true),
            files: Self.files,
            waitForListeners: 2
        )
        let client = try LineProcess([
            "python3", TestPaths.fixture("h2_websocket.py"), "127.0.0.1", "\(junction.port("http"))", "/websocket",
            "--wait-close",
        ])
        defer { client.terminate() }
        let ready = try client.readLine()
        #expect(ready.contains("\"ready\": true") && ready.contains("\"backend\": \"A\""), "\(ready)")
        #expect(try Self.post(junction, "/pools/ddp-streamer/backends/\(a.address)/drain").status == 202)
        let result = try JSONSerialization.jsonObject(with: Data(try client.readLine().utf8)) as? [String: Any] ?? [:]
        #expect(result["close_code"] as? Int == 1001, "\(result)")
        #expect(result["ended"] as? Bool == true && result["error"] == nil, "the stream ended cleanly: \(result)")
    }
}
