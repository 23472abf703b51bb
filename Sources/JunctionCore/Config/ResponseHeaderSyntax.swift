/// The rules a `response_headers` entry must follow, checked once when the file is read so the data
/// path can copy the configured bytes onto the wire without looking at them again.
enum ResponseHeaderSyntax {
    /// Names a route may not set, lowercased, with the reason given in the error.
    static let refusedNames: [String: String] = [
        "connection": "a hop-by-hop field, managed by Junction per connection",
        "keep-alive": "a hop-by-hop field, managed by Junction per connection",
        "proxy-connection": "a hop-by-hop field, managed by Junction per connection",
        "te": "a hop-by-hop field, managed by Junction per connection",
        "trailer": "a hop-by-hop field, managed by Junction per connection",
        "transfer-encoding": "a hop-by-hop field, managed by Junction per connection",
        "upgrade": "a hop-by-hop field, managed by Junction per connection",
        "content-length":
            "Junction frames the body itself (Content-Length or chunked): a configured length would break the framing",
        "x-request-id": "Junction sets it to the request's id on every response",
    ]

    /// Why `name` cannot be a configured response header, or nil when it can.
    static func nameProblem(_ name: String) -> String? {
        if name.utf8.first == UInt8(ascii: ":") {
            return "pseudo-header fields cannot be configured"
        }
        guard !name.isEmpty, name.utf8.allSatisfy(Self.isTokenCharacter) else {
            return "a header name must be an RFC 9110 token (letters, digits and !#$%&'*+-.^_`|~)"
        }
        if let reason = Self.refusedNames[name.lowercased()] {
            return "\(name) cannot be configured: \(reason)"
        }
        return nil
    }

    /// Why `value` is not an RFC 9110 field-value, or nil when it is (empty is allowed: it removes).
    static func valueProblem(_ value: String) -> String? {
        let bytes = Array(value.utf8)
        if let first = bytes.first, let last = bytes.last,
            first == UInt8(ascii: " ") || first == UInt8(ascii: "\t") || last == UInt8(ascii: " ")
                || last == UInt8(ascii: "\t")
        {
            return "a header value must not start or end with whitespace"
        }
        for byte in bytes where !Self.isFieldValueCharacter(byte) {
            switch byte {
            case UInt8(ascii: "\r"), UInt8(ascii: "\n"): return "a header value must not contain CR or LF"
            case 0: return "a header value must not contain NUL"
            default: return "a header value must not contain control characters (only SP and HTAB inside)"
            }
        }
        return nil
    }

    /// RFC 9110 5.6.2 tchar.
    static func isTokenCharacter(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
            UInt8(ascii: "0")...UInt8(ascii: "9"):
            return true
        default:
            return "!#$%&'*+-.^_`|~".utf8.contains(byte)
        }
    }

    /// RFC 9110 5.5 field-vchar (VCHAR, obs-text) or SP / HTAB.
    static func isFieldValueCharacter(_ byte: UInt8) -> Bool {
        (byte >= 0x21 && byte != 0x7F) || byte == UInt8(ascii: " ") || byte == UInt8(ascii: "\t")
    }
}
