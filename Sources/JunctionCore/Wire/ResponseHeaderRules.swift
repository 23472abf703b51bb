import NIOCore

/// A route's `response_headers`, compiled once per config generation so a response pays only for
/// a name comparison per field and a copy of ready bytes: the backend's fields of a configured name
/// are dropped (`covers`), then the set ones are written (`HeaderFieldSink.appendRules`). A route
/// without the key has no rules at all (nil), so its responses do nothing more than before.
final class ResponseHeaderRules: Sendable {
    /// Every configured name (set or removed), lowercased, as bytes: compared with the backend's
    /// names without building a String.
    private let names: [[UInt8]]
    /// The fields to set, names as written, in file order (structured sinks: tests, `HTTPHeaders`).
    let fields: [(name: String, value: String)]
    /// The same fields lowercased for HTTP/2 (RFC 9113 8.2.1), ready to add to an HPACK block.
    let http2Fields: [(name: String, value: String)]
    /// The same fields as HTTP/1.1 lines, `Name: value\r\n` each, copied into a head in one write.
    let http1Lines: ByteBuffer

    /// Nil for an empty list: no rules, no cost.
    init?(_ settings: [ResponseHeaderSetting]) {
        guard !settings.isEmpty else { return nil }
        self.names = settings.map { Array($0.name.lowercased().utf8) }
        let set = settings.filter { !$0.value.isEmpty }
        self.fields = set.map { ($0.name, $0.value) }
        self.http2Fields = set.map { ($0.name.lowercased(), $0.value) }
        var lines = ByteBuffer()
        for field in set {
            lines.writeString(field.name)
            lines.writeStaticString(": ")
            lines.writeString(field.value)
            lines.writeStaticString("\r\n")
        }
        self.http1Lines = lines
    }

    /// Whether a field the backend sent under `name` is replaced or removed by these rules.
    @inline(__always)
    func covers(_ name: String) -> Bool {
        let count = name.utf8.count
        for rule in self.names where rule.count == count {
            if name.utf8.elementsEqual(rule, by: { ($0 >= 0x41 && $0 <= 0x5A ? $0 | 0x20 : $0) == $1 }) {
                return true
            }
        }
        return false
    }
}

extension HeaderFieldSink {
    /// Appends the fields `rules` set, one by one; a sink with a faster way overrides it.
    mutating func appendRules(_ rules: ResponseHeaderRules) {
        for field in rules.fields { self.append(name: field.name, value: field.value) }
    }
}
