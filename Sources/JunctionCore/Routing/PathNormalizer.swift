/// Turns a request target into the path routes are matched against.
///
/// The query and fragment are dropped, percent-encoded unreserved characters are decoded and dot
/// segments are removed (RFC 3986 6.2.2, 5.2.4). Repeated slashes are kept: `//websocket` is not
/// `/websocket`. The result is only for matching: the target itself is forwarded byte for byte.
public enum PathNormalizer {
    /// The normalised path of `target` (origin-form `/p?q` or absolute-form `http://h/p?q`); a
    /// slice of `target` itself when nothing needs normalising (the common case, no copy).
    public static func routingPath(of target: String) -> Substring {
        var utf8 = Substring(target).utf8[...]
        // absolute-form: skip "scheme://authority".
        if let first = utf8.first, first != UInt8(ascii: "/") {
            if let schemeEnd = utf8.firstRange(of: "://".utf8) {
                let afterAuthority = utf8[schemeEnd.upperBound...]
                utf8 = afterAuthority.firstIndex(of: UInt8(ascii: "/")).map { afterAuthority[$0...] } ?? "/".utf8[...]
            }
        }
        if let end = utf8.firstIndex(where: { $0 == UInt8(ascii: "?") || $0 == UInt8(ascii: "#") }) {
            utf8 = utf8[..<end]
        }
        if utf8.isEmpty { return "/" }
        if !utf8.contains(UInt8(ascii: "%")) && !self.mayHaveDotSegment(utf8) {
            return Substring(utf8)
        }
        let decoded = self.decodeUnreserved(utf8)
        return Substring(String(decoding: self.removeDotSegments(decoded), as: UTF8.self))
    }

    private static func mayHaveDotSegment(_ path: Substring.UTF8View.SubSequence) -> Bool {
        var previous = UInt8(ascii: "/")
        for byte in path {
            if byte == UInt8(ascii: ".") && previous == UInt8(ascii: "/") { return true }
            previous = byte
        }
        return false
    }

    /// Decodes `%XX` only where XX is an unreserved character (ALPHA / DIGIT / - . _ ~).
    static func decodeUnreserved(_ path: Substring.UTF8View.SubSequence) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(path.count)
        var index = path.startIndex
        while index < path.endIndex {
            let byte = path[index]
            if byte == UInt8(ascii: "%"), path.distance(from: index, to: path.endIndex) >= 3,
                let high = URIBytes.hexValue(path[path.index(index, offsetBy: 1)]),
                let low = URIBytes.hexValue(path[path.index(index, offsetBy: 2)])
            {
                let decoded = high << 4 | low
                if URIBytes.isUnreserved(decoded) {
                    out.append(decoded)
                    index = path.index(index, offsetBy: 3)
                    continue
                }
            }
            out.append(byte)
            index = path.index(after: index)
        }
        return out
    }

    /// RFC 3986 5.2.4, on a path that starts with "/".
    static func removeDotSegments(_ input: [UInt8]) -> [UInt8] {
        var segments: [ArraySlice<UInt8>] = []
        let parts = input.split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: false)
        // parts[0] is the empty string before the leading "/".
        var trailingSlash = false
        for (offset, part) in parts.enumerated().dropFirst() {
            let isLast = offset == parts.count - 1
            if part.elementsEqual(".".utf8) {
                trailingSlash = isLast
            } else if part.elementsEqual("..".utf8) {
                if !segments.isEmpty { segments.removeLast() }
                trailingSlash = isLast
            } else {
                segments.append(part)
                trailingSlash = false
            }
        }
        var out: [UInt8] = []
        out.reserveCapacity(input.count)
        for segment in segments {
            out.append(UInt8(ascii: "/"))
            out.append(contentsOf: segment)
        }
        if trailingSlash || out.isEmpty { out.append(UInt8(ascii: "/")) }
        return out
    }
}
