import ArgumentParser
import JunctionCore
import Logging

/// `junction run | check | version`: the command line of the contract.
@main
struct JunctionCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "junction",
        abstract: "A reverse proxy that splits Rocket.Chat traffic between ddp-streamer and the monolith.",
        subcommands: [Run.self, Check.self, Version.self]
    )
}

/// Options shared by `run` and `check`.
struct ConfigOption: ParsableArguments {
    @Option(name: .long, help: "The config file.")
    var config: String = "conf/junction.yaml"
}

/// `junction run`: serve until SIGTERM/SIGINT.
struct Run: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Serve with the given config file.")

    @OptionGroup var options: ConfigOption

    func run() async throws {
        let prepared: Junction.Prepared
        switch Junction.prepare(configPath: self.options.config) {
        case .success(let value):
            prepared = value
        case .failure(let error):
            for diagnostic in error.diagnostics {
                StandardOutput.writeErrorLine("\(diagnostic.severity == .error ? "error" : "warning"): \(diagnostic)")
            }
            throw ExitCode(1)
        }
        let logging = prepared.config.logging
        LoggingSetup.bootstrap(level: logging.level, format: logging.format)
        let logger = Logger(label: "junction")
        do {
            try await Junction(prepared: prepared, logger: logger).run()
        } catch {
            logger.error("\(error)")
            throw ExitCode(1)
        }
    }
}

/// `junction check`: validate only; every problem is printed, exit 1 if any is an error.
struct Check: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Validate the config file and exit.")

    @OptionGroup var options: ConfigOption

    func run() async throws {
        switch Junction.prepare(configPath: self.options.config) {
        case .success(let prepared):
            for warning in prepared.warnings {
                StandardOutput.writeErrorLine("warning: \(warning)")
            }
            StandardOutput.writeLine("\(self.options.config): OK")
        case .failure(let error):
            for diagnostic in error.diagnostics {
                StandardOutput.writeErrorLine("\(diagnostic.severity == .error ? "error" : "warning"): \(diagnostic)")
            }
            let count = error.errors.count
            StandardOutput.writeErrorLine("\(self.options.config): \(count) error\(count == 1 ? "" : "s")")
            throw ExitCode(1)
        }
    }
}

/// `junction version`.
struct Version: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print the version.")

    func run() {
        StandardOutput.writeLine("junction \(JunctionVersion.current)")
    }
}
