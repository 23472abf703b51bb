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
    /// From the request head to the backend's response head (connects and retries included); nil
    /// when no backend answered.
    var upstreamTime: TimeAmount? = nil
    /// The client's Referer and User-Agent, for the combined format.
    var referer: String? = nil
    var userAgent: String? = nil

    /// `http/1.0`, `http/1.1`, `h2`, or for a tunnel `ws` (HTTP/1.1 upgrade) and `ws/h2` (RFC 8441).
    var protocolName: String {
        switch (self.isTunnel, self.version.major, self.version.minor) {
        case (true, 2, _): return "ws/h2"
        case (true, _, _): return "ws"
        case (false, 2, _): return "h2"
        case (false, _, 0): return "http/1.0"
        default: return "http/1.1"
        }
    }
}

extension AccessRecord {
    /// A request's record as it starts (status 0 until an answer), its Referer and User-Agent from
    /// `facts`.
    init(
        client: String,
        listener: String,
        method: HTTPMethod,
        target: String,
        version: HTTPVersion,
        requestID: String,
        facts: RequestFacts
    ) {
        self.init(
            start: .now(),
            client: client,
            listener: listener,
            method: method,
            target: target,
            version: version,
            status: 0,
            requestID: requestID,
            referer: facts.referer,
            userAgent: facts.userAgent
        )
    }
}

/// Where access-log lines go: stdout or a file, through a `LineWriter` shared by all event loops
/// (so a reader that cannot keep up costs lines, counted, never a blocked loop).
///
/// Each event loop formats into its own `AccessLogBuffer` and hands it over once per loop tick.
public final class AccessLogSink: Sendable {
    let writer: LineWriter
    let format: LoggingConfig.Format

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
            return AccessLogSink(writer: LineWriter.standardOutput, format: format)
        case .file(let path):
            let fd = Glibc.open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o644)
            guard fd >= 0 else {
                throw FileProblem(message: "cannot open access log \(path): \(String(cString: strerror(errno)))")
            }
            // The writer closes the file once its last line is out.
            return AccessLogSink(
                writer: LineWriter(fileDescriptor: fd, name: path, ownsDescriptor: true),
                format: format
            )
        }
    }

    init(writer: LineWriter, format: LoggingConfig.Format) {
        self.writer = writer
        self.format = format
    }

    /// Queues `lines` whole lines.
    func write(_ bytes: UnsafeRawBufferPointer, lines: Int) {
        self.writer.write(bytes, lines: lines)
    }
}

