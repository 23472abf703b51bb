import Foundation
import NIOCore
import NIOPosix
import Testing

/// Runs third-party programs (curl, python3, openssl) the way a user would, with a time limit.
struct ProcessRunner {
    /// What a finished program left behind.
    struct Output {
        var status: Int32
        var stdout: String
        var stderr: String
    }

    struct TimedOut: Error, CustomStringConvertible {
        var command: String
        var description: String { "timed out: \(self.command)" }
    }

    /// Runs `arguments[0]` (looked up on PATH) and waits at most `timeout` seconds.
    static func run(
        _ arguments: [String],
        stdin: Data? = nil,
        timeout: TimeInterval = 60,
        environment: [String: String] = [:]
    ) throws -> Output {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = arguments
        if !environment.isEmpty {
            process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        }
        let out = Pipe()
        let err = Pipe()
        let input = Pipe()
        process.standardOutput = out
        process.standardError = err
        process.standardInput = input
        // Drain both pipes while the process runs so a chatty program cannot block on a full pipe.
        let collected = OutputCollector()
        let group = DispatchGroup()
        for (pipe, isOut) in [(out, true), (err, false)] {
            group.enter()
            DispatchQueue.global().async {
                let data = pipe.fileHandleForReading.readDataToEndOfFile()
                collected.set(data, isStdout: isOut)
                group.leave()
            }
        }
        try process.run()
        if let stdin { input.fileHandleForWriting.write(stdin) }
        try? input.fileHandleForWriting.close()
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning && Date() < deadline {
            Thread.sleep(forTimeInterval: 0.01)
        }
        if process.isRunning {
            process.terminate()
            process.waitUntilExit()
            throw TimedOut(command: arguments.joined(separator: " "))
        }
        process.waitUntilExit()
        group.wait()
        return Output(status: process.terminationStatus, stdout: collected.stdout, stderr: collected.stderr)
    }
}

/// Gathers a child's output from two reader threads.
final class OutputCollector: @unchecked Sendable {
    private let lock = NSLock()
    private var out = Data()
    private var err = Data()

    func set(_ data: Data, isStdout: Bool) {
        self.lock.lock()
        defer { self.lock.unlock() }
        if isStdout { self.out = data } else { self.err = data }
    }

    var stdout: String {
        self.lock.lock()
        defer { self.lock.unlock() }
        return String(decoding: self.out, as: UTF8.self)
    }

    var stderr: String {
        self.lock.lock()
        defer { self.lock.unlock() }
        return String(decoding: self.err, as: UTF8.self)
    }
}

/// Paths the tests need: the built binary, fixtures and a scratch directory.
enum TestPaths {
    /// `.build/<config>/junction`, next to the test bundle.
    static var junctionBinary: String {
        if let override = ProcessInfo.processInfo.environment["JUNCTION_BIN"] { return override }
        let bundle = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        var directory = bundle
        // The test binary lives in .build/<triple>/<config>/ (or inside an .xctest bundle there).
        for _ in 0..<4 {
            let candidate = directory.appendingPathComponent("junction").path
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
            directory = directory.deletingLastPathComponent()
        }
        return repositoryRoot.appendingPathComponent(".build/debug/junction").path
    }

    /// Sanitizer options for the `junction` processes the tests start, set by Tests/sanitizers.sh.
    static var sanitizerOptionsForJunction: String? {
        ProcessInfo.processInfo.environment["JUNCTION_SANITIZER_OPTIONS"]
    }

    /// Whether the tests run under a sanitizer: its shadow memory and quarantine make RSS
    /// meaningless, so memory bounds are checked in the normal run only.
    static var underSanitizer: Bool { sanitizerOptionsForJunction != nil }

    /// Where a test's memory bound comes (after everything else it checks): under a sanitizer the
    /// test stops here, reported as skipped with the reason.
    static func skipMemoryBoundUnderSanitizer(sourceLocation: SourceLocation = #_sourceLocation) throws {
        guard underSanitizer else { return }
        try Test.cancel(
            "memory bound not checked under a sanitizer: its shadow memory and quarantine grow RSS by themselves",
            sourceLocation: sourceLocation
        )
    }

    /// The repository root (for conf/ and certs/).
    static var repositoryRoot: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().deletingLastPathComponent()
    }

    /// A file under Tests/IntegrationTests/Fixtures.
    static func fixture(_ name: String) -> String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Fixtures").appendingPathComponent(name).path
    }

    /// A loopback port free right now (bound to port 0 and released), for programs that take a port
    /// number rather than printing the one they bound.
    static func freePort() throws -> Int {
        let channel = try ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .bind(host: "127.0.0.1", port: 0)
            .wait()
        defer { try? channel.close().wait() }
        return channel.localAddress?.port ?? 0
    }

    /// A fresh temporary directory.
    static func makeTemporaryDirectory() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("junction-test-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }
}

extension Trait where Self == TimeLimitTrait {
    /// A suite's or test's time limit: `minutes`, four times that under a sanitizer (which runs the
    /// proxy and the test runner several times slower).
    static func junctionTimeLimit(minutes: Int) -> Self {
        .timeLimit(.minutes(TestPaths.underSanitizer ? minutes * 4 : minutes))
    }
}
