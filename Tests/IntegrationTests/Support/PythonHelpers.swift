import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// A long-running helper process that talks in lines on stdin/stdout.
final class LineProcess: @unchecked Sendable {
    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    let process = Process()
    private let input = Pipe()
    private let output = Pipe()
    private let errors = Pipe()
    private var buffer = Data()

    init(_ arguments: [String]) throws {
        self.process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        self.process.arguments = arguments
        self.process.standardInput = self.input
        self.process.standardOutput = self.output
        self.process.standardError = self.errors
        try self.process.run()
    }

    deinit {
        self.terminate()
    }

    func terminate() {
        if self.process.isRunning {
            kill(self.process.processIdentifier, SIGKILL)
            self.process.waitUntilExit()
        }
    }

    /// Writes one line to the helper's stdin; a helper that already exited is not an error here.
    func writeLine(_ line: String) {
        try? self.input.fileHandleForWriting.write(contentsOf: Data((line + "\n").utf8))
    }

    /// The next line of stdout; fails after `timeout` seconds or at EOF.
    func readLine(timeout: TimeInterval = 30) throws -> String {
        let deadline = Date().addingTimeInterval(timeout)
        let fd = self.output.fileHandleForReading.fileDescriptor
        while true {
            if let newline = self.buffer.firstIndex(of: UInt8(ascii: "\n")) {
                let line = String(decoding: self.buffer[self.buffer.startIndex..<newline], as: UTF8.self)
                self.buffer = Data(self.buffer[self.buffer.index(after: newline)...])
                return line
            }
            let remaining = deadline.timeIntervalSinceNow
            guard remaining > 0 else {
                throw Failure(
                    description:
                        "no line from \(self.process.arguments ?? []) within \(timeout) s; stderr: \(self.stderrSoFar())"
                )
            }
            var poll = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            if Glibc.poll(&poll, 1, Int32(min(remaining, 1) * 1000)) > 0 {
                var chunk = [UInt8](repeating: 0, count: 4096)
                let count = read(fd, &chunk, chunk.count)
                if count <= 0 {
                    throw Failure(description: "\(self.process.arguments ?? []) exited; stderr: \(self.stderrSoFar())")
                }
                self.buffer.append(contentsOf: chunk[0..<count])
            }
        }
    }

    private func stderrSoFar() -> String {
        let fd = self.errors.fileHandleForReading.fileDescriptor
        var poll = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        guard Glibc.poll(&poll, 1, 0) > 0 else { return "" }
        var chunk = [UInt8](repeating: 0, count: 16384)
        let count = read(fd, &chunk, chunk.count)
        return count > 0 ? String(decoding: chunk[0..<count], as: UTF8.self) : ""
    }
}

/// A ddp-streamer stand-in (Fixtures/ddp_backend.py on the `websockets` library).
final class DDPBackend: @unchecked Sendable {
    let name: String
    let port: Int
    private let process: LineProcess

    init(name: String) throws {
        self.name = name
        self.process = try LineProcess(["python3", TestPaths.fixture("ddp_backend.py"), "0", name])
        let ready = try self.process.readLine()
        guard ready.hasPrefix("ready "), let port = Int(ready.dropFirst(6)) else {
            throw LineProcess.Failure(description: "ddp backend said \(ready)")
        }
        self.port = port
    }

    var address: String { "127.0.0.1:\(self.port)" }

    func stop() {
        self.process.terminate()
    }
}

/// Drives Fixtures/ws_driver.py: real WebSocket connections through Junction.
final class WebSocketDriver: @unchecked Sendable {
    private let process: LineProcess

    init() throws {
        self.process = try LineProcess(["python3", TestPaths.fixture("ws_driver.py")])
    }

    /// Sends one command and returns the decoded answer.
    func command(_ command: [String: Any]) throws -> [String: Any] {
        let data = try JSONSerialization.data(withJSONObject: command)
        self.process.writeLine(String(decoding: data, as: UTF8.self))
        let line = try self.process.readLine()
        guard let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else {
            throw LineProcess.Failure(description: "ws driver said \(line)")
        }
        return object
    }

    /// Opens a session (DDP handshake included); returns the answer (`ok`, `backend`, `session`...).
    func open(_ id: String, url: String, cafile: String? = nil) throws -> [String: Any] {
        var command: [String: Any] = ["cmd": "open", "id": id, "url": url]
        if let cafile { command["cafile"] = cafile }
        return try self.command(command)
    }

    func close(_ id: String) throws {
        _ = try self.command(["cmd": "close", "id": id])
    }

    /// Resets the session's TCP connection, from the client's side or (asking it) the backend's.
    func reset(_ id: String, byBackend: Bool) throws -> [String: Any] {
        try self.command(["cmd": "reset", "id": id, "by": byBackend ? "backend" : "client"])
    }

    func echo(_ id: String, size: Int) throws -> [String: Any] {
        try self.command(["cmd": "echo", "id": id, "size": size])
    }

    func quit() {
        self.process.writeLine("{\"cmd\": \"quit\"}")
    }
}

/// Drives Fixtures/ws_fleet.py: many WebSocket clients that record how they were closed and may
/// reconnect at once, like a Rocket.Chat deployment's browsers.
final class WebSocketFleet: @unchecked Sendable {
    private let process: LineProcess

    /// One close a client saw.
    struct Close {
        var backend: String
        /// The close frame's code; nil when the connection was reset without one.
        var code: Int?
        /// Seconds on the fleet's monotonic clock.
        var time: Double
        /// The client's number, in the order the clients were opened (0: the first).
        var client: Int = -1
    }

    /// Where the clients are now.
    struct Status {
        var open: [String: Int]
        var connecting: Int
        var closes: [Close]
    }

    init() throws {
        self.process = try LineProcess(["python3", TestPaths.fixture("ws_fleet.py")])
    }

    private func command(_ command: [String: Any]) throws -> [String: Any] {
        let data = try JSONSerialization.data(withJSONObject: command)
        self.process.writeLine(String(decoding: data, as: UTF8.self))
        let line = try self.process.readLine(timeout: 90)
        guard let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
            object["ok"] as? Bool == true
        else {
            throw LineProcess.Failure(description: "ws fleet said \(line)")
        }
        return object
    }

    /// Opens `count` clients on `url`; returns how many landed on each backend.
    @discardableResult
    func open(_ count: Int, url: String, reconnect: Bool) throws -> [String: Int] {
        let answer = try self.command(["cmd": "open", "url": url, "count": count, "reconnect": reconnect])
        return answer["backends"] as? [String: Int] ?? [:]
    }

    func status() throws -> Status {
        let answer = try self.command(["cmd": "status"])
        let closes = (answer["closes"] as? [[String: Any]] ?? []).map {
            Close(
                backend: $0["backend"] as? String ?? "?",
                code: $0["code"] as? Int,
                time: $0["time"] as? Double ?? 0,
                client: $0["client"] as? Int ?? -1
            )
        }
        return Status(
            open: answer["open"] as? [String: Int] ?? [:],
            connecting: answer["connecting"] as? Int ?? 0,
            closes: closes
        )
    }

    func quit() {
        self.process.writeLine("{\"cmd\": \"quit\"}")
        self.process.terminate()
    }
}
