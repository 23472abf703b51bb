import NIOCore
import Yams

#if canImport(Glibc)
    import Glibc
#endif

/// Turns a YAML config file into a validated `JunctionConfig`, collecting every problem with its
/// file:line:column and key path instead of stopping at the first.
///
/// The YAML is read as a node tree (not `Codable`) so that every value keeps its position; the
/// environment placeholders of its scalars are expanded on that tree before anything is decoded.
public enum ConfigLoader {
    /// What loading produced: the config when there were no errors, and every diagnostic.
    public struct Outcome: Sendable {
        /// The config, or nil if at least one error was found.
        public var config: JunctionConfig?
        /// Errors and warnings in file order.
        public var diagnostics: [ConfigDiagnostic]

        /// The warnings only.
        public var warnings: [ConfigDiagnostic] { self.diagnostics.filter { $0.severity == .warning } }
        /// The errors only.
        public var errors: [ConfigDiagnostic] { self.diagnostics.filter { $0.severity == .error } }
    }

    /// Reads and validates the file at `path`; its `${VAR}` placeholders take their values from
    /// `environment`, the process environment unless a test passes its own.
    public static func load(path: String, environment: ConfigEnvironment = .process) -> Outcome {
        let text: String
        do {
            text = try readFile(path)
        } catch {
            let diagnostic = ConfigDiagnostic(severity: .error, location: nil, path: "", message: "\(path): \(error)")
            return Outcome(config: nil, diagnostics: [diagnostic])
        }
        return self.parse(yaml: text, file: path, baseDirectory: directory(of: path), environment: environment)
    }

    /// Validates YAML text; `file` names it in messages, `baseDirectory` anchors relative paths and
    /// `environment` gives the values of `${VAR}` placeholders.
    public static func parse(
        yaml: String,
        file: String,
        baseDirectory: String,
        environment: ConfigEnvironment = .process
    ) -> Outcome {
        let reader = ConfigReader()
        let root: Node?
        do {
            root = try Yams.compose(yaml: yaml)
        } catch let error as YamlError {
            reader.record(yamlDiagnostic(error, file: file))
            return Outcome(config: nil, diagnostics: reader.diagnostics)
        } catch {
            reader.record(ConfigDiagnostic(severity: .error, location: nil, path: "", message: "\(file): \(error)"))
            return Outcome(config: nil, diagnostics: reader.diagnostics)
        }
        guard let root else {
            reader.record(
                ConfigDiagnostic(
                    severity: .error,
                    location: ConfigLocation(file: file, line: 1, column: 1),
                    path: "",
                    message: "the file is empty; it needs at least listeners, routes and pools"
                )
            )
            return Outcome(config: nil, diagnostics: reader.diagnostics)
        }
        // Placeholders are part of reading the file: once one cannot be expanded the values are not
        // known, so the schema is not checked (its errors would be about the placeholder's text).
        let expander = ConfigPlaceholderExpander(environment: environment, reader: reader)
        let expanded = expander.expand(ConfigNode(node: root, path: "", file: file))
        guard !reader.hasErrors else {
            return Outcome(config: nil, diagnostics: self.inFileOrder(reader.diagnostics))
        }
        let decoder = ConfigFileDecoder(reader: reader, baseDirectory: baseDirectory)
        let config = decoder.decode(ConfigNode(node: expanded, path: "", file: file))
        return Outcome(config: reader.hasErrors ? nil : config, diagnostics: self.inFileOrder(reader.diagnostics))
    }

    /// By line and column: the decoder finds some problems (unknown pools, unused ones) only after
    /// the section they are in.
    private static func inFileOrder(_ diagnostics: [ConfigDiagnostic]) -> [ConfigDiagnostic] {
        diagnostics.sorted {
            ($0.location?.line ?? 0, $0.location?.column ?? 0) < ($1.location?.line ?? 0, $1.location?.column ?? 0)
        }
    }

    private static func yamlDiagnostic(_ error: YamlError, file: String) -> ConfigDiagnostic {
        func make(_ mark: Mark?, _ message: String) -> ConfigDiagnostic {
            ConfigDiagnostic(
                severity: .error,
                location: mark.map { ConfigLocation(file: file, line: $0.line, column: $0.column) },
                path: "",
                message: "invalid YAML: \(message)"
            )
        }
        switch error {
        case .scanner(let context, let problem, let mark, _), .parser(let context, let problem, let mark, _),
            .composer(let context, let problem, let mark, _):
            let detail = context.map { "\(problem) (\($0.text))" } ?? problem
            return make(mark, detail)
        case .duplicatedKeysInMapping(let duplicates, let context):
            return make(context.mark, "duplicate key \(duplicates.joined(separator: ", "))")
        default:
            return make(nil, "\(error)")
        }
    }

    private static func directory(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        return slash == path.startIndex ? "/" : String(path[..<slash])
    }

    /// Reads a whole file as UTF-8; errors are one readable line.
    static func readFile(_ path: String) throws -> String {
        guard let file = fopen(path, "rb") else {
            throw FileProblem(message: "cannot read file: \(String(cString: strerror(errno)))")
        }
        defer { fclose(file) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 64 * 1024)
        while true {
            let count = fread(&chunk, 1, chunk.count, file)
            if count > 0 { bytes.append(contentsOf: chunk[0..<count]) }
            if count < chunk.count { break }
        }
        if ferror(file) != 0 {
            throw FileProblem(message: "cannot read file: \(String(cString: strerror(errno)))")
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}

/// A file that could not be read.
struct FileProblem: Error, CustomStringConvertible {
    var message: String
    var description: String { self.message }
}
