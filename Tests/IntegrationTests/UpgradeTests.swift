import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// Upgrading the binary in place (SIGUSR2) against the real binary, copied to a directory of its
/// own and replaced there by a rename, as a package manager does; and systemd's notify protocol on
/// a real AF_UNIX datagram socket.
@Suite("Upgrade in place (SIGUSR2) and sd_notify", .junctionTimeLimit(minutes: 6))
struct UpgradeTests {
    /// A copy of the built binary in a fresh directory, and that directory.
    static func installBinary() throws -> (directory: URL, path: String) {
        let directory = try TestPaths.makeTemporaryDirectory()
        let path = directory.appendingPathComponent("junction").path
        try FileManager.default.copyItem(atPath: TestPaths.junctionBinary, toPath: path)
        return (directory, path)
    }

    /// Puts `contents` (a binary or a script) at `path` as a package manager does: written beside
    /// it, then renamed over it, so the running process keeps its own (now unnamed) file.
    static func replace(_ path: String, withFileAt source: String) throws {
        let staged = path + ".new"
        try FileManager.default.copyItem(atPath: source, toPath: staged)
        chmod(staged, 0o755)
        #expect(rename(staged, path) == 0, "rename: \(String(cString: strerror(errno)))")
    }

    /// A script standing in for a broken build: it says why on stderr and exits 3.
    static func writeBrokenBuild(in directory: URL, body: String) throws -> String {
        let path = directory.appendingPathComponent("broken.sh").path
        try ("#!/bin/sh\n" + body + "\n").write(toFile: path, atomically: true, encoding: .utf8)
        chmod(path, 0o755)
        return path
    }

    /// The new process's pid, from the old one's "handed over" line.
    static func successor(of junction: JunctionProcess) -> Int32? {
        guard
            junction.waitForStderr(timeout: 40, { $0.contains("upgrade: handed over to the new process") }),
            let line = junction.stderr.split(separator: "\n").first(where: {
                $0.contains("upgrade: handed over to the new process")
            })
        else { return nil }
        return JunctionProcess.fields(String(line))["to_pid"].flatMap { Int32($0) }
    }

