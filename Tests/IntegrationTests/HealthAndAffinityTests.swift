import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// Active health checks, affinity, DNS discovery and the admin endpoints, with real processes.
@Suite("Health, affinity, discovery, admin", .junctionTimeLimit(minutes: 5))
struct HealthAndAffinityTests {
    /// The config for one pool `web` (the catch-all) with `backends`, plus `poolExtra` and an admin listener.
    static func config(backends: [String], poolExtra: String = "", weights: [Int]? = nil, extra: String = "") -> String
    {
        let lines = backends.enumerated().map { index, address in
            "      - address: \(address)" + (weights.map { "\n        weight: \($0[index])" } ?? "")
        }
        return """
            threads: 2
            listeners:
              - name: http
                address: 127.0.0.1:0
            admin:
              address: 127.0.0.1:0
            routes:
              - name: web
                pool: web
            pools:
              web:
            \(poolExtra)
                backends:
            \(lines.joined(separator: "\n"))
            \(extra)
            """
    }

    static let fastChecks = """
            health_check:
              path: /health
              interval: 300ms
              timeout: 200ms
              healthy_threshold: 2
              unhealthy_threshold: 2
        """

    /// The `/status` document.
    static func status(_ junction: JunctionProcess) throws -> [String: Any] {
        try Curl.json("http://\(junction.address("admin"))/status")
    }

    static func backendStatus(_ junction: JunctionProcess, _ address: String) throws -> [String: Any]? {
        let pools = try Self.status(junction)["pools"] as? [String: Any]
        let backends = (pools?["web"] as? [String: Any])?["backends"] as? [[String: Any]]
        return backends?.first { $0["address"] as? String == address }
    }

    @Test(
        "A backend whose /health turns 503 stops getting traffic, comes back after it recovers; /readyz and /status follow"
    )
    func activeHealthChecks() throws {
        let first = try HTTPTestBackend(name: "one")
        defer { first.stop() }
        let second = try HTTPTestBackend(name: "two")
        defer { second.stop() }
        let junction = try JunctionProcess(
            yaml: Self.config(backends: [first.address, second.address], poolExtra: Self.fastChecks),
            waitForListeners: 2
        )
        let admin = "http://\(junction.address("admin"))"
        let url = "http://127.0.0.1:\(junction.port("http"))/echo"
        // Both backends checked once before the change.
        #expect(
            JunctionProcess.wait(timeout: 5) {
                [first.address, second.address].allSatisfy {
                    (try? Self.backendStatus(junction, $0)?["last_check"] as? [String: Any]) != nil
                }
            }
        )
        #expect(try Curl.status(admin + "/readyz") == 200)

        second.stats.healthStatus.store(503, ordering: .relaxed)
        let failedAt = Date()
        // interval x unhealthy_threshold = 0.6 s, plus the jitter, the check timeout and slack (a
        // loaded machine took 2.09 s once: the bound checks that the flip happens, not its speed).
        let deadline = failedAt.addingTimeInterval(5)
        while Date() < deadline, (try Self.backendStatus(junction, second.address)?["healthy"] as? Bool) != false {
            Thread.sleep(forTimeInterval: 0.05)
        }
        let downAfter = Date().timeIntervalSince(failedAt)
        #expect(downAfter < 4, "marked down after \(downAfter) s")
        let checked = try Self.backendStatus(junction, second.address)?["last_check"] as? [String: Any]
        #expect(checked?["detail"] as? String == "status 503")
        #expect(checked?["passed"] as? Bool == false)
        let before = second.stats.proxiedRequests.load(ordering: .relaxed)
        for _ in 0..<20 {
            #expect(try Curl.json(url)["backend"] as? String == "one")
        }
        #expect(second.stats.proxiedRequests.load(ordering: .relaxed) == before, "no traffic to the unhealthy backend")
        #expect(try Curl.status(admin + "/readyz") == 200, "the pool still has a healthy backend")
        #expect(junction.waitForStderr { $0.contains("backend down") && $0.contains(second.address) })

        // Both down: not ready, and requests get 503 at once.
        first.stats.healthStatus.store(500, ordering: .relaxed)
        let bothDeadline = Date().addingTimeInterval(3)
        while Date() < bothDeadline, try Curl.status(admin + "/readyz") == 200 {
            Thread.sleep(forTimeInterval: 0.05)
        }
        #expect(try Curl.status(admin + "/readyz") == 503)
        let refused = try Curl.run(["-D", "-", url])
        #expect(refused.hasPrefix("HTTP/1.1 503"), "\(refused)")
        #expect(refused.lowercased().contains("retry-after: 1"), "the check interval, rounded up")

