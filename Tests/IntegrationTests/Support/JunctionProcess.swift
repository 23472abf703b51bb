import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// The real `junction` binary, started with a config file written by the test.
final class JunctionProcess: @unchecked Sendable {
    struct StartFailed: Error, CustomStringConvertible {
        var description: String
    }

    let process = Process()
    let directory: URL
    let configPath: String
    private let lock = NSLock()
    private var stdoutText = ""
    private var stderrText = ""
    private let readers = DispatchGroup()

    /// Bound addresses by listener name, from the `listening name=... address=...` lines.
    private(set) var addresses: [String: String] = [:]

    /// Whether stdout is read (false: a pipe nobody reads, as a stuck log consumer leaves it;
    /// the listeners' addresses then come from the `listener started` lines on stderr).
    private let readsStdout: Bool
    private var stdoutPipe: Pipe?

    /// Writes `yaml` to a file in a fresh directory (extra files alongside) and starts `junction run`.
    convenience init(
        yaml: String,
        files: [String: String] = [:],
        waitForListeners: Int = 1,
        readsStdout: Bool = true,
        executable: String = TestPaths.junctionBinary,
        environment: [String: String] = [:]
    ) throws {
        let directory = try TestPaths.makeTemporaryDirectory()
        for (name, contents) in files {
            try contents.write(to: directory.appendingPathComponent(name), atomically: true, encoding: .utf8)
        }
        let configPath = directory.appendingPathComponent("junction.yaml").path
        try yaml.write(toFile: configPath, atomically: true, encoding: .utf8)
        try self.init(
            arguments: ["run", "--config", configPath],
            directory: directory,
            configPath: configPath,
            waitForListeners: waitForListeners,
            readsStdout: readsStdout,
            executable: executable,
            environment: environment
        )
    }

    /// Starts `junction` with `arguments` (e.g. `demo`) and waits for `waitForListeners` listening lines.
    convenience init(arguments: [String], waitForListeners: Int) throws {
        let directory = try TestPaths.makeTemporaryDirectory()
        try self.init(arguments: arguments, directory: directory, configPath: "", waitForListeners: waitForListeners)
    }

    private init(
        arguments: [String],
        directory: URL,
        configPath: String,
        waitForListeners: Int,
        readsStdout: Bool = true,
        executable: String = TestPaths.junctionBinary,
        environment extra: [String: String] = [:]
    ) throws {
        self.directory = directory
        self.configPath = configPath
        self.readsStdout = readsStdout
        self.process.executableURL = URL(fileURLWithPath: executable)
        self.process.arguments = arguments
        var environment = ProcessInfo.processInfo.environment.merging(extra) { $1 }
        if let options = TestPaths.sanitizerOptionsForJunction {
            // Tests/sanitizers.sh: the proxy's own leak and error reports go to files of their own.
            environment["ASAN_OPTIONS"] = options
            environment["TSAN_OPTIONS"] = options
        }
        if !extra.isEmpty || TestPaths.sanitizerOptionsForJunction != nil {
            self.process.environment = environment
        }
        let out = Pipe()
        let err = Pipe()
        self.process.standardOutput = out
        self.process.standardError = err
        self.process.standardInput = FileHandle.nullDevice
        try self.process.run()
        if readsStdout {
            self.follow(out.fileHandleForReading, isStdout: true)
        } else {
            self.stdoutPipe = out
        }
        self.follow(err.fileHandleForReading, isStdout: false)
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline {
            if self.listeningCount >= waitForListeners { return }
            if !self.process.isRunning { break }
            Thread.sleep(forTimeInterval: 0.02)
        }
        let reason =
            self.process.isRunning ? "no listening line within 30 s" : "exited with \(self.process.terminationStatus)"
        self.process.isRunning ? self.process.terminate() : ()
        throw StartFailed(description: "junction did not start (\(reason)); stderr:\n\(self.stderr)")
    }

    deinit {
        if self.process.isRunning {
            kill(self.process.processIdentifier, SIGKILL)
            self.process.waitUntilExit()
        }
        try? FileManager.default.removeItem(at: self.directory)
    }

    var pid: pid_t { self.process.processIdentifier }

    /// Everything printed on stdout so far (listening lines and the access log).
    var stdout: String {
        self.lock.lock()
        defer { self.lock.unlock() }
        return self.stdoutText
    }

    /// Everything printed on stderr so far (the application log).
    var stderr: String {
        self.lock.lock()
        defer { self.lock.unlock() }
        return self.stderrText
    }

