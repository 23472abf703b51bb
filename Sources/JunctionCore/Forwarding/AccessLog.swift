import NIOCore
import NIOHTTP1

#if canImport(Glibc)
    import Glibc
#endif

/// One finished request, as the access log records it.
struct AccessRecord {
    /// When the request head arrived (monotonic), for the duration.
    var start: NIODeadline
    /// The client's address.
    var client: String
    /// The listener's name.
    var listener: String
    /// Request method.
    var method: HTTPMethod
    /// The request target as received.
    var target: String
    /// `HTTP/1.1`, `HTTP/1.0`...
    var version: HTTPVersion
    /// The status sent (0 when the client went away before any).
    var status: UInt
    /// Request body bytes received.
    var bytesIn: Int64 = 0
    /// Response body bytes sent.
    var bytesOut: Int64 = 0
    /// Route, pool and backend, when known.
    var route: String? = nil
    var pool: String? = nil
    var backend: String? = nil
    /// The request id sent upstream and returned.
    var requestID: String
    /// True for a WebSocket tunnel (logged when it closes, with its lifetime).
    var isTunnel = false
}

/// Where access-log lines go: a file descriptor shared by all event loops, written with `write(2)`.
///
/// Each event loop formats into its own `AccessLogBuffer` and writes once per loop tick, so a busy
/// loop makes one syscall for many lines and nothing waits in a buffer past the current tick.
public final class AccessLogSink: Sendable {
    let fileDescriptor: CInt
    let format: LoggingConfig.Format
    private let ownsDescriptor: Bool

    /// nil for `access_log: off`.
    public static func open(
        _ target: LoggingConfig.AccessLogTarget,
        format: LoggingConfig.Format
    ) throws
        -> AccessLogSink?
    {
        switch target {
        case .off:
            return nil
        case .stdout:
            return AccessLogSink(fileDescriptor: STDOUT_FILENO, format: format, ownsDescriptor: false)
        case .file(let path):
            let fd = Glibc.open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o644)
            guard fd >= 0 else {
                throw FileProblem(message: "cannot open access log \(path): \(String(cString: strerror(errno)))")
            }
            return AccessLogSink(fileDescriptor: fd, format: format, ownsDescriptor: true)
        }
    }

    init(fileDescriptor: CInt, format: LoggingConfig.Format, ownsDescriptor: Bool) {
        self.fileDescriptor = fileDescriptor
        self.format = format
        self.ownsDescriptor = ownsDescriptor
    }

    deinit {
        if self.ownsDescriptor { close(self.fileDescriptor) }
    }

    /// Writes all of `bytes`, retrying on EINTR and short writes; errors drop the lines.
    func write(_ bytes: UnsafeRawBufferPointer) {
        var offset = 0
        while offset < bytes.count {
            let written = Glibc.write(self.fileDescriptor, bytes.baseAddress! + offset, bytes.count - offset)
            if written < 0 {
                if errno == EINTR { continue }
                return
            }
            offset += written
        }
    }
}

/// One event loop's pending access-log lines; flushed at the end of the loop tick.
final class AccessLogBuffer {
    private let sink: AccessLogSink
    private let eventLoop: EventLoop
    private var buffer: ByteBuffer
    private var flushScheduled = false
    /// The formatted wall-clock second, reused for every line in that second.
    private var cachedSecond: Int = -1
    private var cachedTimestamp: String = ""

    init(sink: AccessLogSink, eventLoop: EventLoop) {
        self.sink = sink
        self.eventLoop = eventLoop
        self.buffer = ByteBufferAllocator().buffer(capacity: 16 * 1024)
    }

    func log(_ record: AccessRecord, now: NIODeadline) {
        let duration = Double((now - record.start).nanoseconds) / 1e9
        switch self.sink.format {
        case .text: self.writeText(record, duration: duration)
        case .json: self.writeJSON(record, duration: duration)
        }
        if !self.flushScheduled {
            self.flushScheduled = true
            self.eventLoop.assumeIsolated().execute { self.flush() }
        }
    }

    func flush() {
        self.flushScheduled = false
        guard self.buffer.readableBytes > 0 else { return }
        self.buffer.withUnsafeReadableBytes { self.sink.write($0) }
        self.buffer.clear()
    }

    // `2026-11-26T04:03:32.123Z 127.0.0.1 https "GET /x HTTP/1.1" 200 in=0 out=123 0.002s route=r pool=p backend=b id=...`
    private func writeText(_ record: AccessRecord, duration: Double) {
        self.writeTimestamp()
        self.buffer.writeStaticString(" ")
        self.buffer.writeString(record.client)
        self.buffer.writeStaticString(" ")
        self.buffer.writeString(record.listener)
        self.buffer.writeStaticString(" \"")
        self.buffer.writeString(record.method.rawValue)
        self.buffer.writeStaticString(" ")
        self.writeEscaped(record.target, json: false)
        self.buffer.writeStaticString(record.isTunnel ? " WS\" " : " HTTP/")
        if !record.isTunnel {
            self.buffer.writeString("\(record.version.major).\(record.version.minor)\" ")
        }
        self.buffer.writeString(String(record.status))
        self.buffer.writeStaticString(" in=")
        self.buffer.writeString(String(record.bytesIn))
        self.buffer.writeStaticString(" out=")
        self.buffer.writeString(String(record.bytesOut))
        self.buffer.writeStaticString(" ")
        self.writeSeconds(duration)
        self.buffer.writeStaticString("s route=")
        self.buffer.writeString(record.route ?? "-")
        self.buffer.writeStaticString(" pool=")
        self.buffer.writeString(record.pool ?? "-")
        self.buffer.writeStaticString(" backend=")
        self.buffer.writeString(record.backend ?? "-")
        self.buffer.writeStaticString(" id=")
        self.buffer.writeString(record.requestID)
        self.buffer.writeStaticString("\n")
    }

