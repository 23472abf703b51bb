/// A position in a config file, for messages.
public struct ConfigLocation: Sendable, Equatable, CustomStringConvertible {
    /// The file as it was named on the command line.
    public var file: String
    /// 1-based line.
    public var line: Int
    /// 1-based column.
    public var column: Int

    public init(file: String, line: Int, column: Int) {
        self.file = file
        self.line = line
        self.column = column
    }

    /// `file:line:column`.
    public var description: String { "\(self.file):\(self.line):\(self.column)" }
}

/// One problem found in a config file: where, which key, what.
///
/// Printed as `conf/junction.yaml:14:9: pools.ddp-streamer.backends[1].address: expected host:port, got "localhost"`.
public struct ConfigDiagnostic: Error, Sendable, Equatable, CustomStringConvertible {
    /// Errors make the file invalid; warnings are logged and the file is still used.
    public enum Severity: Sendable, Equatable {
        case error
        case warning
    }

    /// Error or warning.
    public var severity: Severity
    /// Where in the file; nil when the problem is the file itself (unreadable, empty).
    public var location: ConfigLocation?
    /// The key path, e.g. `pools.ddp-streamer.backends[1].address`; empty for the whole file.
    public var path: String
    /// What is wrong, in one line.
    public var message: String

    public init(severity: Severity, location: ConfigLocation?, path: String, message: String) {
        self.severity = severity
        self.location = location
        self.path = path
        self.message = message
    }

    public var description: String {
        var text = self.location.map { "\($0): " } ?? ""
        if !self.path.isEmpty {
            text += "\(self.path): "
        }
        return text + self.message
    }
}

/// The error thrown when a config file has at least one error; carries all of them.
public struct ConfigError: Error, Sendable, CustomStringConvertible {
    /// Every diagnostic found, errors and warnings, in file order.
    public var diagnostics: [ConfigDiagnostic]

    public init(diagnostics: [ConfigDiagnostic]) {
        self.diagnostics = diagnostics
    }

    /// Only the errors.
    public var errors: [ConfigDiagnostic] { self.diagnostics.filter { $0.severity == .error } }

    public var description: String {
        self.errors.map(\.description).joined(separator: "\n")
    }
}
