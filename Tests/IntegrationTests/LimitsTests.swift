import Foundation
import Testing

/// Per-client limits through the real binary: clients told apart by their source address
/// (127.0.0.2, 127.0.0.3... on loopback) and by PROXY headers carrying documentation addresses.
/// One abusive client gets 429s and closed connections while everyone else's requests and
/// WebSockets go on, and nothing reaches a backend on its behalf.
@Suite("Per-client limits (integration)", .junctionTimeLimit(minutes: 6))
struct LimitsTests {
    /// The h2c listener besides `http`, and a PROXY-protocol listener.
    static let listeners = """
          - name: h2c
            address: 127.0.0.1:0
            http2: true
          - name: proxied
            address: 127.0.0.1:0
            proxy_protocol: true

        """

    /// The login route before the monolith's catch-all, with its own limit: a burst of 2, then one
    /// request every 5 s (slow enough that a busy test machine does not refill it between requests).
    static func routes(_ yaml: String) -> String {
        yaml.replacingOccurrences(
            of: "  - name: monolith\n    pool: monolith\n",
            with: """
                  - name: login
                    match:
                      path_prefix: /api/v1/login
                    pool: monolith
                    limit:
                      requests_per_second: 0.2
                      burst: 2
                  - name: dead
                    match:
                      path_prefix: /dead
                    pool: dead
                  - name: monolith
                    pool: monolith
                    response_headers:
                      Strict-Transport-Security: max-age=63072000

                """
        )
        // A pool whose backend refuses every connection: a WebSocket there fails with a 502.
        .replacingOccurrences(
            of: "logging:\n",
            with: "  dead:\n    retries: 0\n    backends:\n      - address: 127.0.0.1:1\nlogging:\n"
        )
    }

    /// The backends and the Junction of one test, `perClient` under `limits.per_client`; `stop()`
    /// ends the backends (Junction ends with the process object).
    struct Setup {
        let monolith: HTTPTestBackend
        let ddp: DDPBackend
        let junction: JunctionProcess

        init(perClient: String) throws {
            let monolith = try HTTPTestBackend(name: "monolith")
            let ddp: DDPBackend
            do { ddp = try DDPBackend(name: "ddp-a") } catch {
                monolith.stop()
                throw error
            }
            do {
                self.junction = try LimitsTests.start(monolith: monolith, ddp: ddp, perClient: perClient)
            } catch {
                monolith.stop()
                ddp.stop()
                throw error
            }
            (self.monolith, self.ddp) = (monolith, ddp)
        }

        func stop() {
            self.monolith.stop()
            self.ddp.stop()
        }
    }

    private static func start(
        monolith: HTTPTestBackend,
        ddp: DDPBackend,
        perClient: String
    ) throws -> JunctionProcess {
        let yaml =
            Self.routes(
                TestConfig.split(
                    monolith: [monolith.address],
                    ddp: [ddp.address],
                    extraListeners: Self.listeners,
                    limits: "  per_client:\n" + perClient
                )
            ) + RuntimeControlTests.admin
        return try JunctionProcess(yaml: yaml, files: RuntimeControlTests.files, waitForListeners: 4)
    }

    /// Runs one `limit_client.py` command to its first line of JSON; the process stays for those
    /// that hold what they opened.
    static func client(_ arguments: [String]) throws -> (LineProcess, [String: Any]) {
        let process = try LineProcess(["python3", TestPaths.fixture("limit_client.py")] + arguments)
        let line = try process.readLine(timeout: 120)
        guard let json = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else {
            throw LineProcess.Failure(description: "limit_client.py said \(line)")
        }
        return (process, json)
    }

    /// curl's status codes for `count` requests to `url` on one connection from `source`.
    static func statuses(_ url: String, count: Int, source: String, extra: [String] = []) throws -> [Int] {
        var arguments = ["--interface", source] + extra
        for _ in 0..<count { arguments += ["-o", "/dev/null", "-w", "%{http_code}\\n", url] }
        return try Curl.run(arguments).split(separator: "\n").map { Int($0) ?? -1 }
    }

