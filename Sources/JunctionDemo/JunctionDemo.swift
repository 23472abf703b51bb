import Foundation
import JunctionCore
import Logging

/// `junction demo`: the demo backends on loopback, Junction in front of them with the Rocket.Chat
/// split, and the URLs to open, until SIGTERM or Ctrl-C.
public enum JunctionDemo {
    /// A demo that could not start (a port in use, no temporary directory...).
    public struct Failed: Error, CustomStringConvertible {
        public let description: String
    }

    public static func run(port: Int, adminPort: Int) async throws {
        let backends = try await DemoBackends.start(adminPort: adminPort)
        let directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("junction-demo-\(getpid())", isDirectory: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let configPath = directory.appendingPathComponent("junction.yaml").path
        do {
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
            try backends.config(port: port).write(toFile: configPath, atomically: true, encoding: .utf8)
        } catch {
            await backends.stop()
            throw Failed(description: "cannot write the demo config in \(directory.path): \(error)")
        }
        let prepared: Junction.Prepared
        switch Junction.prepare(configPath: configPath) {
        case .success(let value):
            prepared = value
        case .failure(let error):
            await backends.stop()
            throw Failed(description: error.diagnostics.map(\.description).joined(separator: "\n"))
        }
        LoggingSetup.bootstrap(level: prepared.config.logging.level, format: prepared.config.logging.format)
        let banner = """

            Junction demo: a monolith and two ddp-streamers on loopback, Junction in front of them.
              page      http://127.0.0.1:\(port)/   (from the monolith; its WebSockets go to ddp-streamer)
              status    http://127.0.0.1:\(adminPort)/status
              metrics   http://127.0.0.1:\(adminPort)/metrics
              config    \(configPath)
              backends  monolith 127.0.0.1:\(backends.monolith.port), \
            \(backends.ddpStreamers.map { "\($0.name) 127.0.0.1:\($0.port)" }.joined(separator: ", "))
            Stop with Ctrl-C.

            """
        do {
            try await Junction(prepared: prepared, logger: Logger(label: "junction")) {
                LineWriter.standardOutput.writeLine(banner)
            }.run()
        } catch {
            await backends.stop()
            throw error
        }
        await backends.stop()
    }
}