    /// `host:port` of the named listener.
    func address(_ listener: String) -> String {
        self.lock.lock()
        defer { self.lock.unlock() }
        return self.addresses[listener] ?? "listener-\(listener)-not-bound"
    }

    /// The port of the named listener.
    func port(_ listener: String) -> Int {
        Int(self.address(listener).split(separator: ":").last ?? "") ?? 0
    }

    private var listeningCount: Int {
        self.lock.lock()
        defer { self.lock.unlock() }
        return self.addresses.count
    }

    private func follow(_ handle: FileHandle, isStdout: Bool) {
        self.readers.enter()
        // Weak: the reader must not keep the process object (whose deinit kills the process) alive.
        DispatchQueue.global().async { [weak self] in
            defer { self?.readers.leave() }
            var pending = ""
            while true {
                let data = handle.availableData
                guard !data.isEmpty, let self else { break }
                let text = String(decoding: data, as: UTF8.self)
                self.lock.lock()
                if isStdout {
                    self.stdoutText += text
                    pending += text
                    while let newline = pending.firstIndex(of: "\n") {
                        let line = String(pending[..<newline])
                        pending = String(pending[pending.index(after: newline)...])
                        if line.hasPrefix("listening ") {
                            let fields = Self.fields(line)
                            if let name = fields["name"], let address = fields["address"] {
                                self.addresses[name] = address
                            }
                        }
                    }
                } else {
                    self.stderrText += text
                    if !self.readsStdout {
                        for line in self.stderrText.split(separator: "\n") where line.contains(" listener started ") {
                            let fields = Self.fields(String(line))
                            if let name = fields["listener"], let address = fields["address"] {
                                self.addresses[name] = address
                            }
                        }
                    }
                }
                self.lock.unlock()
            }
        }
    }

    /// `key=value` pairs of a log line.
    static func fields(_ line: String) -> [String: String] {
        var result: [String: String] = [:]
        for part in line.split(separator: " ") {
            guard let equals = part.firstIndex(of: "=") else { continue }
            result[String(part[..<equals])] = String(part[part.index(after: equals)...])
        }
        return result
    }

    /// Starts reading a stdout that was left unread (the stuck consumer recovers).
    func startReadingStdout() {
        guard let pipe = self.stdoutPipe else { return }
        self.stdoutPipe = nil
        self.follow(pipe.fileHandleForReading, isStdout: true)
    }

    /// Sends `signal` (SIGTERM by default).
    func signal(_ signal: Int32 = SIGTERM) {
        kill(self.process.processIdentifier, signal)
    }

    /// Waits for the process to exit; returns its exit status, or nil on timeout. `readOutput`:
    /// also wait until its stdout and stderr end (false after an upgrade: the new process holds
    /// them).
    func waitForExit(timeout: TimeInterval, readOutput: Bool = true) -> Int32? {
        let deadline = Date().addingTimeInterval(timeout)
        while self.process.isRunning && Date() < deadline {
            Thread.sleep(forTimeInterval: 0.02)
        }
        if self.process.isRunning { return nil }
        if readOutput { self.readers.wait() }
        return self.process.terminationStatus
    }

    /// SIGTERM and wait; returns the exit status.
    @discardableResult
    func stop(timeout: TimeInterval = 20) -> Int32? {
        self.signal(SIGTERM)
        return self.waitForExit(timeout: timeout)
    }

    /// Resident memory now and at its peak, in KiB, from /proc/<pid>/status.
    func memory() -> (rss: Int, peak: Int) {
        let status = (try? String(contentsOfFile: "/proc/\(self.pid)/status", encoding: .utf8)) ?? ""
        func value(_ key: String) -> Int {
            guard let line = status.split(separator: "\n").first(where: { $0.hasPrefix(key) }) else { return 0 }
            return Int(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "") ?? 0
        }
        return (value("VmRSS:"), value("VmHWM:"))
    }

    /// Waits until `predicate(stdout)` holds (access-log lines are written at the end of a loop tick).
    func waitForStdout(timeout: TimeInterval = 5, _ predicate: (String) -> Bool) -> Bool {
        Self.wait(timeout: timeout) { predicate(self.stdout) }
    }

    /// Waits until `predicate(stderr)` holds (the application log arrives through a pipe).
    func waitForStderr(timeout: TimeInterval = 5, _ predicate: (String) -> Bool) -> Bool {
        Self.wait(timeout: timeout) { predicate(self.stderr) }
    }

    /// Polls `condition` every 20 ms until it holds or `timeout` passes.
    static func wait(timeout: TimeInterval, _ condition: () -> Bool) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if condition() { return true }
            Thread.sleep(forTimeInterval: 0.02)
        }
        return condition()
    }
}
