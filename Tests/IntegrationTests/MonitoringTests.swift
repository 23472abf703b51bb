import Foundation
import Testing

/// The monitoring files in conf/monitoring: the alert rules pass promtool's checks and unit tests,
/// and every metric they and the Grafana dashboard use is one a running Junction exports.
@Suite("Monitoring files", .junctionTimeLimit(minutes: 3))
struct MonitoringTests {
    static let directory = TestPaths.repositoryRoot.appendingPathComponent("conf/monitoring")

    @Test("The alert rules pass `promtool check rules` and their unit tests (`promtool test rules`)")
    func alertRules() throws {
        let check = try ProcessRunner.run(
            ["promtool", "check", "rules", Self.directory.appendingPathComponent("junction-alerts.yml").path]
        )
        #expect(check.status == 0, "\(check.stdout)\(check.stderr)")
        #expect(check.stdout.contains("SUCCESS: 9 rules found"), "\(check.stdout)")
        let test = try ProcessRunner.run(
            ["promtool", "test", "rules", Self.directory.appendingPathComponent("junction-alerts.test.yml").path]
        )
        #expect(test.status == 0, "\(test.stdout)\(test.stderr)")
        #expect(test.stdout.contains("SUCCESS"), "\(test.stdout)")
    }

    @Test(
        "Every metric the rules and the dashboard use is exported; per-backend tunnels and certificate expiry are right"
    )
    func metricsExist() throws {
        let monolith = try HTTPTestBackend(name: "monolith")
        defer { monolith.stop() }
        let ddp = try DDPBackend(name: "ddp-a")
        defer { ddp.stop() }
        let certificates = try TestCertificates()
        let issued = try certificates.issue(commonName: "localhost", dnsNames: ["localhost"])
        // The monolith route's limit (one request per client, then one per 100 s) refuses the second
        // request, so junction_limited_total, which has a series from its first refusal, is exported.
        let junction = try JunctionProcess(
            yaml: TestConfig.split(
                monolith: [monolith.address],
                ddp: [ddp.address],
                tls: true,
                monolithRouteExtra: """
                        limit:
                          requests_per_second: 0.01
                          burst: 1
                    """
            )
                + "admin:\n  address: 127.0.0.1:0\n",
            files: ["cert.pem": issued.certificatePEM, "key.pem": issued.keyPEM],
            waitForListeners: 3
        )
        let issuedAt = Date().timeIntervalSince1970
        _ = try Curl.status("http://127.0.0.1:\(junction.port("http"))/echo")
        #expect(try Curl.status("http://127.0.0.1:\(junction.port("http"))/echo") == 429)
        let driver = try WebSocketDriver()
        defer { driver.quit() }
        #expect(try driver.open("w", url: "ws://127.0.0.1:\(junction.port("http"))/websocket")["ok"] as? Bool == true)
        // One more, closed by the client: counted in junction_tunnels_closed_total.
        #expect(try driver.open("x", url: "ws://127.0.0.1:\(junction.port("http"))/websocket")["ok"] as? Bool == true)
        try driver.close("x")
        let closedLine = "junction_tunnels_closed_total{pool=\"ddp-streamer\",reason=\"client\"} 1"
        #expect(
            JunctionProcess.wait(timeout: 5) {
                ((try? Curl.run(["-s", "http://\(junction.address("admin"))/metrics"])) ?? "").contains(closedLine)
            }
        )

