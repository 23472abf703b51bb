import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// The access log as an operator reads and rotates it: the combined-like text format with
/// Junction's fields, one line per request and per closed tunnel, in a file reopened on SIGUSR1.
@Suite("Access log", .junctionTimeLimit(minutes: 3))
struct AccessLogTests {
    /// `client - - [date] "request" status bytes "referer" "agent" in= rt= ut= listener= route= pool= backend= proto= id=`
    static let combined = try! NSRegularExpression(
        pattern:
            #"^(\S+) - - \[(\d{2}/[A-Z][a-z]{2}/\d{4}:\d{2}:\d{2}:\d{2} \+0000)\] "(\S+) (\S+) (HTTP/[\d.]+)" (\d{3}) (\d+) "([^"]*)" "([^"]*)" in=(\d+) rt=(\d+\.\d{3}) ut=(\d+\.\d{3}|-) listener=(\S+) route=(\S+) pool=(\S+) backend=(\S+) proto=(\S+) id=(\S+)$"#
    )

    /// The fields of one text line by name, nil if it does not have the format.
    static func parse(_ line: Substring) -> [String: String]? {
        let text = String(line)
        guard
            let match = Self.combined.firstMatch(in: text, range: NSRange(text.startIndex..., in: text))
        else { return nil }
        let names = [
            "client", "time", "method", "target", "version", "status", "bytes_out", "referer", "agent", "in", "rt",
            "ut", "listener", "route", "pool", "backend", "proto", "id",
        ]
        var fields: [String: String] = [:]
        for (index, name) in names.enumerated() {
            fields[name] = Range(match.range(at: index + 1), in: text).map { String(text[$0]) }
        }
        return fields
    }

    static func lines(_ path: String) -> [Substring] {
        ((try? String(contentsOfFile: path, encoding: .utf8)) ?? "").split(separator: "\n")
    }

