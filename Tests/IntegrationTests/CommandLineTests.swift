import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// The binary as an operator uses it: `check`, `version`, exit codes, the shipped config, shutdown.
@Suite("Command line and lifecycle", .junctionTimeLimit(minutes: 5))
struct CommandLineTests {
    @Test("`junction check` prints every error with file:line:column and key path, and exits 1")
    func checkBrokenFile() throws {
        let directory = try TestPaths.makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("broken.yaml").path
        try """
        threads: many
        listeners:
          - name: web
            address: 0.0.0.0:80800
        routes:
          - name: ddp
            match:
              path_prefix: sockjs
            pool: ddp-streamer
          - name: rest
            pool: monolit
        pools:
          ddp-streamer:
            backends:
              - address: 127.0.0.1:3001
              - address: localhost
            timeouts:
              connect: 5 seconds
          monolith:
            backends:
              - address: 127.0.0.1:3000
                wieght: 2
        limits:
          max_body_bytes: 10MB
        """.write(toFile: path, atomically: true, encoding: .utf8)
        let output = try ProcessRunner.run([TestPaths.junctionBinary, "check", "--config", path])
        #expect(output.status == 1)
        let expected = [
            "\(path):1:10: threads: expected an integer, got \"many\"",
            "\(path):4:14: listeners[0].address: port must be 1-65535 in \"0.0.0.0:80800\"",
            "\(path):8:20: routes[0].match.path_prefix: a path prefix must start with \"/\", got \"sockjs\"",
            "\(path):11:11: routes[1].pool: unknown pool \"monolit\" (pools: ddp-streamer, monolith)",
            "\(path):16:18: pools.ddp-streamer.backends[1].address: expected host:port, got \"localhost\"",
            "\(path):18:16: pools.ddp-streamer.timeouts.connect: expected a duration like 250ms, 5s, 2m, 1h or 30d, got \"5 seconds\"",
            "\(path):22:9: pools.monolith.backends[0].wieght: unknown key \"wieght\" (expected one of: address, weight)",
            "\(path):24:19: limits.max_body_bytes: expected a size like 65536, 64KiB, 10MiB or 1GiB, got \"10MB\"",
        ]
        for line in expected {
            #expect(output.stderr.contains("error: \(line)"), "missing: \(line)\n--- got:\n\(output.stderr)")
        }
        #expect(output.stderr.contains("\(path): 8 errors"))
    }