        let metrics = try Curl.run(["-s", "http://\(junction.address("admin"))/metrics"])
        let exported = Set(
            metrics.split(separator: "\n").filter { !$0.hasPrefix("#") }.compactMap { line in
                line.split(whereSeparator: { $0 == "{" || $0 == " " }).first.map(String.init)
            }
        )
        let rules = try String(
            contentsOf: Self.directory.appendingPathComponent("junction-alerts.yml"),
            encoding: .utf8
        )
        let dashboard = try String(
            contentsOf: Self.directory.appendingPathComponent("grafana-dashboard.json"),
            encoding: .utf8
        )
        let used = Set(
            (rules + dashboard).matches(of: /junction_[a-z_]+/).map { String($0.output) }
                .filter { $0 != "junction_alerts" }
        )
        #expect(
            used == [
                "junction_acme_orders_total", "junction_backend_healthy", "junction_backend_tunnels",
                "junction_certificate_expiry_timestamp_seconds",
                "junction_connections_active", "junction_limited_total", "junction_log_lines_dropped_total",
                "junction_request_duration_seconds_bucket", "junction_requests_total",
                "junction_tunnels_closed_total", "junction_upstream_active_connections",
            ],
            "\(used.sorted())"
        )
        for name in used.sorted() {
            #expect(
                exported.contains(name),
                "\(name) is used by conf/monitoring but not exported: \(exported.sorted())"
            )
        }

        // The tunnel counts per backend, in /metrics and /status.
        #expect(
            metrics.contains("junction_backend_tunnels{pool=\"ddp-streamer\",backend=\"\(ddp.address)\"} 1"),
            "\(metrics)"
        )
        let status = try Curl.json("http://\(junction.address("admin"))/status")
        let pool = (status["pools"] as? [String: Any])?["ddp-streamer"] as? [String: Any]
        let backend = (pool?["backends"] as? [[String: Any]])?.first
        #expect(backend?["tunnels"] as? Int == 1 && backend?["active"] as? Int == 1, "\(status)")

        // The certificate expires a day after it was issued (whole seconds in the certificate).
        let line = metrics.split(separator: "\n").first {
            $0.hasPrefix("junction_certificate_expiry_timestamp_seconds{listener=\"https\",certificate=\"")
        }
        let expiry = line.flatMap { Double($0.split(separator: " ").last ?? "") } ?? 0
        #expect(abs(expiry - (issuedAt + 86400)) < 120, "\(line ?? "no certificate line")")
    }

    @Test(
        "A tunnel reset by the backend (RST, no close frame) is counted reason=backend, one reset by the client reason=client"
    )
    func tunnelResets() throws {
        let monolith = try HTTPTestBackend(name: "monolith")
        defer { monolith.stop() }
        let ddp = try DDPBackend(name: "ddp-a")
        defer { ddp.stop() }
        let junction = try JunctionProcess(
            yaml: TestConfig.split(monolith: [monolith.address], ddp: [ddp.address])
                + "admin:\n  address: 127.0.0.1:0\n",
            waitForListeners: 2
        )
        let driver = try WebSocketDriver()
        defer { driver.quit() }
        let url = "ws://127.0.0.1:\(junction.port("http"))/websocket"
        let metrics = { (try? Curl.run(["-s", "http://\(junction.address("admin"))/metrics"])) ?? "" }
        for round in 1...3 {
            #expect(try driver.open("b\(round)", url: url)["ok"] as? Bool == true)
            #expect(try driver.reset("b\(round)", byBackend: true)["ok"] as? Bool == true)
            let line = "junction_tunnels_closed_total{pool=\"ddp-streamer\",reason=\"backend\"} \(round)"
            #expect(JunctionProcess.wait(timeout: 5) { metrics().contains(line) }, "round \(round): \(metrics())")
        }
        #expect(try driver.open("c", url: url)["ok"] as? Bool == true)
        #expect(try driver.reset("c", byBackend: false)["ok"] as? Bool == true)
        let clientLine = "junction_tunnels_closed_total{pool=\"ddp-streamer\",reason=\"client\"} 1"
        #expect(JunctionProcess.wait(timeout: 5) { metrics().contains(clientLine) }, "\(metrics())")
        let closed = metrics().split(separator: "\n").filter { $0.hasPrefix("junction_tunnels_closed_total{") }
        #expect(closed.count == 2, "no other reason counted: \(closed)")
    }

    @Test(
        "The admin dashboard at / shows the process, listeners, pools, backends and request rates in headless Chromium"
    )
    func dashboard() throws {
        let monolith = try HTTPTestBackend(name: "monolith")
        defer { monolith.stop() }
        let ddp = try DDPBackend(name: "ddp-a")
        defer { ddp.stop() }
        let junction = try JunctionProcess(
            yaml: TestConfig.split(monolith: [monolith.address], ddp: [ddp.address])
                + RuntimeControlTests.admin,
            files: RuntimeControlTests.files,
            waitForListeners: 2
        )
        for _ in 0..<3 { _ = try Curl.status("http://127.0.0.1:\(junction.port("http"))/echo") }
        let driver = try WebSocketDriver()
        defer { driver.quit() }
        #expect(try driver.open("w", url: "ws://127.0.0.1:\(junction.port("http"))/websocket")["ok"] as? Bool == true)

        let page = try Curl.run(["-s", "-D", "-", "http://\(junction.address("admin"))/"])
        #expect(page.contains("Content-Type: text/html; charset=utf-8"), "\(page.prefix(300))")
        #expect(!page.contains("src=\"http") && !page.contains("href=\"http"), "no external assets")

        // Virtual time runs the page's refreshes (its fetches are real): the second one has rates.
        let browser = try ProcessRunner.run(
            [
                "chromium", "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
                "--virtual-time-budget=12000", "--dump-dom", "http://\(junction.address("admin"))/",
            ],
            timeout: 90
        )
        let dom = browser.stdout
        #expect(dom.contains("<title>Junction: 2 pools, 2/2 backends up</title>"), "\(dom)")
        // The process line: pid, version and start, from /status.
        let process = try Curl.json("http://\(junction.address("admin"))/status")["process"] as? [String: Any]
        let processLine =
            "<div id=\"process\" class=\"muted\">pid \(junction.pid) \u{B7} version "
            + "\(process?["version"] as? String ?? "?") \u{B7} started "
        #expect(dom.contains(processLine), "\(dom)")
        // With a token file the page offers the writes; states show.
        #expect(dom.contains("<td class=\"active\">active</td>"), "\(dom)")
        #expect(dom.contains("<button class=\"write\">drain \(monolith.address)</button>"), "\(dom)")
        #expect(dom.contains("<button class=\"write\">rebalance ddp-streamer</button>"), "\(dom)")
        #expect(dom.contains("Pool ddp-streamer") && dom.contains("Pool monolith"), "\(dom)")
        #expect(dom.contains("<td>\(monolith.address)</td>") && dom.contains("<td>\(ddp.address)</td>"), "\(dom)")
        #expect(dom.contains("least_conn, affinity none, 1 open WebSockets"), "the ddp-streamer pool's tunnel: \(dom)")
        #expect(dom.contains("<td>http</td>"), "the listener: \(dom)")
        #expect(
            dom.contains("<td>monolith</td><td>monolith</td><td class=\"num\">"),
            "the monolith route's rates: \(dom)"
        )
        #expect(dom.contains("<span id=\"error\"></span>"), "no fetch failed: \(dom)")

        // A drained backend shows as drained, with an enable button instead.
        #expect(
            try RuntimeControlTests.post(junction, "/pools/ddp-streamer/backends/\(ddp.address)/drain").status == 202
        )
        #expect(
            JunctionProcess.wait(timeout: 10) {
                (try? RuntimeControlTests.backends(junction, pool: "ddp-streamer")[ddp.address]?["state"] as? String)
                    == "drained"
            }
        )
        let after = try ProcessRunner.run(
            [
                "chromium", "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
                "--virtual-time-budget=3000", "--dump-dom", "http://\(junction.address("admin"))/",
            ],
            timeout: 90
        ).stdout
        #expect(after.contains("<td class=\"drained\">drained</td>"), "\(after)")
        #expect(after.contains("<button class=\"write\">enable \(ddp.address)</button>"), "\(after)")
    }

    @Test(
        "The dashboard keeps the last minutes and draws them as inline SVG charts (requests and 429s per route, tunnels per backend); a screenshot shows them"
    )
    func dashboardCharts() throws {
        let monolith = try HTTPTestBackend(name: "monolith")
        defer { monolith.stop() }
        let ddp = try DDPBackend(name: "ddp-a")
        defer { ddp.stop() }
        let junction = try JunctionProcess(
            yaml: TestConfig.split(monolith: [monolith.address], ddp: [ddp.address])
                + RuntimeControlTests.admin,
            files: RuntimeControlTests.files,
            waitForListeners: 2
        )
        for _ in 0..<5 { _ = try Curl.status("http://127.0.0.1:\(junction.port("http"))/echo") }
        let driver = try WebSocketDriver()
        defer { driver.quit() }
        #expect(try driver.open("w", url: "ws://127.0.0.1:\(junction.port("http"))/websocket")["ok"] as? Bool == true)
        let counted = JunctionProcess.wait(timeout: 5) {
            let backends = try? RuntimeControlTests.backends(junction, pool: "ddp-streamer")
            return backends?[ddp.address]?["tunnels"] as? Int == 1
        }
        #expect(counted, "the tunnel is counted in /status before the page loads")

        // 30 s of virtual time: seven refreshes (their fetches are real), six with rates.
        let url = "http://\(junction.address("admin"))/"
        let chromium = [
            "chromium", "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run", "--hide-scrollbars",
            "--virtual-time-budget=30000",
        ]
        let dom = try ProcessRunner.run(chromium + ["--dump-dom", url], timeout: 90).stdout
        #expect(dom.contains("<span id=\"error\"></span>"), "no fetch failed: \(dom)")
        #expect(!dom.contains("<div id=\"charts\">cannot draw"), "the charts threw: \(dom)")

        // The monolith route: a requests/s line with a point per refresh after the first, and the
        // 429/s line beside it (0 here: nothing limits this config).
        let route = Self.chart("route:monolith", in: dom)
        #expect(route.contains(">last 10 min</text>") && route.contains("<text class=\"y-max\""), "\(dom)")
        let requests = Self.series("requests", in: route)
        #expect(requests.count == 1, "one requests line: \(route)")
        let points: Int = requests.first.flatMap { Self.attribute("points", of: $0) }?.split(separator: " ").count ?? 0
        #expect(points >= 2, "a point per refresh: \(route)")
        let limited = Self.series("limited", in: route)
        #expect(limited.count == 1, "the 429 line: \(route)")
        let limitedLast: Double? = limited.first.flatMap { Self.attribute("data-last", of: $0) }.flatMap { Double($0) }
        #expect(limitedLast != nil, "a number, 0 here: \(route)")

        // The ddp-streamer pool: a tunnels line for its backend, ending at the open tunnel.
        let pool = Self.chart("pool:ddp-streamer", in: dom)
        let tunnels = Self.series("tunnels", in: pool).filter { Self.attribute("data-backend", of: $0) == ddp.address }
        #expect(tunnels.count == 1, "the backend's tunnels line: \(pool)")
        let tunnelsLast: String? = tunnels.first.flatMap { Self.attribute("data-last", of: $0) }
        #expect(tunnelsLast == "1", "\(pool)")
        let tunnelPoints: Int =
            tunnels.first.flatMap { Self.attribute("points", of: $0) }?.split(separator: " ").count ?? 0
        #expect(tunnelPoints >= 2, "\(pool)")

        // The screenshot: a 1200 px wide PNG, much bigger than a blank page's with the same flags.
        let directory = try TestPaths.makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let screenshot = { (name: String, target: String) throws -> (Data, String) in
            let file = directory.appendingPathComponent(name)
            let run = try ProcessRunner.run(
                chromium + ["--window-size=1200,1600", "--screenshot=\(file.path)", target],
                timeout: 90
            )
            return ((try? Data(contentsOf: file)) ?? Data(), run.stderr)
        }
        let (png, log) = try screenshot("dashboard.png", url)
        let (blank, _) = try screenshot("blank.png", "about:blank")
        let signature: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]
        #expect(png.starts(with: signature), "a PNG: \(log)")
        // IHDR: width and height, big-endian, at bytes 16..<24.
        let width = Self.bigEndian(png, at: 16), height = Self.bigEndian(png, at: 20)
        #expect(width == 1200 && height == 1600, "\(width)x\(height)")
        #expect(
            png.count > 40_000 && png.count > 4 * blank.count,
            "\(png.count) bytes against \(blank.count) for a blank page"
        )
    }

    /// The markup of one dashboard chart (`<svg class="chart" data-chart="ID" ...>...</svg>`) in a
    /// dumped DOM, or "" when there is none.
    static func chart(_ id: String, in dom: String) -> String {
        guard let start = dom.range(of: "<svg class=\"chart\" data-chart=\"\(id)\""),
            let end = dom.range(of: "</svg>", range: start.upperBound..<dom.endIndex)
        else { return "" }
        return String(dom[start.lowerBound..<end.upperBound])
    }

    /// The opening tags (from `class=` to before `>`) of a chart's lines of one kind:
    /// `<polyline class="series KIND" ...>`.
    static func series(_ kind: String, in chart: String) -> [String] {
        chart.components(separatedBy: "<polyline ").dropFirst().compactMap { rest -> String? in
            let tag = String(rest.prefix { $0 != ">" })
            return tag.hasPrefix("class=\"series \(kind)\"") ? tag : nil
        }
    }

    /// The 32-bit big-endian number at `offset` in `data` (0 when it is shorter).
    static func bigEndian(_ data: Data, at offset: Int) -> Int {
        let bytes = [UInt8](data)
        guard bytes.count >= offset + 4 else { return 0 }
        return bytes[offset..<offset + 4].reduce(0) { ($0 << 8) | Int($1) }
    }

    /// The value of attribute `name` (not the first one) in an opening tag, or nil.
    static func attribute(_ name: String, of tag: String) -> String? {
        guard let start = tag.range(of: " \(name)=\"") else { return nil }
        return String(tag[start.upperBound...].prefix { $0 != "\"" })
    }
}
