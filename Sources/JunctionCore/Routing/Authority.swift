#if canImport(Glibc)
    import Glibc
#endif

/// The `uri-host [ ":" port ]` a Host header (or HTTP/2 `:authority`) must be (RFC 9110 7.2,
/// RFC 3986 3.2.2): a reg-name (unreserved, sub-delims, pct-encoded), an IPv4 address or a
/// bracketed IPv6 (or IPvFuture) literal, then an optional port of digits. No userinfo, no path.
public enum Authority {
    /// Whether `value` is a valid Host value. The empty value is valid (RFC 9112 3.2: a client
    /// sends it when the target has no authority).
    public static func isValid(_ value: String) -> Bool {
        var value = value
        return value.withUTF8 { self.isValid($0) }
    }

    /// Whether `bytes` are a valid Host value.
    public static func isValid(_ bytes: UnsafeBufferPointer<UInt8>) -> Bool {
        var index = 0
        if bytes.first == UInt8(ascii: "[") {
            guard let close = bytes.firstIndex(of: UInt8(ascii: "]")), close > 1 else { return false }
            guard self.isIPLiteral(UnsafeBufferPointer(rebasing: bytes[1..<close])) else { return false }
            index = close + 1
        } else {
            while index < bytes.count, bytes[index] != UInt8(ascii: ":") {
                let byte = bytes[index]
                if byte == UInt8(ascii: "%") {
                    guard index + 2 < bytes.count, URIBytes.isHexDigit(bytes[index + 1]), URIBytes.isHexDigit(bytes[index + 2])
                    else { return false }
                    index += 3
                    continue
                }
                guard URIBytes.isUnreserved(byte) || URIBytes.isSubDelimiter(byte) else { return false }
                index += 1
            }
        }
        guard index < bytes.count else { return true }
        // ":" port, where port = *DIGIT (RFC 3986); at most 65535 when there are digits.
        guard bytes[index] == UInt8(ascii: ":") else { return false }
        let port = bytes[(index + 1)...]
        guard port.count <= 5, port.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }) else {
            return false
        }
        return port.reduce(0) { $0 * 10 + Int($1 - UInt8(ascii: "0")) } <= 65535
    }

    /// IPv6address or IPvFuture (`v` HEXDIG "." 1*( unreserved / sub-delims / ":" )).
    private static func isIPLiteral(_ inner: UnsafeBufferPointer<UInt8>) -> Bool {
        if inner.first == UInt8(ascii: "v") || inner.first == UInt8(ascii: "V") {
            guard let dot = inner.firstIndex(of: UInt8(ascii: ".")), dot > 1, dot < inner.count - 1 else {
                return false
            }
            return inner[1..<dot].allSatisfy(URIBytes.isHexDigit)
                && inner[(dot + 1)...].allSatisfy {
                    URIBytes.isUnreserved($0) || URIBytes.isSubDelimiter($0) || $0 == UInt8(ascii: ":")
                }
        }
        guard inner.count <= 45 else { return false }
        // inet_pton takes a C string: copy the few bytes and terminate them.
        var text = [CChar](repeating: 0, count: inner.count + 1)
        for (offset, byte) in inner.enumerated() {
            guard byte != 0 else { return false }
            text[offset] = CChar(bitPattern: byte)
        }
        var address = in6_addr()
        return inet_pton(AF_INET6, text, &address) == 1
    }
}