    /// Whether `pid` runs (a zombie counts as gone).
    static func isRunning(_ pid: Int32) -> Bool {
        guard kill(pid, 0) == 0 else { return false }
        let stat = (try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8)) ?? ""
        guard let close = stat.lastIndex(of: ")") else { return false }
        return !stat[close...].hasPrefix(") Z")
    }

    /// SIGTERM to a process that is not the test's child (the new process of an upgrade); waits
    /// until it is gone.
    @discardableResult
    static func stop(_ pid: Int32, timeout: TimeInterval = 20) -> Bool {
        kill(pid, SIGTERM)
        return JunctionProcess.wait(timeout: timeout) { !Self.isRunning(pid) }
    }

    static let admin = "admin:\n  address: 127.0.0.1:0\n"

    @Test(
        "Under steady load an upgrade loses no request, refuses no connection, closes the old tunnels with 1001 at the pool's rate oldest first, exits 0, and the new process serves the config it read itself"
    )
    func upgradeUnderLoad() throws {
        let monolith = try HTTPTestBackend(name: "M")
        defer { monolith.stop() }
        let ddp = try DDPBackend(name: "A")
        defer { ddp.stop() }
        let (binDirectory, binary) = try Self.installBinary()
        defer { try? FileManager.default.removeItem(at: binDirectory) }
        let yaml =
            TestConfig.split(
                monolith: ["127.0.0.1:\(monolith.port)"],
                ddp: [ddp.address],
                ddpPoolExtra: "    drain_rate: 10"
            ) + Self.admin
        let junction = try JunctionProcess(yaml: yaml, waitForListeners: 2, executable: binary)
        var successor: Int32?
        defer { if let successor { Self.stop(successor) } }
        let oldPID = junction.pid
        let port = junction.port("http")

        // Twenty tunnels opened one after the other: client n is the n-th oldest.
        let fleet = try WebSocketFleet()
        defer { fleet.quit() }
        for _ in 0..<20 {
            #expect(try fleet.open(1, url: "ws://127.0.0.1:\(port)/websocket", reconnect: true) == ["A": 1])
        }
        let load = try LineProcess(["python3", TestPaths.fixture("upgrade_load.py"), "127.0.0.1", "\(port)", "/"])
        defer { load.terminate() }
        #expect(try load.readLine(timeout: 40) == "ready")

        // The file changes on disk without a SIGHUP: only a process that reads it sees the new
        // listener.
        let changed = yaml.replacingOccurrences(
            of: "routes:\n",
            with: "  - name: extra\n    address: 127.0.0.1:0\nroutes:\n"
        )
        #expect(changed != yaml)
        try changed.write(toFile: junction.configPath, atomically: true, encoding: .utf8)
        try Self.replace(binary, withFileAt: TestPaths.junctionBinary)

        junction.signal(SIGUSR2)
        successor = Self.successor(of: junction)
        let newPID = try #require(successor, "no hand-over; stderr:\n\(junction.stderr)")
        #expect(newPID != oldPID)
        #expect(
            junction.waitForStderr { $0.contains("upgrade: took over the listeners from_pid=\(oldPID) pid=\(newPID)") }
        )
        #expect(junction.waitForStdout(timeout: 20) { $0.contains("listening name=extra ") })
        // While the old process drains, neither process starts another upgrade (a signal sent to
        // every process of the service, as `systemctl kill` does by default).
        #expect(junction.waitForStderr { $0.contains("upgrade: accepting because=") }, "\(junction.stderr)")
        junction.signal(SIGUSR2)
        kill(newPID, SIGUSR2)
        #expect(
            junction.waitForStderr {
                $0.contains("SIGUSR2: upgrade refused: this process already handed over to pid \(newPID)")
                    && $0.contains(
                        "SIGUSR2: upgrade refused: the process this one replaced (pid \(oldPID)) is still draining"
                    )
            },
            "\(junction.stderr)"
        )

        // The old process closes its twenty tunnels at 10 a second and exits 0 once they are gone.
        #expect(junction.waitForExit(timeout: 30, readOutput: false) == 0, "stderr:\n\(junction.stderr)")
        #expect(junction.stderr.contains("every connection is closed; exiting to_pid=\(newPID)"))
        let status = try RuntimeControlTests.waitFor(fleet) { $0.closes.count >= 20 && $0.open["A"] == 20 }
        #expect(status.open == ["A": 20], "every client came back, to the new process: \(status.open)")
        let closes = status.closes.sorted { $0.time < $1.time }
        #expect(closes.count == 20)
        #expect(closes.allSatisfy { $0.code == 1001 }, "close 1001 to every client: \(closes.map(\.code))")
        #expect(closes.map(\.client) == Array(0..<20), "oldest first: \(closes.map(\.client))")
        let spread = (closes.last?.time ?? 0) - (closes.first?.time ?? 0)
        // 19 intervals of 1/10 s: 1.9 s.
        #expect(spread > 1.4 && spread < 6, "spread \(spread) s")
        #expect(RuntimeControlTests.densest(closes, window: 0.3) <= 4, "no burst: \(closes.map(\.time))")

        // The load went on through the hand-over.
        load.writeLine("stop")
        let report = try JSONSerialization.jsonObject(with: Data(try load.readLine(timeout: 40).utf8)) as? [String: Any]
        let stats = try #require(report)
        #expect(stats["failures"] as? [String] == [], "\(stats)\nstderr:\n\(junction.stderr)")
        #expect(stats["refused"] as? Int == 0, "\(stats)")
        #expect((stats["ok"] as? Int ?? 0) > 50 && (stats["connects"] as? Int ?? 0) > 10, "\(stats)")

        // The new process: the sockets it was handed, the listener it bound itself, and who it is.
        let answer = try Curl.run([
            "-s", "-o", "/dev/null", "-w", "%{http_code}", "http://\(junction.address("extra"))/",
        ])
        #expect(answer == "200")
        let processStatus = try Curl.json("http://\(junction.address("admin"))/status")["process"] as? [String: Any]
        #expect(processStatus?["pid"] as? Int == Int(newPID), "\(String(describing: processStatus))")
        fleet.quit()
        #expect(Self.stop(newPID))
        #expect(junction.waitForStderr { $0.contains("junction stopped") })
    }

    @Test(
        "Over TLS and HTTP/2: an upgrade keeps TLS requests going, sends the RFC 8441 tunnel close 1001 and ends its stream, and the new process serves h2"
    )
    func upgradeOverTLSAndHTTP2() throws {
        let monolith = try HTTPTestBackend(name: "M")
        defer { monolith.stop() }
        let ddp = try DDPBackend(name: "A")
        defer { ddp.stop() }
        let certificates = try TestCertificates()
        let issued = try certificates.issue(commonName: "localhost", dnsNames: ["localhost"])
        let (binDirectory, binary) = try Self.installBinary()
        defer { try? FileManager.default.removeItem(at: binDirectory) }
        let caFile = binDirectory.appendingPathComponent("ca.pem").path
        try certificates.caPEM.write(toFile: caFile, atomically: true, encoding: .utf8)
        let junction = try JunctionProcess(
            yaml: TestConfig.split(
                monolith: ["127.0.0.1:\(monolith.port)"],
                ddp: [ddp.address],
                tls: true,
                http2: true,
                ddpPoolExtra: "    drain_rate: 5"
            ) + Self.admin,
            files: ["cert.pem": issued.certificatePEM, "key.pem": issued.keyPEM],
            waitForListeners: 3,
            executable: binary
        )
        var successor: Int32?
        defer { if let successor { Self.stop(successor) } }
        let port = junction.port("https")

        let tunnel = try LineProcess([
            "python3", TestPaths.fixture("h2_websocket.py"), "localhost", "\(port)", "/websocket", "--tls", caFile,
            "--wait-close",
        ])
        defer { tunnel.terminate() }
        let ready = try tunnel.readLine()
        #expect(ready.contains("\"ready\": true") && ready.contains("\"backend\": \"A\""), "\(ready)")
        let load = try LineProcess([
            "python3", TestPaths.fixture("upgrade_load.py"), "localhost", "\(port)", "/", "--tls", caFile,
        ])
        defer { load.terminate() }
        #expect(try load.readLine(timeout: 40) == "ready")

        try Self.replace(binary, withFileAt: TestPaths.junctionBinary)
        junction.signal(SIGUSR2)
        successor = Self.successor(of: junction)
        let newPID = try #require(successor, "no hand-over; stderr:\n\(junction.stderr)")

        // The old process's tunnel: close 1001 in a DATA frame, then the stream ends; then it exits.
        let closed = try JSONSerialization.jsonObject(with: Data(try tunnel.readLine().utf8)) as? [String: Any] ?? [:]
        let goaways = closed["goaways"] as? [[String: Any]] ?? []
        #expect(
            !goaways.isEmpty && goaways.allSatisfy { $0["error_code"] as? Int == 0 },
            "a graceful GOAWAY: \(closed)"
        )
        #expect(closed["close_code"] as? Int == 1001, "\(closed)")
        #expect(closed["ended"] as? Bool == true && closed["error"] == nil, "the stream ended cleanly: \(closed)")
        #expect(junction.waitForExit(timeout: 30, readOutput: false) == 0, "stderr:\n\(junction.stderr)")

        load.writeLine("stop")
        let stats = try #require(
            try JSONSerialization.jsonObject(with: Data(try load.readLine(timeout: 40).utf8)) as? [String: Any]
        )
        #expect(stats["failures"] as? [String] == [], "\(stats)")
        #expect(stats["refused"] as? Int == 0, "\(stats)")
        #expect((stats["ok"] as? Int ?? 0) > 20, "\(stats)")

        // The new process answers over h2 on the socket it took over.
        let h2 = try Curl.run([
            "-s", "--http2", "--cacert", caFile, "-o", "/dev/null", "-w", "%{http_version} %{http_code}",
            "--resolve", "localhost:\(port):127.0.0.1", "https://localhost:\(port)/",
        ])
        #expect(h2 == "2 200", "\(h2)")
        let again = try ProcessRunner.run(
            ["python3", TestPaths.fixture("h2_websocket.py"), "localhost", "\(port)", "/websocket", "--tls", caFile],
            timeout: 60
        )
        #expect(again.status == 0 && again.stdout.contains("\"ok\": true"), "\(again.stdout) \(again.stderr)")
        #expect(Self.stop(newPID))
        successor = nil
    }

    @Test(
        "drain_rate 0: the old process's tunnels stay open after the hand-over; a SIGTERM still ends it within shutdown_grace"
    )
    func drainRateZeroThenStop() throws {
        let ddp = try DDPBackend(name: "A")
        defer { ddp.stop() }
        let (binDirectory, binary) = try Self.installBinary()
        defer { try? FileManager.default.removeItem(at: binDirectory) }
        let junction = try JunctionProcess(
            yaml: TestConfig.split(
                monolith: ["127.0.0.1:9"],
                ddp: [ddp.address],
                limits: "  shutdown_grace: 2s",
                ddpPoolExtra: "    drain_rate: 0"
            ) + Self.admin,
            waitForListeners: 2,
            executable: binary
        )
        var successor: Int32?
        defer { if let successor { Self.stop(successor) } }
        let fleet = try WebSocketFleet()
        defer { fleet.quit() }
        #expect(
            try fleet.open(3, url: "ws://127.0.0.1:\(junction.port("http"))/websocket", reconnect: true) == ["A": 3]
        )

        junction.signal(SIGUSR2)
        successor = Self.successor(of: junction)
        #expect(successor != nil, "no hand-over; stderr:\n\(junction.stderr)")
        // Nothing closes the tunnels: the old process waits for them (3 s, well past a drain's
        // first close at any rate).
        let closedEarly = JunctionProcess.wait(timeout: 3) { ((try? fleet.status())?.closes.count ?? 0) > 0 }
        #expect(!closedEarly, "drain_rate 0 leaves the tunnels open")
        #expect(junction.process.isRunning, "the old process waits for its tunnels")

        let stopping = Date()
        junction.signal(SIGTERM)
        #expect(junction.waitForExit(timeout: 10, readOutput: false) == 0, "stderr:\n\(junction.stderr)")
        let took = Date().timeIntervalSince(stopping)
        #expect(took < 2 + 3, "within the 2 s grace and a margin: \(took) s")
        let status = try RuntimeControlTests.waitFor(fleet) { $0.closes.count >= 3 && $0.open["A"] == 3 }
        #expect(status.closes.count == 3 && status.open == ["A": 3], "they came back, to the new process: \(status)")
    }

    @Test(
        "An upgrade to a binary that cannot start is logged with its exit status and stderr; the old process serves on with its tunnels open; a second SIGUSR2 meanwhile is refused"
    )
    func brokenUpgradeCarriesOn() throws {
        let ddp = try DDPBackend(name: "A")
        defer { ddp.stop() }
        let (binDirectory, binary) = try Self.installBinary()
        defer { try? FileManager.default.removeItem(at: binDirectory) }
        let junction = try JunctionProcess(
            yaml: TestConfig.split(monolith: ["127.0.0.1:9"], ddp: [ddp.address]) + Self.admin,
            waitForListeners: 2,
            executable: binary
        )
        let port = junction.port("http")
        let fleet = try WebSocketFleet()
        defer { fleet.quit() }
        #expect(try fleet.open(3, url: "ws://127.0.0.1:\(port)/websocket", reconnect: true) == ["A": 3])

        // A build that fails at once, after a word on stderr.
        let broken = try Self.writeBrokenBuild(
            in: binDirectory,
            body: "echo 'fatal: this build is broken' >&2; exit 3"
        )
        try Self.replace(binary, withFileAt: broken)
        junction.signal(SIGUSR2)
        #expect(
            junction.waitForStderr(timeout: 20) {
                $0.contains("upgrade failed, this process (pid \(junction.pid)) goes on serving")
                    && $0.contains("exited with status 3 before it was ready")
                    && $0.contains("its stderr ended with: fatal: this build is broken")
            },
            "\(junction.stderr)"
        )

        // A build that never says it is ready: killed after 30 s; a second SIGUSR2 meanwhile is
        // refused.
        let stuck = try Self.writeBrokenBuild(in: binDirectory, body: "echo 'starting, slowly' >&2; exec sleep 600")
        try Self.replace(binary, withFileAt: stuck)
        junction.signal(SIGUSR2)
        #expect(junction.waitForStderr(timeout: 10) { $0.contains("starting, slowly") })
        junction.signal(SIGUSR2)
        #expect(
            junction.waitForStderr(timeout: 10) {
                $0.contains("SIGUSR2: upgrade refused: an upgrade is already under way (new process pid ")
            }
        )
        #expect(
            junction.waitForStderr(timeout: 45) {
                $0.contains("was not ready within 30 s and was killed; its stderr ended with: starting, slowly")
            },
            "\(junction.stderr)"
        )

        // Nothing happened to the clients or the listeners.
        let status = try fleet.status()
        #expect(status.closes.isEmpty && status.open == ["A": 3], "\(status.closes) \(status.open)")
        #expect(try fleet.open(1, url: "ws://127.0.0.1:\(port)/websocket", reconnect: false) == ["A": 1])
        let health = try Curl.run(["-s", "http://\(junction.address("admin"))/healthz"])
        #expect(health.hasPrefix("ok"))
        #expect(!junction.stderr.contains("handed over"))
        fleet.quit()
        #expect(junction.stop() == 0)
    }

    @Test(
        "sd_notify on a real datagram socket: READY=1, RELOADING=1 then READY=1 around SIGHUP, MAINPID on an upgrade (twice in a row), STOPPING=1 on SIGTERM"
    )
    func systemdNotify() throws {
        let directory = try TestPaths.makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let socketPath = directory.appendingPathComponent("notify.sock").path
        let systemd = try LineProcess(["python3", TestPaths.fixture("notify_socket.py"), socketPath])
        defer { systemd.terminate() }
        #expect(try systemd.readLine() == "ready")
        /// The next datagram: its sender and text.
        func next() throws -> (pid: Int, message: String) {
            let line = try systemd.readLine(timeout: 40)
            let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] ?? [:]
            return (object["pid"] as? Int ?? -1, object["message"] as? String ?? "")
        }

        let (binDirectory, binary) = try Self.installBinary()
        defer { try? FileManager.default.removeItem(at: binDirectory) }
        let junction = try JunctionProcess(
            yaml: TestConfig.split(monolith: ["127.0.0.1:9"], ddp: ["127.0.0.1:9"]) + Self.admin,
            waitForListeners: 2,
            executable: binary,
            environment: ["NOTIFY_SOCKET": socketPath]
        )
        var successor: Int32?
        defer { if let successor { Self.stop(successor) } }
        let old = Int(junction.pid)
        let ready = try next()
        #expect(ready.pid == old && ready.message == "READY=1")

        junction.signal(SIGHUP)
        let reloading = try next()
        #expect(reloading.pid == old)
        #expect(reloading.message.hasPrefix("RELOADING=1\nMONOTONIC_USEC="), "\(reloading.message)")
        #expect(try next() == (old, "READY=1"))
        #expect(junction.waitForStderr { $0.contains("config reloaded") })

        junction.signal(SIGUSR2)
        successor = Self.successor(of: junction)
        let newPID = try #require(successor)
        // The new process says it is ready; the old one names it the main process.
        var messages: [(pid: Int, message: String)] = [try next(), try next()]
        messages.sort { $0.pid > $1.pid || ($0.pid == $1.pid && $0.message < $1.message) }
        #expect(messages.contains { $0 == (Int(newPID), "READY=1") }, "\(messages)")
        #expect(messages.contains { $0 == (old, "MAINPID=\(newPID)\nREADY=1") }, "\(messages)")
        #expect(junction.waitForExit(timeout: 30, readOutput: false) == 0)

        // Once the old one is gone, the new one upgrades in its turn: MAINPID names the third.
        kill(newPID, SIGUSR2)
        var third: Int32?
        #expect(
            junction.waitForStderr(timeout: 40) { text in
                let line = text.split(separator: "\n").last {
                    $0.contains("upgrade: handed over to the new process from_pid=\(newPID)")
                }
                third = line.flatMap { JunctionProcess.fields(String($0))["to_pid"] }.flatMap { Int32($0) }
                return third != nil
            },
            "\(junction.stderr)"
        )
        let thirdPID = try #require(third)
        successor = thirdPID
        messages = [try next(), try next()]
        #expect(messages.contains { $0 == (Int(thirdPID), "READY=1") }, "\(messages)")
        #expect(messages.contains { $0 == (Int(newPID), "MAINPID=\(thirdPID)\nREADY=1") }, "\(messages)")
        #expect(JunctionProcess.wait(timeout: 30) { !Self.isRunning(newPID) })

        // Each process that handed over left without a word to systemd; the last says STOPPING=1.
        kill(thirdPID, SIGTERM)
        let stopping = try next()
        #expect(stopping == (Int(thirdPID), "STOPPING=1"), "\(stopping)")
        #expect(JunctionProcess.wait(timeout: 20) { !Self.isRunning(thirdPID) })
        successor = nil
    }
}