    @Test("Text lines in a file: combined fields, h1, h2 and WebSocket protocols, upstream time; SIGUSR1 reopens it")
    func textFileAndReopen() throws {
        let monolith = try HTTPTestBackend(name: "monolith")
        defer { monolith.stop() }
        let ddp = try DDPBackend(name: "ddp-a")
        defer { ddp.stop() }
        let directory = try TestPaths.makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let logPath = directory.appendingPathComponent("access.log").path
        let junction = try JunctionProcess(
            yaml: TestConfig.split(
                monolith: [monolith.address],
                ddp: [ddp.address],
                extraListeners: """
                      - name: h2c
                        address: 127.0.0.1:0
                        http2: true

                    """,
                accessLog: logPath
            ),
            waitForListeners: 2
        )
        let http = "http://\(junction.address("http"))"
        let h2c = "http://\(junction.address("h2c"))"

        try Curl.run([
            "-o", "/dev/null", "-A", "agent/1.0", "-e", "https://chat.example/x", "-H", "X-Request-ID: h1-a",
            "-d", "hello", http + "/echo",
        ])
        try Curl.run(["-o", "/dev/null", "--http2-prior-knowledge", "-H", "X-Request-ID: h2-a", h2c + "/echo"])

        // A WebSocket held for a second: logged when it closes, with its lifetime and bytes.
        let driver = try WebSocketDriver()
        defer { driver.quit() }
        #expect(try driver.open("w", url: "ws://\(junction.address("http"))/websocket")["ok"] as? Bool == true)
        #expect(try driver.echo("w", size: 5000)["ok"] as? Bool == true)
        Thread.sleep(forTimeInterval: 1)
        try driver.close("w")

        let wait = { (predicate: ([Substring]) -> Bool) -> Bool in
            let deadline = Date().addingTimeInterval(5)
            while Date() < deadline {
                if predicate(Self.lines(logPath)) { return true }
                Thread.sleep(forTimeInterval: 0.05)
            }
            return false
        }
        #expect(wait { $0.contains { $0.contains(" proto=ws ") } }, "the tunnel's line arrives when it closes")
        let records = Self.lines(logPath).compactMap(Self.parse)
        #expect(records.count == Self.lines(logPath).count, "every line has the format: \(Self.lines(logPath))")

        let h1 = try #require(records.first { $0["id"] == "h1-a" })
        #expect(h1["client"] == "127.0.0.1")
        #expect(h1["method"] == "POST")
        #expect(h1["target"] == "/echo")
        #expect(h1["version"] == "HTTP/1.1")
        #expect(h1["status"] == "200")
        #expect(Int(h1["bytes_out"] ?? "") ?? 0 > 0)
        #expect(h1["referer"] == "https://chat.example/x")
        #expect(h1["agent"] == "agent/1.0")
        #expect(h1["in"] == "5")
        #expect(h1["ut"] != "-", "a backend answered: the upstream time is there")
        #expect(Double(h1["ut"] ?? "") ?? 99 <= Double(h1["rt"] ?? "") ?? 0)
        #expect(h1["listener"] == "http")
        #expect(h1["route"] == "monolith")
        #expect(h1["pool"] == "monolith")
        #expect(h1["backend"] == monolith.address)
        #expect(h1["proto"] == "http/1.1")

        let h2 = try #require(records.first { $0["id"] == "h2-a" })
        #expect(h2["version"] == "HTTP/2.0")
        #expect(h2["proto"] == "h2")
        #expect(h2["listener"] == "h2c")
        #expect(h2["agent"]?.hasPrefix("curl/") == true)
        #expect(h2["referer"] == "-")

        let tunnel = try #require(records.first { $0["proto"] == "ws" })
        #expect(tunnel["status"] == "101")
        #expect(tunnel["target"] == "/websocket")
        #expect(tunnel["pool"] == "ddp-streamer")
        #expect(tunnel["backend"] == ddp.address)
        #expect(Double(tunnel["rt"] ?? "") ?? 0 >= 1.0, "the lifetime: \(tunnel)")
        // 5000 random base64 characters each way (permessage-deflate gets them to no less than 3/4).
        #expect(Int(tunnel["in"] ?? "") ?? 0 > 3700, "bytes from the client over the tunnel: \(tunnel)")
        #expect(Int(tunnel["bytes_out"] ?? "") ?? 0 > 3700, "bytes to the client over the tunnel: \(tunnel)")

        // logrotate: rename the file; lines keep going to it until SIGUSR1 reopens the path.
        let rotated = directory.appendingPathComponent("access.log.1").path
        try FileManager.default.moveItem(atPath: logPath, toPath: rotated)
        try Curl.run(["-o", "/dev/null", "-H", "X-Request-ID: before-reopen", http + "/echo"])
        #expect(wait { _ in Self.lines(rotated).contains { $0.hasSuffix("id=before-reopen") } })
        junction.signal(SIGUSR1)
        #expect(junction.waitForStderr { $0.contains("access log reopened") })
        try Curl.run(["-o", "/dev/null", "-H", "X-Request-ID: after-reopen", http + "/echo"])
        #expect(wait { $0.contains { $0.hasSuffix("id=after-reopen") } }, "the new file gets the new lines")
        #expect(!Self.lines(rotated).contains { $0.hasSuffix("id=after-reopen") })
        #expect(junction.stop() == 0)
    }

    @Test(
        "stdout into a pipe nobody reads: 10,000 requests are served, lines are dropped and counted, a warning follows"
    )
    func stuckStdout() throws {
        let backend = try HTTPTestBackend(name: "web")
        defer { backend.stop() }
        let junction = try JunctionProcess(
            yaml: TestConfig.split(monolith: [backend.address], ddp: ["127.0.0.1:9"])
                + "admin:\n  address: 127.0.0.1:0\n",
            waitForListeners: 2,
            readsStdout: false
        )
        let load = try ProcessRunner.run(
            ["h2load", "--h1", "-n", "10000", "-c", "10", "-t", "1", "http://\(junction.address("http"))/echo"],
            timeout: 120
        )
        #expect(load.stdout.contains("10000 succeeded, 0 failed, 0 errored, 0 timeout"), "\(load.stdout.suffix(600))")
        let metrics = try Curl.run(["http://\(junction.address("admin"))/metrics"])
        let dropped = metrics.split(separator: "\n").first { $0.hasPrefix("junction_log_lines_dropped_total ") }
        let count = dropped.flatMap { Double($0.split(separator: " ").last ?? "") } ?? 0
        #expect(count > 1000, "the access-log lines that did not fit were dropped and counted: \(dropped ?? "none")")
        // The reader recovers: what was queued comes out, then the warning.
        junction.startReadingStdout()
        #expect(
            junction.waitForStderr(timeout: 10) {
                $0.contains("log lines were dropped: the reader could not keep up") && $0.contains("sink=stdout")
            },
            "\(junction.stderr.suffix(500))"
        )
        #expect(junction.waitForStdout { $0.components(separatedBy: "GET /echo HTTP/1.1").count > 1000 })
        #expect(junction.stop() == 0)
    }
}