    /// The first of up to 4 requests (curl `arguments`, printing head and body) that was answered
    /// 429: a bucket a slow machine refilled meanwhile lets one more through, never four.
    static func refused(_ arguments: [String]) throws -> String {
        var last = ""
        for _ in 0..<4 {
            last = try Curl.run(["-D", "-"] + arguments)
            if last.hasPrefix("HTTP/1.1 429") || last.hasPrefix("HTTP/2 429") { return last }
        }
        return last
    }

    /// The Retry-After seconds of a response head as curl printed it (`-D -`).
    static func retryAfter(_ head: String) -> Int? {
        head.components(separatedBy: "\r\n")
            .first { $0.lowercased().hasPrefix("retry-after:") }
            .flatMap { Int($0.dropFirst("retry-after:".count).trimmingCharacters(in: .whitespaces)) }
    }

    static func limited(_ junction: JunctionProcess, _ listener: String, _ reason: String) throws -> Int {
        let metrics = try Curl.run(["http://\(junction.address("admin"))/metrics"])
        let prefix = "junction_limited_total{listener=\"\(listener)\",reason=\"\(reason)\"} "
        guard let line = metrics.split(separator: "\n").first(where: { $0.hasPrefix(prefix) }) else { return 0 }
        return Int(Double(line.dropFirst(prefix.count)) ?? -1)
    }

    @Test(
        "An abusive address gets 429s and closed connections; another address is served; nothing limited reaches the backend"
    )
    func abusiveClient() throws {
        let setup = try Setup(perClient: "    max_connections: 4\n    requests_per_second: 0.5\n    burst: 10\n")
        defer { setup.stop() }
        let junction = setup.junction
        let http = "http://127.0.0.1:\(junction.port("http"))"

        // The request rate: a burst of 10 at most, then 429s, none of which reaches the backend.
        let before = setup.monolith.stats.requests.load(ordering: .relaxed)
        let started = Date()
        let abusive = try Self.statuses(http + "/echo", count: 40, source: "127.0.0.2")
        let refilled = Int((Date().timeIntervalSince(started) * 0.5).rounded(.up))
        let served = abusive.filter { $0 == 200 }.count
        #expect(served >= 10 && served <= 10 + refilled, "the burst and what refilled meanwhile: \(abusive)")
        #expect(abusive.filter { $0 == 429 }.count == 40 - served, "\(abusive)")
        #expect(
            setup.monolith.stats.requests.load(ordering: .relaxed) - before == served,
            "only the served ones reached it"
        )
        // Everyone else goes on.
        #expect(try Self.statuses(http + "/echo", count: 10, source: "127.0.0.3") == Array(repeating: 200, count: 10))

