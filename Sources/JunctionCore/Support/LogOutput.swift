import JunctionACME
import Logging

import struct NIOConcurrencyHelpers.NIOLockedValueBox

#if canImport(Glibc)
    import Glibc
#endif

/// Blocking, unbuffered line output for the command line's own messages (`check`, `version`, errors
/// before serving): each line is one `write(2)`. While serving, everything goes through
/// `LineWriter`, which never blocks.
public enum StandardOutput {
    /// Writes `line` and a newline to stdout.
    public static func writeLine(_ line: String) {
        self.write(line + "\n", to: STDOUT_FILENO)
    }

    /// Writes `line` and a newline to stderr.
    public static func writeErrorLine(_ line: String) {
        self.write(line + "\n", to: STDERR_FILENO)
    }

    static func write(_ text: String, to fd: CInt) {
        var text = text
        text.withUTF8 { LineWriter.writeFully(fd, UnsafeRawBufferPointer($0)) }
    }
}

/// The process's log level and format: set at start, changed by a reload.
public final class LogSettings: Sendable {
    public static let shared = LogSettings()
    private let state = NIOLockedValueBox<(level: Logger.Level, format: LoggingConfig.Format)>((.info, .text))

    var level: Logger.Level { self.state.withLockedValue { $0.level } }
    var format: LoggingConfig.Format { self.state.withLockedValue { $0.format } }

    public func apply(level: String, format: LoggingConfig.Format) {
        let parsed = Logger.Level(rawValue: level) ?? .info
        self.state.withLockedValue { $0 = (parsed, format) }
    }
}

/// Junction's swift-log handler: one line per event on stderr (through `LineWriter`: a stuck reader
/// costs lines, never a blocked thread), as text or JSON (`logging.format`).
/// Level and format follow `LogSettings`, so a reload changes them for every logger.
public struct JunctionLogHandler: LogHandler {
    public var metadata: Logger.Metadata = [:]
    private let label: String

    public var logLevel: Logger.Level {
        get { LogSettings.shared.level }
        set {}  // the process-wide setting decides
    }

    public init(label: String) {
        self.label = label
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { self.metadata[key] }
        set { self.metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var merged = self.metadata
        if let extra = event.metadata {
            merged.merge(extra) { $1 }
        }
        let keys = merged.keys.sorted()
        let time = Self.timestamp()
        let line: String
        switch LogSettings.shared.format {
        case .text:
            let fields = keys.map { "\($0)=\(Self.textValue(merged[$0]!))" }.joined(separator: " ")
            line = "\(time) \(event.level) \(event.message)\(fields.isEmpty ? "" : " " + fields)"
        case .json:
            var parts = [
                "\"time\":\(time.jsonLiteral)", "\"level\":\("\(event.level)".jsonLiteral)",
                "\"message\":\("\(event.message)".jsonLiteral)",
            ]
            parts += keys.map { "\($0.jsonLiteral):\("\(merged[$0]!)".jsonLiteral)" }
            line = "{" + parts.joined(separator: ",") + "}"
        }
        LineWriter.standardError.writeLine(line)
    }

    private static func textValue(_ value: Logger.Metadata.Value) -> String {
        let text = "\(value)"
        return text.contains(where: { $0 == " " || $0 == "\"" }) ? text.jsonLiteral : text
    }

    static func timestamp() -> String {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        var time = tm()
        var seconds = now.tv_sec
        gmtime_r(&seconds, &time)
        func pad(_ value: Int32, _ width: Int = 2) -> String {
            let digits = String(value)
            return String(repeating: "0", count: max(0, width - digits.count)) + digits
        }
        return "\(pad(time.tm_year + 1900, 4))-\(pad(time.tm_mon + 1))-\(pad(time.tm_mday))T"
            + "\(pad(time.tm_hour)):\(pad(time.tm_min)):\(pad(time.tm_sec)).\(pad(Int32(now.tv_nsec / 1_000_000), 3))Z"
    }
}

/// Installs the process-wide logging once; later calls are ignored (swift-log allows one bootstrap).
public enum LoggingSetup {
    private static let done = NIOLockedValueBox(false)

    public static func bootstrap(level: String, format: LoggingConfig.Format) {
        LogSettings.shared.apply(level: level, format: format)
        let first = self.done.withLockedValue { done in
            defer { done = true }
            return !done
        }
        guard first else { return }
        LoggingSystem.bootstrap { label in
            JunctionLogHandler(label: label)
        }
    }
}
