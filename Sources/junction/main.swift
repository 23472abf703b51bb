import ArgumentParser
import JunctionCore
import JunctionDemo
import Logging

#if canImport(Glibc)
    import Glibc
#endif

/// `junction run | check | version`: the command line of the contract.
@main
struct JunctionCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "junction",
        abstract: "A reverse proxy that splits Rocket.Chat traffic between ddp-streamer and the monolith.",
        subcommands: [Run.self, Check.self, Version.self, Demo.self]
    )

    /// As ArgumentParser's `main`, except that a usage error exits 2 as the contract says (the
    /// parser's own code for it is 64, EX_USAGE).
    static func main() async {
        do {
            var command = try Self.parseAsRoot()
            if var command = command as? AsyncParsableCommand {
                try await command.run()
            } else {
                try command.run()
            }
        } catch {
            if Self.exitCode(for: error) == .validationFailure {
                StandardOutput.writeErrorLine(Self.fullMessage(for: error))
                LineWriter.flushStandardStreams()
                Self.exit(withError: ExitCode(2))
            }
            Self.exit(withError: error)
        }
    }
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
        // Until the services trap them, a reload or upgrade signal must not end the process (the
        // default action of SIGHUP, SIGUSR1 and SIGUSR2): a `systemctl reload` or an upgrade's
        // signal sent to every process of the service while this one starts.
        for signal in [SIGHUP, SIGUSR1, SIGUSR2] { _ = Glibc.signal(signal, SIG_IGN) }
        // Read first: the path may be renamed over by the next version while this one runs, and
        // the hand-over's variables must not reach a process this one starts.
        let upgrade = UpgradeCommand.current(arguments: CommandLine.arguments)
        let handover: Handover?
        do {
            handover = try Handover.takeFromEnvironment()
        } catch {
            StandardOutput.writeErrorLine("error: \(error)")
            throw ExitCode(1)
        }
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
        // What is still queued for stdout and stderr goes out before the exit (bounded: a stuck
        // reader does not hold it up).
        defer { LineWriter.flushStandardStreams() }
        do {
            let process = Junction.ProcessSetup(handover: handover, upgrade: upgrade, notifier: SystemdNotifier())
            try await Junction(prepared: prepared, logger: logger, process: process).run()
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

/// `junction demo`: Junction in front of built-in demo backends on loopback.
struct Demo: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run Junction in front of built-in demo backends (a monolith page, two DDP WebSocket backends).",
        discussion: "Everything listens on 127.0.0.1. Open the printed page URL; stop with Ctrl-C."
    )

    @Option(help: "The port Junction listens on, on 127.0.0.1.")
    var port: Int = 8080

    @Option(help: "The port of Junction's admin listener, on 127.0.0.1.")
    var adminPort: Int = 9901

    func validate() throws {
        for (name, value) in [("--port", self.port), ("--admin-port", self.adminPort)]
        where !(1...65535).contains(value) {
            throw ValidationError("\(name) must be a port number, 1-65535")
        }
        if self.port == self.adminPort { throw ValidationError("--port and --admin-port must differ") }
    }

    func run() async throws {
        defer { LineWriter.flushStandardStreams() }
        do {
            try await JunctionDemo.run(port: self.port, adminPort: self.adminPort)
        } catch {
            StandardOutput.writeErrorLine("error: \(error)")
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