        // The answer: Retry-After in whole seconds, the standard one-line body, the route's headers.
        let answer = try Self.refused(["--interface", "127.0.0.2", http + "/echo"])
        #expect(answer.hasPrefix("HTTP/1.1 429 Too Many Requests\r\n"), "\(answer)")
        #expect(Self.retryAfter(answer).map { (1...2).contains($0) } == true, "\(answer)")
        #expect(answer.contains("\r\nStrict-Transport-Security: max-age=63072000\r\n"), "\(answer)")
        #expect(
            answer.contains(
                "\r\n\r\n429 Too Many Requests: this client exceeds limits.per_client.requests_per_second (request "
            ),
            "\(answer)"
        )
        // On HTTP/2 too: the address's bucket is the same on every listener.
        let h2 = try Self.refused([
            "--interface", "127.0.0.2", "--http2-prior-knowledge", "-o", "/dev/null",
            "http://127.0.0.1:\(junction.port("h2c"))/echo",
        ])
        #expect(h2.hasPrefix("HTTP/2 429"), "\(h2)")
        #expect(Self.retryAfter(h2).map { (1...2).contains($0) } == true, "\(h2)")
        #expect(h2.contains("\r\nstrict-transport-security: max-age=63072000\r\n"), "\(h2)")
        // Logged with its status, route and pool, and no backend; counted.
        #expect(
            junction.waitForStdout {
                $0.contains("127.0.0.2 - - [") && $0.contains("\"GET /echo HTTP/1.1\" 429 ")
                    && $0.contains("route=monolith pool=monolith backend=-")
            },
            "\(junction.stdout.suffix(2000))"
        )
        #expect(try Self.limited(junction, "http", "requests") >= 40 - served)

        // Connections: the fifth of one address is closed at accept; another address is not.
        let (held, opened) = try Self.client(["conns", "127.0.0.4", String(junction.port("http")), "5"])
        defer { held.terminate() }
        let statuses = (opened["statuses"] as? [Int] ?? []).sorted()
        #expect(statuses == [0, 200, 200, 200, 200], "\(opened)")
        #expect(try Curl.status(http + "/echo", extra: ["--interface", "127.0.0.5"]) == 200)
        #expect(try Self.limited(junction, "http", "connections") == 1)
        #expect(
            junction.waitForStderr {
                $0.contains("per-client limit: closed a connection at accept") && $0.contains("client=127.0.0.4")
                    && $0.contains("max_connections=4")
            },
            "\(junction.stderr.suffix(2000))"
        )
        // Once one closes, the address may open another.
        held.writeLine("close")
        #expect(
            JunctionProcess.wait(timeout: 10) {
                (try? Curl.status(http + "/echo", extra: ["--interface", "127.0.0.4"])) == 200
            }
        )
    }

    @Test("A route's limit applies per client on that route, on top of the per-client rate; HTTP/2 answers 429 too")
    func routeLimit() throws {
        let setup = try Setup(perClient: "    requests_per_second: 100\n")
        defer { setup.stop() }
        let junction = setup.junction
        let http = "http://127.0.0.1:\(junction.port("http"))"
        let login = try Self.statuses(http + "/api/v1/login", count: 5, source: "127.0.0.2")
        #expect(login == [200, 200, 429, 429, 429], "burst 2 on the login route")
        // The same client elsewhere, and another client on the login route, are not held back.
        #expect(try Self.statuses(http + "/echo", count: 5, source: "127.0.0.2") == Array(repeating: 200, count: 5))
        #expect(try Self.statuses(http + "/api/v1/login", count: 2, source: "127.0.0.3") == [200, 200])
        let answer = try Self.refused(["--interface", "127.0.0.2", http + "/api/v1/login"])
        #expect(
            answer.contains("429 Too Many Requests: this client exceeds the request rate limit of route login"),
            "\(answer)"
        )
        #expect(Self.retryAfter(answer).map { (1...5).contains($0) } == true, "\(answer)")

        // HTTP/2 (h2c): the same 429 with Retry-After. (One curl per request: curl 7.88 fails a
        // second request on a reused prior-knowledge connection, against nginx too.)
        let h2c = "http://127.0.0.1:\(junction.port("h2c"))"
        var heads: [String] = []
        for _ in 0..<4 {
            heads.append(
                try Curl.run([
                    "--interface", "127.0.0.6", "--http2-prior-knowledge", "-D", "-", "-o", "/dev/null",
                    h2c + "/api/v1/login",
                ])
            )
        }
        #expect(heads.prefix(2).allSatisfy { $0.hasPrefix("HTTP/2 200") }, "\(heads)")
        let refused = heads.dropFirst(2).filter { $0.hasPrefix("HTTP/2 429") }
        #expect(!refused.isEmpty, "the burst of 2 is spent within a second: \(heads)")
        #expect(refused.allSatisfy { Self.retryAfter($0).map { (1...5).contains($0) } == true }, "\(refused)")
        #expect(try Self.limited(junction, "h2c", "requests") == refused.count)
    }

    @Test(
        "max_tunnels answers the extra WebSocket 429 on HTTP/1.1 and RFC 8441; others' WebSockets open; a closed one frees a place"
    )
    func tunnels() throws {
        let setup = try Setup(perClient: "    max_tunnels: 2\n")
        defer { setup.stop() }
        let junction = setup.junction
        let port = String(junction.port("http"))
        let h2c = String(junction.port("h2c"))

        let (abuser, opened) = try Self.client(["ws", "127.0.0.2", port, "/websocket", "3"])
        defer { abuser.terminate() }
        #expect(opened["statuses"] as? [Int] == [101, 101, 429], "\(opened)")
        // RFC 8441 from the same address: refused too.
        let (h2Abuser, h2Refused) = try Self.client(["h2connect", "127.0.0.2", h2c, "/websocket"])
        defer { h2Abuser.terminate() }
        #expect(h2Refused["status"] as? String == "429", "\(h2Refused)")
        // Another address opens its WebSockets on both protocols.
        let (other, otherOpened) = try Self.client(["ws", "127.0.0.3", port, "/websocket", "1"])
        defer { other.terminate() }
        #expect(otherOpened["statuses"] as? [Int] == [101], "\(otherOpened)")
        let (h2Other, h2Opened) = try Self.client(["h2connect", "127.0.0.3", h2c, "/websocket"])
        defer { h2Other.terminate() }
        #expect(h2Opened["status"] as? String == "200", "\(h2Opened)")
        // Its own limit holds on both protocols together: a third is refused.
        let (h2Third, h2Over) = try Self.client(["h2connect", "127.0.0.3", h2c, "/websocket"])
        defer { h2Third.terminate() }
        #expect(h2Over["status"] as? String == "429", "\(h2Over)")
        // What reached the backend: the four WebSockets let in.
        #expect(
            JunctionProcess.wait(timeout: 10) {
                (try? RuntimeControlTests.backends(junction, pool: "ddp-streamer")[setup.ddp.address]?["tunnels"]
                    as? Int)
                    == 4
            }
        )
        #expect(try Self.limited(junction, "http", "tunnels") == 1)
        #expect(try Self.limited(junction, "h2c", "tunnels") == 2)
        #expect(junction.waitForStdout { $0.contains("\"GET /websocket HTTP/1.1\" 429 ") && $0.contains("backend=-") })

        // WebSockets that fail (the backend refuses the connection) hold no place once answered.
        let (failed, answered) = try Self.client(["ws", "127.0.0.4", port, "/dead", "3"])
        defer { failed.terminate() }
        // (502 for the first; the backend is down after it, so 503 may follow.)
        let failures = answered["statuses"] as? [Int] ?? []
        #expect(
            failures.count == 3 && failures.first == 502 && failures.allSatisfy { $0 == 502 || $0 == 503 },
            "\(answered)"
        )
        let (afterRefusals, openedAfter) = try Self.client(["ws", "127.0.0.4", port, "/websocket", "2"])
        defer { afterRefusals.terminate() }
        #expect(openedAfter["statuses"] as? [Int] == [101, 101], "\(openedAfter)")
        afterRefusals.writeLine("close")
        _ = try afterRefusals.readLine()

        // The abuser closes its two: it may open again.
        abuser.writeLine("close")
        _ = try abuser.readLine()
        #expect(
            JunctionProcess.wait(timeout: 10) {
                (try? RuntimeControlTests.backends(junction, pool: "ddp-streamer")[setup.ddp.address]?["tunnels"]
                    as? Int)
                    == 2
            }
        )
        let (again, reopened) = try Self.client(["ws", "127.0.0.2", port, "/websocket", "3"])
        defer { again.terminate() }
        #expect(reopened["statuses"] as? [Int] == [101, 101, 429], "\(reopened)")
    }

    @Test(
        "Behind PROXY headers each announced address is a client: connections limited per header address (an IPv6 /64 as one), the header glued, apart or byte by byte",
        arguments: ["glued", "apart", "bytes"]
    )
    func proxyProtocol(_ mode: String) throws {
        let setup = try Setup(perClient: "    max_connections: 2\n")
        defer { setup.stop() }
        let junction = setup.junction
        let port = String(junction.port("proxied"))
        // Every connection comes from 127.0.0.1 (the balancer); the headers tell the clients apart.
        let (first, abusive) = try Self.client(["conns", "127.0.0.1", port, "3", "192.0.2.10", mode])
        defer { first.terminate() }
        #expect((abusive["statuses"] as? [Int] ?? []).sorted() == [0, 200, 200], "\(abusive)")
        let (second, other) = try Self.client(["conns", "127.0.0.1", port, "2", "198.51.100.20", mode])
        defer { second.terminate() }
        #expect(other["statuses"] as? [Int] == [200, 200], "\(other)")
        let (third, v6) = try Self.client(["conns", "127.0.0.1", port, "2", "2001:db8:1:2::7", mode])
        defer { third.terminate() }
        #expect(v6["statuses"] as? [Int] == [200, 200], "\(v6)")
        // Another address of the same IPv6 /64 is the same client: at its limit.
        let (fourth, sameNetwork) = try Self.client(["conns", "127.0.0.1", port, "1", "2001:db8:1:2::8", mode])
        defer { fourth.terminate() }
        #expect(sameNetwork["statuses"] as? [Int] == [0], "\(sameNetwork)")
        #expect(try Self.limited(junction, "proxied", "connections") == 2)
        #expect(
            junction.waitForStderr {
                $0.contains("per-client limit: closed a connection at accept") && $0.contains("client=192.0.2.10")
            }
        )
        // The access log names the announced client.
        #expect(junction.waitForStdout { $0.contains("198.51.100.20 - - [") && $0.contains("listener=proxied") })
    }

    @Test(
        "Thousands of source addresses: each is served within its own limit, the tables stay in their bounds, and idle entries expire"
    )
    func manyAddresses() throws {
        let setup = try Setup(perClient: "    max_connections: 2\n    requests_per_second: 0.2\n    burst: 1\n")
        defer { setup.stop() }
        let junction = setup.junction
        let port = String(junction.port("http"))
        let memoryBefore = junction.memory().rss
        let (flood, result) = try Self.client(["flood", "1", "3000", port, "/echo"])
        flood.terminate()
        #expect(result["statuses"] as? [String: Int] == ["200": 3000], "every address its own bucket: \(result)")
        // Amid them, one address still gets one request in 5 s.
        #expect(try Self.statuses("http://127.0.0.1:\(port)/echo", count: 3, source: "127.0.0.2") == [200, 429, 429])

        let status = try Curl.json("http://\(junction.address("admin"))/status")
        let clients = try #require(status["clients"] as? [String: Any], "\(status)")
        let rated = clients["rated"] as? Int ?? -1
        #expect(rated >= 1 && rated <= (clients["rate_slots"] as? Int ?? 0), "\(clients)")
        #expect(clients["rate_slots"] as? Int == 65_536 && clients["count_slots"] as? Int == 65_536, "\(clients)")
        // Every connection closed: no count is left; buckets full again expire at the next sweep.
        #expect(
            JunctionProcess.wait(timeout: 30) {
                let clients =
                    (try? Curl.json("http://\(junction.address("admin"))/status"))?["clients"] as? [String: Any]
                return clients?["counted"] as? Int == 0 && clients?["rated"] as? Int == 0
            },
            "\(String(describing: try? Curl.json("http://\(junction.address("admin"))/status")["clients"]))"
        )
        // 3000 clients cost nothing that stays: the tables were allocated at start.
        try TestPaths.skipMemoryBoundUnderSanitizer()
        let grown = junction.memory().rss - memoryBefore
        #expect(grown < 16 * 1024, "RSS grew \(grown) KiB")
    }
}
