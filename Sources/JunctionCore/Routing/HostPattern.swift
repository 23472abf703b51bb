/// A route's host condition: an exact name or `*.suffix` (any subdomain, not the bare suffix).
public struct HostPattern: Sendable, Equatable {
    /// Lowercased exact host, or the suffix including its leading dot for a wildcard.
    let value: String
    /// True for `*.suffix`.
    let isWildcard: Bool

    /// Nil when `text` is neither a host name, an IP literal nor `*.suffix`.
    public init?(_ text: String) {
        let lower = text.lowercased()
        if lower.hasPrefix("*.") {
            let suffix = lower.dropFirst(2)
            guard ConfigValueParser.isHostName(suffix) else { return nil }
            self.value = String(lower.dropFirst())
            self.isWildcard = true
        } else {
            guard ConfigValueParser.isHostName(Substring(lower)) || ConfigValueParser.isIPv4Literal(Substring(lower))
            else { return nil }
            self.value = lower
            self.isWildcard = false
        }
    }

    /// Whether `host` (already lowercased, without port or trailing dot) matches.
    public func matches(_ host: String) -> Bool {
        if self.isWildcard {
            return host.count > self.value.count && host.hasSuffix(self.value)
        }
        return host == self.value
    }

    /// The host part of a `Host` header value: port, brackets and a trailing dot removed, lowercased.
    public static func normalizedHost(_ header: String) -> String {
        var host = Substring(header)
        if host.hasPrefix("[") {
            if let close = host.firstIndex(of: "]") { host = host[host.index(after: host.startIndex)..<close] }
        } else if let colon = host.lastIndex(of: ":") {
            host = host[..<colon]
        }
        if host.hasSuffix(".") { host = host.dropLast() }
        // Host names are almost always lowercase already; avoid the copy when they are.
        if host.utf8.contains(where: { $0 >= UInt8(ascii: "A") && $0 <= UInt8(ascii: "Z") }) {
            return host.lowercased()
        }
        return String(host)
    }
}