/// One event loop's pending access-log lines; flushed at the end of the loop tick.
final class AccessLogBuffer {
    let sink: AccessLogSink
    private let eventLoop: EventLoop
    private var buffer: ByteBuffer
    private var flushScheduled = false
    /// Lines in `buffer`, counted for the dropped-lines metric.
    private var lines = 0
    /// The formatted wall-clock second, reused for every line in that second.
    private var cachedSecond: Int = -1
    private var cachedTimestamp: String = ""
    private var cachedCombinedSecond: Int = -1
    private var cachedCombinedTimestamp: String = ""

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
        self.lines += 1
        if !self.flushScheduled {
            self.flushScheduled = true
            self.eventLoop.assumeIsolated().execute { self.flush() }
        }
    }

    func flush() {
        self.flushScheduled = false
        guard self.buffer.readableBytes > 0 else { return }
        self.buffer.withUnsafeReadableBytes { self.sink.write($0, lines: self.lines) }
        self.buffer.clear()
        self.lines = 0
    }

    // The combined format, then Junction's fields as key=value:
    // `192.0.2.7 - - [26/Nov/2026:04:03:32 +0000] "GET /x HTTP/1.1" 200 123 "-" "curl/8.14.1" in=0 rt=0.002
    //  ut=0.001 listener=https route=r pool=p backend=10.0.0.5:3000 proto=http/1.1 id=...`
    // A tunnel is logged when it closes: its status is the 101 (200 over HTTP/2), bytes are the
    // whole tunnel's and rt is its lifetime.
    private func writeText(_ record: AccessRecord, duration: Double) {
        self.buffer.writeString(record.client)
        self.buffer.writeStaticString(" - - [")
        self.writeCombinedTimestamp()
        self.buffer.writeStaticString("] \"")
        self.writeEscaped(record.method.rawValue, json: false)
        self.buffer.writeStaticString(" ")
        self.writeEscaped(record.target, json: false)
        self.buffer.writeStaticString(" HTTP/")
        self.buffer.writeString(String(record.version.major))
        self.buffer.writeStaticString(".")
        self.buffer.writeString(String(record.version.minor))
        self.buffer.writeStaticString("\" ")
        self.buffer.writeString(String(record.status))
        self.buffer.writeStaticString(" ")
        self.buffer.writeString(String(record.bytesOut))
        self.buffer.writeStaticString(" \"")
        self.writeEscaped(record.referer ?? "-", json: false)
        self.buffer.writeStaticString("\" \"")
        self.writeEscaped(record.userAgent ?? "-", json: false)
        self.buffer.writeStaticString("\" in=")
        self.buffer.writeString(String(record.bytesIn))
        self.buffer.writeStaticString(" rt=")
        self.writeSeconds(duration)
        self.buffer.writeStaticString(" ut=")
        if let upstream = record.upstreamTime {
            self.writeSeconds(Double(upstream.nanoseconds) / 1e9)
        } else {
            self.buffer.writeStaticString("-")
        }
        self.buffer.writeStaticString(" listener=")
        self.buffer.writeString(record.listener)
        self.buffer.writeStaticString(" route=")
        self.buffer.writeString(record.route ?? "-")
        self.buffer.writeStaticString(" pool=")
        self.buffer.writeString(record.pool ?? "-")
        self.buffer.writeStaticString(" backend=")
        self.buffer.writeString(record.backend ?? "-")
        self.buffer.writeStaticString(" proto=")
        self.buffer.writeString(record.protocolName)
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
        self.buffer.writeString(record.protocolName)
        self.buffer.writeStaticString("\",\"status\":")
        self.buffer.writeString(String(record.status))
        self.buffer.writeStaticString(",\"bytes_in\":")
        self.buffer.writeString(String(record.bytesIn))
        self.buffer.writeStaticString(",\"bytes_out\":")
        self.buffer.writeString(String(record.bytesOut))
        self.buffer.writeStaticString(",\"duration\":")
        self.writeSeconds(duration)
        if let upstream = record.upstreamTime {
            self.buffer.writeStaticString(",\"upstream_time\":")
            self.writeSeconds(Double(upstream.nanoseconds) / 1e9)
        }
        if record.isTunnel { self.buffer.writeStaticString(",\"tunnel\":true") }
        for (key, value) in [
            ("route", record.route), ("pool", record.pool), ("backend", record.backend), ("referer", record.referer),
            ("user_agent", record.userAgent),
        ] {
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

    /// `26/Nov/2026:04:03:32 +0000`, as in the common and combined formats.
    private func writeCombinedTimestamp() {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        if now.tv_sec != self.cachedCombinedSecond {
            self.cachedCombinedSecond = now.tv_sec
            var time = tm()
            var seconds = time_t(now.tv_sec)
            gmtime_r(&seconds, &time)
            let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
            self.cachedCombinedTimestamp =
                format2(Int(time.tm_mday)) + "/" + months[Int(time.tm_mon)] + "/"
                + format2(Int(time.tm_year) + 1900, width: 4) + ":" + format2(Int(time.tm_hour)) + ":"
                + format2(Int(time.tm_min)) + ":" + format2(Int(time.tm_sec)) + " +0000"
        }
        self.buffer.writeString(self.cachedCombinedTimestamp)
    }

    /// ISO 8601 with milliseconds in UTC, for JSON.
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