    @Test("A YAML syntax error and a missing file are one precise line each")
    func syntaxAndMissing() throws {
        let directory = try TestPaths.makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("bad.yaml").path
        try "listeners:\n  - name: a\n   address: [1, 2\n".write(toFile: path, atomically: true, encoding: .utf8)
        let syntax = try ProcessRunner.run([TestPaths.junctionBinary, "check", "--config", path])
        #expect(syntax.status == 1)
        #expect(syntax.stderr.contains("error: \(path):3:"), "\(syntax.stderr)")
        #expect(syntax.stderr.contains("invalid YAML"))
        let missing = try ProcessRunner.run([
            TestPaths.junctionBinary, "run", "--config", directory.path + "/nope.yaml",
        ])
        #expect(missing.status == 1)
        #expect(missing.stderr.contains("nope.yaml: cannot read file: No such file or directory"), "\(missing.stderr)")
        let unresolvable = directory.appendingPathComponent("dns.yaml").path
        try TestConfig.split(monolith: ["nonexistent.invalid:3000"], ddp: ["also-missing.invalid:3001"])
            .write(toFile: unresolvable, atomically: true, encoding: .utf8)
        let dns = try ProcessRunner.run([TestPaths.junctionBinary, "check", "--config", unresolvable])
        #expect(dns.status == 1)
        #expect(
            dns.stderr.contains("pools.monolith.backends[0].address: cannot resolve nonexistent.invalid"),
            "\(dns.stderr)"
        )
        #expect(dns.stderr.contains("pools.ddp-streamer.backends[0].address: cannot resolve also-missing.invalid"))
        // Usage errors exit 2 (contract: "2 usage"), with the parser's message; help is not an error.
        for arguments in [["frobnicate"], ["run", "--bogus"], ["check", "--config"]] {
            let usage = try ProcessRunner.run([TestPaths.junctionBinary] + arguments)
            #expect(usage.status == 2, "\(arguments): exit \(usage.status), \(usage.stderr)")
            #expect(usage.stderr.contains("Usage: junction"), "\(arguments): \(usage.stderr)")
        }
        let help = try ProcessRunner.run([TestPaths.junctionBinary, "--help"])
        #expect(help.status == 0 && help.stdout.contains("USAGE: junction"), "\(help.stdout)")
    }

    @Test("`junction check` expands environment placeholders: an unset one is an error line and exit 1")
    func checkPlaceholders() throws {
        let directory = try TestPaths.makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("env.yaml").path
        try """
        listeners:
          - name: ${JUNCTION_TEST_LISTENER}
            address: 127.0.0.1:${JUNCTION_TEST_LISTEN_PORT:-8080}
        routes:
          - name: all
            pool: app
        pools:
          app:
            backends:
              - address: 127.0.0.1:${JUNCTION_TEST_BACKEND_PORT}
        """.write(toFile: path, atomically: true, encoding: .utf8)
        // The child gets this process's environment plus these; the backend port is left unset.
        let environment = ["JUNCTION_TEST_LISTENER": "web"]
        let unset = try ProcessRunner.run(
            [TestPaths.junctionBinary, "check", "--config", path],
            environment: environment
        )
        #expect(unset.status == 1)
        let line =
            "error: \(path):10:18: pools.app.backends[0].address: environment variable JUNCTION_TEST_BACKEND_PORT"
            + " is not set and \"${JUNCTION_TEST_BACKEND_PORT}\" has no default"
        #expect(unset.stderr.contains(line), "missing: \(line)\n--- got:\n\(unset.stderr)")
        #expect(unset.stderr.contains("\(path): 1 error\n"), "\(unset.stderr)")
        let set = try ProcessRunner.run(
            [TestPaths.junctionBinary, "check", "--config", path],
            environment: environment.merging(["JUNCTION_TEST_BACKEND_PORT": "3000"]) { $1 }
        )
        #expect(set.status == 0, "\(set.stderr)")
        #expect(set.stdout.contains("\(path): OK"), "\(set.stdout)")
    }

    @Test("The shipped configs validate; `version` prints the version")
    func shippedConfigs() throws {
        let root = TestPaths.repositoryRoot
        let storage = try TestPaths.makeTemporaryDirectory().appendingPathComponent("acme").path
        for file in [
            "conf/junction.yaml", "conf/examples/minimal.yaml", "conf/examples/multi-monolith.yaml",
            "conf/compose/junction.yaml", "conf/compose/junction-acme.yaml",
        ] {
            let path = root.appendingPathComponent(file).path
            // The ACME variant takes its name from the environment, as compose passes it; its
            // storage (a volume path in the container) goes to a temporary directory here.
            let output = try ProcessRunner.run(
                [TestPaths.junctionBinary, "check", "--config", path],
                environment: ["CHAT_DOMAIN": "chat.example.com", "ACME_STORAGE": storage]
            )
            // conf/junction.yaml refers to certs made by certs/make-dev-certs.sh, and the compose
            // file to service names only Docker's DNS knows: those may be the only errors.
            let errors = output.stderr.split(separator: "\n").filter {
                $0.hasPrefix("error:") && !$0.contains("cannot read")
                    && !(file.contains("compose")
                        && ($0.contains("cannot resolve ddp-streamer")
                            || $0.contains("cannot resolve rocketchat")))
            }
            #expect(errors.isEmpty, "\(file): \(output.stderr)")
        }
        let version = try ProcessRunner.run([TestPaths.junctionBinary, "version"])
        #expect(version.status == 0)
        #expect(version.stdout.hasPrefix("junction "))
    }

    @Test("SIGTERM: stops accepting, lets an in-flight request finish, exits 0")
    func gracefulShutdown() throws {
        let monolith = try HTTPTestBackend(name: "monolith")
        defer { monolith.stop() }
        let junction = try JunctionProcess(
            yaml: TestConfig.split(monolith: [monolith.address], ddp: ["127.0.0.1:9"], limits: "  shutdown_grace: 10s")
        )
        let port = junction.port("http")
        let inFlight = try RawClient(port: port)
        try inFlight.send("GET /slow?ms=1500 HTTP/1.1\r\nHost: t\r\n\r\n")
        #expect(JunctionProcess.wait(timeout: 5) { monolith.stats.proxiedRequests.load(ordering: .relaxed) == 1 })
        junction.signal(SIGTERM)
        // New connections are refused once the listener is closed.
        #expect(JunctionProcess.wait(timeout: 5) { (try? RawClient(port: port)) == nil })
        let answer = try inFlight.receiveAll()
        #expect(answer.hasPrefix("HTTP/1.1 200 OK"), "\(answer)")
        #expect(answer.lowercased().contains("connection: close"))
        #expect(answer.contains("\"slept_ms\":1500"))
        #expect(junction.waitForExit(timeout: 10) == 0)
    }

    @Test("SIGTERM: an open WebSocket gets shutdown_grace, then is closed; exit 0")
    func shutdownClosesTunnelsAfterGrace() throws {
        let ddp = try DDPBackend(name: "ddp-a")
        defer { ddp.stop() }
        let junction = try JunctionProcess(
            yaml: TestConfig.split(monolith: ["127.0.0.1:9"], ddp: [ddp.address], limits: "  shutdown_grace: 2s")
        )
        let driver = try WebSocketDriver()
        defer { driver.quit() }
        let opened = try driver.open("w", url: "ws://127.0.0.1:\(junction.port("http"))/websocket")
        #expect(opened["ok"] as? Bool == true)
        let stopped = Date()
        junction.signal(SIGTERM)
        #expect(junction.waitForStderr { $0.contains("listener draining") })
        #expect(try driver.echo("w", size: 10)["ok"] as? Bool == true, "the tunnel still works during the grace")
        let status = junction.waitForExit(timeout: 15)
        let elapsed = Date().timeIntervalSince(stopped)
        #expect(status == 0)
        #expect(elapsed >= 1.8 && elapsed < 6, "exited \(elapsed) s after SIGTERM")
        #expect(
            junction.stderr.contains("shutdown grace over, closing what is still open")
                && junction.stderr.contains("connections=1"),
            "the log says what was still open: \(junction.stderr)"
        )
    }

    @Test("A port already in use: exit 1 with one clear line")
    func bindFailure() throws {
        let holder = try HTTPTestBackend(name: "holder")
        defer { holder.stop() }
        let directory = try TestPaths.makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("j.yaml").path
        try TestConfig.split(monolith: ["127.0.0.1:9"], ddp: ["127.0.0.1:9"])
            .replacingOccurrences(of: "127.0.0.1:0", with: holder.address)
            .write(toFile: path, atomically: true, encoding: .utf8)
        let output = try ProcessRunner.run([TestPaths.junctionBinary, "run", "--config", path], timeout: 20)
        #expect(output.status == 1)
        #expect(output.stderr.contains("cannot bind listener http to \(holder.address)"), "\(output.stderr)")
    }

    @Test("An idle WebSocket tunnel is closed after tunnel_idle; an active one is not")
    func tunnelIdle() throws {
        let ddp = try DDPBackend(name: "ddp-a")
        defer { ddp.stop() }
        let junction = try JunctionProcess(
            yaml: TestConfig.split(
                monolith: ["127.0.0.1:9"],
                ddp: [ddp.address],
                ddpPoolExtra: "    timeouts:\n      tunnel_idle: 2s"
            )
        )
        #expect(
            junction.waitForStderr { $0.contains("a tunnel_idle under 60s closes live WebSockets") },
            "the config warns"
        )
        let driver = try WebSocketDriver()
        defer { driver.quit() }
        let url = "ws://127.0.0.1:\(junction.port("http"))/websocket"
        #expect(try driver.open("busy", url: url)["ok"] as? Bool == true)
        #expect(try driver.open("idle", url: url)["ok"] as? Bool == true)
        // Keep one tunnel busy for 4 s (twice tunnel_idle) while the other stays silent.
        for _ in 0..<8 {
            Thread.sleep(forTimeInterval: 0.5)
            #expect(try driver.echo("busy", size: 10)["ok"] as? Bool == true)
        }
        #expect(try driver.echo("busy", size: 10)["ok"] as? Bool == true, "traffic keeps a tunnel open")
        #expect(try driver.echo("idle", size: 10)["ok"] as? Bool != true, "the silent tunnel was closed")
        #expect(
            junction.waitForStdout { $0.contains("\" 101 ") && $0.contains(" proto=ws ") },
            "a closed tunnel is logged"
        )
    }
}