    private func writeJSON(_ record: AccessRecord, duration: Double) {
        self.buffer.writeStaticString("{\"time\":\"")
        self.writeTimestamp()
        self.buffer.writeStaticString("\",\"client\":\"")
        self.writeEscaped(record.client, json: true)
        self.buffer.writeStaticString("\",\"listener\":\"")
        self.writeEscaped(record.listener, json: true)
        self.buffer.writeStaticString("\",\"method\":\"")
        self.writeEscaped(record.method.rawValue, json: true)
        self.buffer.writeStaticString("\",\"target\":\"")
        self.writeEscaped(record.target, json: true)
        self.buffer.writeStaticString("\",\"protocol\":\"")
        self.buffer.writeString(record.isTunnel ? "websocket" : "HTTP/\(record.version.major).\(record.version.minor)")
        self.buffer.writeStaticString("\",\"status\":")
        self.buffer.writeString(String(record.status))
        self.buffer.writeStaticString(",\"bytes_in\":")
        self.buffer.writeString(String(record.bytesIn))
        self.buffer.writeStaticString(",\"bytes_out\":")
        self.buffer.writeString(String(record.bytesOut))
        self.buffer.writeStaticString(",\"duration\":")
        self.writeSeconds(duration)
        for (key, value) in [("route", record.route), ("pool", record.pool), ("backend", record.backend)] {
            guard let value else { continue }
            self.buffer.writeString(",\"\(key)\":\"")
            self.writeEscaped(value, json: true)
            self.buffer.writeStaticString("\"")
        }
        self.buffer.writeStaticString(",\"request_id\":\"")
        self.writeEscaped(record.requestID, json: true)
        self.buffer.writeStaticString("\"}\n")
    }

    private func writeSeconds(_ seconds: Double) {
        // Millisecond precision is enough for an access log and avoids Double formatting costs.
        let millis = Int((seconds * 1000).rounded())
        self.buffer.writeString(String(millis / 1000))
        self.buffer.writeStaticString(".")
        let fraction = millis % 1000
        if fraction < 100 { self.buffer.writeStaticString(fraction < 10 ? "00" : "0") }
        self.buffer.writeString(String(fraction))
    }

    private func writeTimestamp() {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        let second = now.tv_sec
        if second != self.cachedSecond {
            self.cachedSecond = second
            var time = tm()
            var seconds = time_t(second)
            gmtime_r(&seconds, &time)
            self.cachedTimestamp = String(
                format2(Int(time.tm_year) + 1900, width: 4) + "-" + format2(Int(time.tm_mon) + 1) + "-"
                    + format2(Int(time.tm_mday)) + "T" + format2(Int(time.tm_hour)) + ":" + format2(Int(time.tm_min))
                    + ":" + format2(Int(time.tm_sec))
            )
        }
        self.buffer.writeString(self.cachedTimestamp)
        let millis = Int(now.tv_nsec / 1_000_000)
        self.buffer.writeStaticString(".")
        self.buffer.writeString(format2(millis, width: 3))
        self.buffer.writeStaticString("Z")
    }

    /// Client-controlled text: quotes, backslashes and control bytes escaped so a line stays one line.
    private func writeEscaped(_ text: String, json: Bool) {
        let needsEscape = text.utf8.contains {
            $0 < 0x20 || $0 == UInt8(ascii: "\"") || $0 == UInt8(ascii: "\\") || $0 == 0x7F
        }
        guard needsEscape else {
            self.buffer.writeString(text)
            return
        }
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "\""): self.buffer.writeStaticString("\\\"")
            case UInt8(ascii: "\\"): self.buffer.writeStaticString("\\\\")
            case 0..<0x20, 0x7F:
                let hex: StaticString = "0123456789abcdef"
                self.buffer.writeStaticString(json ? "\\u00" : "\\x")
                self.buffer.writeInteger(hex.utf8Start[Int(byte >> 4)])
                self.buffer.writeInteger(hex.utf8Start[Int(byte & 0xF)])
            default: self.buffer.writeInteger(byte)
            }
        }
    }
}

/// Zero-padded decimal.
private func format2(_ value: Int, width: Int = 2) -> String {
    let digits = String(value)
    return digits.count >= width ? digits : String(repeating: "0", count: width - digits.count) + digits
}
