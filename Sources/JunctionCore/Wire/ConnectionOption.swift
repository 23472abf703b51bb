/// One option of a `Connection` header (RFC 9110 7.6.1): the three standard ones, or the name of
/// a header it makes hop-by-hop.
///
/// Read byte by byte: every proxied request and response has a `Connection` header, and walking it
/// as `Character`s (grapheme breaking, `split`) was 3% of an HTTP/2 request's CPU.
enum ConnectionOption: Equatable {
    case close, keepAlive, upgrade
    /// A header name the sender lists as hop-by-hop, as written (a slice of the header's value).
    case named(Substring)

    /// Calls `body` with each non-empty comma-separated option of `value`, without its optional
    /// whitespace.
    @inline(__always)
    static func forEach(in value: String, _ body: (ConnectionOption) -> Void) {
        let bytes = value.utf8
        var start = bytes.startIndex
        let end = bytes.endIndex
        while start < end {
            var next = start
            while next < end, bytes[next] != UInt8(ascii: ",") { next = bytes.index(after: next) }
            var low = start
            var high = next
            while low < high, bytes[low] == UInt8(ascii: " ") || bytes[low] == UInt8(ascii: "\t") {
                low = bytes.index(after: low)
            }
            while low < high {
                let last = bytes[bytes.index(before: high)]
                guard last == UInt8(ascii: " ") || last == UInt8(ascii: "\t") else { break }
                high = bytes.index(before: high)
            }
            if low < high {
                // Commas, spaces and tabs are ASCII: the slice's ends are on scalar boundaries.
                let option = bytes[low..<high]
                if option.equalsLowercase("close") {
                    body(.close)
                } else if option.equalsLowercase("keep-alive") {
                    body(.keepAlive)
                } else if option.equalsLowercase("upgrade") {
                    body(.upgrade)
                } else {
                    body(.named(Substring(option)))
                }
            }
            start = next < end ? bytes.index(after: next) : end
        }
    }
}