        // Recovery: healthy_threshold passes bring them back.
        first.stats.healthStatus.store(200, ordering: .relaxed)
        second.stats.healthStatus.store(200, ordering: .relaxed)
        let upDeadline = Date().addingTimeInterval(3)
        while Date() < upDeadline, (try Self.backendStatus(junction, second.address)?["healthy"] as? Bool) != true {
            Thread.sleep(forTimeInterval: 0.05)
        }
        #expect(try Self.backendStatus(junction, second.address)?["healthy"] as? Bool == true)
        #expect(try Curl.status(admin + "/readyz") == 200)
        var seen: Set<String> = []
        for _ in 0..<10 { seen.insert(try Curl.json(url)["backend"] as? String ?? "?") }
        #expect(seen == ["one", "two"], "traffic returns to the recovered backend")
        #expect(junction.waitForStderr { $0.contains("backend up") })
    }

    @Test("kill -9 of one of two backends during 10,000 GETs: not a single failed request")
    func killDuringLoad() throws {
        let survivor = try LineProcess(["python3", TestPaths.fixture("http_backend.py"), "0", "survivor"])
        let victim = try LineProcess(["python3", TestPaths.fixture("http_backend.py"), "0", "victim"])
        let ports = try [survivor, victim].map { Int(try $0.readLine().dropFirst(6))! }
        let junction = try JunctionProcess(
            yaml: Self.config(backends: ports.map { "127.0.0.1:\($0)" }, poolExtra: Self.fastChecks),
            waitForListeners: 2
        )
        let load = Process()
        load.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        load.arguments = [
            "h2load", "--h1", "-n", "10000", "-c", "8", "-t", "1", "http://127.0.0.1:\(junction.port("http"))/echo",
        ]
        let output = Pipe()
        load.standardOutput = output
        load.standardError = output
        try load.run()
        // Kill once some of the load is through, and make sure the load was still running then.
        let metrics = "http://\(junction.address("admin"))/metrics"
        #expect(
            JunctionProcess.wait(timeout: 20) {
                let text = (try? Curl.run(["-s", metrics])) ?? ""
                let served = text.split(separator: "\n").filter { $0.hasPrefix("junction_requests_total{") }
                    .compactMap { Double($0.split(separator: " ").last ?? "") }.reduce(0, +)
                return served >= 300
            }
        )
        kill(victim.process.processIdentifier, SIGKILL)
        #expect(load.isRunning, "the backend died while the load was running")
        load.waitUntilExit()
        let report = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        #expect(
            report.contains(
                "requests: 10000 total, 10000 started, 10000 done, 10000 succeeded, 0 failed, 0 errored, 0 timeout"
            ),
            "\(report)"
        )
        #expect(report.contains("status codes: 10000 2xx, 0 3xx, 0 4xx, 0 5xx"), "\(report)")
        survivor.terminate()
    }

    @Test("least_conn with weights 1:3 under concurrent load splits about 1:3")
    func weightedLeastConn() throws {
        let light = try HTTPTestBackend(name: "light")
        defer { light.stop() }
        let heavy = try HTTPTestBackend(name: "heavy")
        defer { heavy.stop() }
        let junction = try JunctionProcess(
            yaml: Self.config(backends: [light.address, heavy.address], weights: [1, 3]),
            waitForListeners: 2
        )
        // Slow requests keep several in flight at once, so the active counts matter.
        let output = try ProcessRunner.run(
            [
                "h2load", "--h1", "-n", "800", "-c", "16", "-t", "1",
                "http://127.0.0.1:\(junction.port("http"))/slow?ms=20",
            ],
            timeout: 60
        )
        #expect(output.stdout.contains("800 succeeded"), "\(output.stdout)")
        let lightCount = Double(light.stats.proxiedRequests.load(ordering: .relaxed))
        let heavyCount = Double(heavy.stats.proxiedRequests.load(ordering: .relaxed))
        let ratio = heavyCount / max(lightCount, 1)
        #expect(lightCount + heavyCount == 800)
        // About 3; a slow build (a sanitizer) keeps fewer requests in flight, which evens the split.
        #expect(ratio > 2 && ratio < 4, "heavy:light = \(heavyCount):\(lightCount) = \(ratio)")
    }

    @Test("SockJS affinity keeps an xhr-polling session on one sockjs-node backend; without it the session breaks")
    func sockjsAffinity() throws {
        let backends = try ["sjs-a", "sjs-b"].map { name in
            try LineProcess([
                "env", "NODE_PATH=/usr/share/nodejs", "node", TestPaths.fixture("sockjs_backend.js"), "0", name,
            ])
        }
        defer { backends.forEach { $0.terminate() } }
        let addresses = try backends.map { "127.0.0.1:" + (try $0.readLine().dropFirst(6)) }
        /// One xhr-polling session of several requests (each on a new connection, as browsers may).
        func session(_ port: Int, id: String) throws -> (opened: String, sent: [Int], received: [String]) {
            let base = "http://127.0.0.1:\(port)/sockjs/000/\(id)"
            let opened = try Curl.run(["-X", "POST", base + "/xhr"])
            var sent: [Int] = []
            var received: [String] = []
            for message in ["one", "two", "three"] {
                sent.append(
                    try Curl.status(
                        base + "/xhr_send",
                        extra: ["-X", "POST", "-H", "Content-Type: text/plain", "-d", "[\"\(message)\"]"]
                    )
                )
                // A poll for a message that was never delivered would wait for SockJS's 25 s heartbeat.
                guard sent.last == 204 else { break }
                received.append(
                    try Curl.run(["-X", "POST", base + "/xhr"]).trimmingCharacters(in: .whitespacesAndNewlines)
                )
            }
            return (opened.trimmingCharacters(in: .whitespacesAndNewlines), sent, received)
        }
        for (affinity, expectWorking) in [("sockjs", true), ("none", false)] {
            let junction = try JunctionProcess(
                yaml: Self.config(
                    backends: addresses,
                    poolExtra: "    balance: round_robin\n    affinity: \(affinity)"
                ),
                waitForListeners: 2
            )
            let result = try session(junction.port("http"), id: "session-\(affinity)")
            #expect(result.opened == "o")
            if expectWorking {
                #expect(result.sent == [204, 204, 204], "\(result)")
                let backend = result.received.first?.contains("sjs-a") == true ? "sjs-a" : "sjs-b"
                #expect(result.received == ["one", "two", "three"].map { "a[\"\(backend):\($0)\"]" }, "\(result)")
            } else {
                #expect(
                    result.sent.contains(404),
                    "round robin sends part of the session to a backend that does not know it: \(result)"
                )
            }
            #expect(junction.stop() == 0)
        }
    }

    @Test("Cookie affinity: the client stays on one backend; when it dies it gets another and a new cookie")
    func cookieAffinity() throws {
        let first = try HTTPTestBackend(name: "one")
        let second = try HTTPTestBackend(name: "two")
        defer { second.stop() }
        let junction = try JunctionProcess(
            yaml: Self.config(
                backends: [first.address, second.address],
                poolExtra: "    balance: round_robin\n    affinity: cookie"
            ),
            waitForListeners: 2
        )
        let url = "http://127.0.0.1:\(junction.port("http"))/echo"
        let jar = try TestPaths.makeTemporaryDirectory().appendingPathComponent("cookies.txt").path
        let firstAnswer = try Curl.run(["-D", "-", "-c", jar, url])
        let setCookie = firstAnswer.split(separator: "\r\n").first {
            $0.lowercased().hasPrefix("set-cookie: junction_web=")
        }
        #expect(setCookie != nil, "\(firstAnswer)")
        #expect(setCookie?.contains("HttpOnly") == true)
        #expect(
            setCookie?.contains(first.address) == false && setCookie?.contains("127.0.0.1") == false,
            "the token is opaque"
        )
        let pinned = try Curl.json(url, extra: ["-b", jar])["backend"] as? String
        for _ in 0..<8 {
            let answer = try Curl.run(["-D", "-", "-b", jar, "-c", jar, url])
            #expect(answer.contains("\"backend\":\"\(pinned ?? "?")\""), "round robin would alternate; the cookie pins")
            #expect(!answer.lowercased().contains("set-cookie"), "a valid cookie is not re-issued")
        }
        // The pinned backend dies: the next request goes elsewhere and the cookie is replaced.
        let (dead, alive) = pinned == "one" ? (first, second) : (second, first)
        dead.stop()
        let moved = try Curl.run(["-D", "-", "-b", jar, "-c", jar, url])
        #expect(moved.contains("\"backend\":\"\(alive.name)\""), "\(moved)")
        #expect(moved.lowercased().contains("set-cookie: junction_web="), "a new cookie names the new backend")
        #expect(try Curl.json(url, extra: ["-b", jar])["backend"] as? String == alive.name)
        if pinned != "one" { first.stop() }
    }

    @Test("DNS discovery: a name in /etc/hosts gains a second address, which gets traffic after the refresh")
    func dnsDiscovery() throws {
        guard access("/etc/hosts", W_OK) == 0 else {
            Issue.record("/etc/hosts is not writable here; the DNS discovery test needs it")
            return
        }
        let first = try HTTPTestBackend(name: "first", host: "127.0.0.1")
        defer { first.stop() }
        // The same port on a second loopback address.
        let second = try HTTPTestBackend(name: "second", host: "127.0.0.2", port: first.port)
        defer { second.stop() }
        let name = "junction-test-\(UInt32.random(in: 0...UInt32.max)).internal"
        let original = try String(contentsOfFile: "/etc/hosts", encoding: .utf8)
        defer { try? original.write(toFile: "/etc/hosts", atomically: false, encoding: .utf8) }
        try (original + "\n127.0.0.1 \(name)\n").write(toFile: "/etc/hosts", atomically: false, encoding: .utf8)
        let junction = try JunctionProcess(
            yaml: Self.config(backends: ["\(name):\(first.port)"], extra: "discovery:\n  dns_refresh: 500ms"),
            waitForListeners: 2
        )
        let url = "http://127.0.0.1:\(junction.port("http"))/echo"
        for _ in 0..<4 { #expect(try Curl.json(url)["backend"] as? String == "first") }
        try (original + "\n127.0.0.1 \(name)\n127.0.0.2 \(name)\n").write(
            toFile: "/etc/hosts",
            atomically: false,
            encoding: .utf8
        )
        #expect(
            junction.waitForStderr(timeout: 5) {
                $0.contains("backends changed by DNS") && $0.contains("127.0.0.2:\(first.port)")
            }
        )
        var seen: Set<String> = []
        for _ in 0..<10 { seen.insert(try Curl.json(url)["backend"] as? String ?? "?") }
        #expect(seen == ["first", "second"], "the new address takes traffic: \(seen)")
        let pools = try Self.status(junction)["pools"] as? [String: Any]
        let listed = ((pools?["web"] as? [String: Any])?["backends"] as? [[String: Any]])?.compactMap {
            $0["configured"] as? String
        }
        #expect(listed == ["\(name):\(first.port)", "\(name):\(first.port)"], "both addresses come from the one name")
    }

    @Test("/metrics parses as Prometheus text and counts the requests made; admin paths stay off the proxy")
    func metrics() throws {
        let backend = try HTTPTestBackend(name: "web")
        defer { backend.stop() }
        let junction = try JunctionProcess(yaml: Self.config(backends: [backend.address]), waitForListeners: 2)
        let proxy = "http://127.0.0.1:\(junction.port("http"))"
        for _ in 0..<7 { _ = try Curl.status(proxy + "/echo") }
        // /metrics on the proxy listener is proxied like any path, never answered by Junction.
        #expect(try Curl.json(proxy + "/metrics")["target"] as? String == "/metrics")
        let script = """
            import sys, urllib.request
            from prometheus_client.parser import text_string_to_metric_families
            text = urllib.request.urlopen(sys.argv[1]).read().decode()
            samples = {}
            for family in text_string_to_metric_families(text):
                for sample in family.samples:
                    labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
                    samples[f"{sample.name}{{{labels}}}"] = sample.value
            for key, value in sorted(samples.items()):
                print(key, value)
            """
        let output = try ProcessRunner.run(["python3", "-c", script, "http://\(junction.address("admin"))/metrics"])
        #expect(output.status == 0, "\(output.stderr)")
        let lines = output.stdout
        // Eight requests went through the proxy listener: seven to /echo and the one to /metrics.
        #expect(lines.contains("junction_requests_total{code=200,pool=web,route=web} 8\n"), "\(lines)")
        #expect(lines.contains("junction_request_duration_seconds_count{pool=web} 8\n"))
        #expect(lines.contains("junction_upstream_active_connections{backend=\(backend.address),pool=web} 0.0"))
        #expect(lines.contains("junction_backend_healthy{backend=\(backend.address),pool=web} 1.0"))
        #expect(lines.contains("junction_tunnels_active{pool=web} 0.0"))
        #expect(lines.contains("junction_connections_active{listener=http}"))
        #expect(try Curl.status("http://\(junction.address("admin"))/nothing") == 404)
        #expect(try Curl.status("http://\(junction.address("admin"))/healthz") == 200)
    }
}
