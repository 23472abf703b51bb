import NIOCore

/// Parsers for the config file's value syntaxes: durations, sizes, addresses and status sets.
public enum ConfigValueParser {
    /// A reason a value did not parse.
    public struct Problem: Error, Equatable {
        /// One line, ready to follow the key path.
        public var message: String
    }

    /// `250ms`, `5s`, `2m`, `1h`, `30d` (a non-negative integer and one unit).
    public static func duration(_ text: String) -> TimeAmount? {
        let units: [(suffix: String, make: (Int64) -> TimeAmount)] = [
            ("ms", { .milliseconds($0) }), ("s", { .seconds($0) }), ("m", { .minutes($0) }), ("h", { .hours($0) }),
            // Days: the unit of certificate lifetimes (`renew_before: 30d`); capped so the
            // nanoseconds fit in 64 bits.
            ("d", { .hours(min($0, 100_000) * 24) }),
        ]
        for unit in units where text.hasSuffix(unit.suffix) {
            let number = text.dropLast(unit.suffix.count)
            // "ms" also ends in "s": only accept a suffix that leaves a plain number.
            guard !number.isEmpty, number.allSatisfy(\.isASCIIDigit), let value = Int64(number),
                value <= 1_000_000_000
            else { continue }
            return unit.make(value)
        }
        return nil
    }

    /// `64KiB`, `10MiB`, `1GiB` or a bare number of bytes.
    public static func size(_ text: String) -> Int64? {
        let units: [(suffix: String, multiplier: Int64)] = [
            ("KiB", 1 << 10), ("MiB", 1 << 20), ("GiB", 1 << 30), ("", 1),
        ]
        for unit in units where text.hasSuffix(unit.suffix) {
            let number = text.dropLast(unit.suffix.count)
            guard !number.isEmpty, number.allSatisfy(\.isASCIIDigit), let value = Int64(number),
                value <= Int64.max / unit.multiplier
            else { continue }
            return value * unit.multiplier
        }
        return nil
    }

    /// `host:port`, `[v6]:port`. The host is an IP literal or a DNS name; the port is required.
    public static func hostPort(_ text: String, allowPortZero: Bool = false) -> Result<HostPort, Problem> {
        let fail = Problem(message: "expected host:port, got \"\(text)\"")
        let host: Substring
        let portText: Substring
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]"), text[text.index(after: close)...].hasPrefix(":") else {
                return .failure(fail)
            }
            host = text[text.index(after: text.startIndex)..<close]
            portText = text[text.index(close, offsetBy: 2)...]
            guard host.contains(":"), isIPv6Literal(host) else {
                return .failure(Problem(message: "expected an IPv6 address in brackets, got \"\(text)\""))
            }
        } else {
            guard let colon = text.lastIndex(of: ":") else { return .failure(fail) }
            host = text[..<colon]
            portText = text[text.index(after: colon)...]
            if host.contains(":") {
                return .failure(Problem(message: "an IPv6 address needs brackets, as in [::1]:8080, got \"\(text)\""))
            }
            guard !host.isEmpty, isHostName(host) || isIPv4Literal(host) else { return .failure(fail) }
        }
        guard !portText.isEmpty, portText.allSatisfy(\.isASCIIDigit), let port = Int(portText),
            port <= 65535, port > 0 || allowPortZero
        else {
            return .failure(Problem(message: "port must be 1-65535 in \"\(text)\""))
        }
        return .success(HostPort(host: String(host), port: port))
    }

    /// `200`, `200-399`, or a comma list of both.
    public static func statusSet(_ text: String) -> StatusSet? {
        var ranges: [ClosedRange<Int>] = []
        for part in text.split(separator: ",", omittingEmptySubsequences: false) {
            let item = part.trimmingSpaces()
            let bounds = item.split(separator: "-", omittingEmptySubsequences: false)
            guard (1...2).contains(bounds.count),
                let low = Int(bounds[0]), let high = Int(bounds.last!),
                (100...599).contains(low), (100...599).contains(high), low <= high
            else { return nil }
            ranges.append(low...high)
        }
        return ranges.isEmpty ? nil : StatusSet(ranges: ranges)
    }

    static func isIPv4Literal(_ text: Substring) -> Bool {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        return parts.count == 4
            && parts.allSatisfy { !$0.isEmpty && $0.count <= 3 && $0.allSatisfy(\.isASCIIDigit) && Int($0)! <= 255 }
    }

    static func isIPv6Literal(_ text: Substring) -> Bool {
        (try? SocketAddress(ipAddress: String(text), port: 0)) != nil
    }

    /// RFC 1123 host names: letters, digits, hyphens and dots; labels of 1-63 characters.
    static func isHostName(_ text: Substring) -> Bool {
        guard text.count <= 253 else { return false }
        let labels = text.split(separator: ".", omittingEmptySubsequences: false)
        return labels.allSatisfy { label in
            !label.isEmpty && label.count <= 63 && !label.hasPrefix("-") && !label.hasSuffix("-")
                && label.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-") }
        } && !labels.last!.allSatisfy(\.isASCIIDigit)
    }
}

extension Character {
    var isASCIIDigit: Bool { self >= "0" && self <= "9" }
}

extension Substring {
    func trimmingSpaces() -> Substring {
        var result = self
        while result.first == " " { result.removeFirst() }
        while result.last == " " { result.removeLast() }
        return result
    }
}
