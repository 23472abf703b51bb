import NIOHTTP1

/// When a response is gzipped on a `compress: true` route: the client accepts gzip, the upstream
/// left it uncompressed, it has a body worth compressing (1 KiB or more, or of unknown length) of a
/// compressible type, and it is not an event stream or a tunnel.
enum CompressionPolicy {
    /// Responses smaller than this gain nothing from gzip.
    static let minimumLength = 1024

    /// Whether to gzip `head`'s body for a request with `acceptEncoding` on a route with `compress`.
    static func shouldCompress(
        _ head: HTTPResponseHead,
        compress: Bool,
        acceptEncoding: String?,
        bodyless: Bool
    ) -> Bool {
        guard compress, !bodyless, let acceptEncoding, self.acceptsGzip(acceptEncoding[...]) else { return false }
        return self.shouldCompress(HTTPResponseHeadFields(head), bodyless: bodyless)
    }

    /// Whether an Accept-Encoding value allows gzip (`gzip` or `*`, not with `q=0`).
    static func acceptsGzip(_ value: Substring) -> Bool {
        for item in value.split(separator: ",") {
            let parts = item.split(separator: ";")
            guard let coding = parts.first?.trimmingOWS(), coding.equalsCaseInsensitive("gzip") || coding == "*" else {
                continue
            }
            let zero = parts.dropFirst().contains { parameter in
                let trimmed = parameter.trimmingOWS().lowercased()
                return trimmed.hasPrefix("q=") && (Double(trimmed.dropFirst(2)) ?? 1) == 0
            }
            if !zero { return true }
        }
        return false
    }

    /// Whether `head` (the upstream's) should be gzipped for a client that accepts it.
    static func shouldCompress(_ head: HTTPResponseHeadFields, bodyless: Bool) -> Bool {
        guard !bodyless, (200..<300).contains(head.status), head.status != 204, head.status != 206 else { return false }
        guard head.contentEncoding == nil else { return false }
        if let length = head.contentLength, length < Self.minimumLength { return false }
        if let cacheControl = head.cacheControl, cacheControl.lowercased().contains("no-transform") { return false }
        guard let type = head.contentType?.split(separator: ";").first?.trimmingOWS().lowercased() else { return false }
        if type == "text/event-stream" { return false }
        return type.hasPrefix("text/") || Self.compressibleTypes.contains(type) || type.hasSuffix("+json")
            || type.hasSuffix("+xml")
    }

    static let compressibleTypes: Set<String> = [
        "application/json", "application/javascript", "application/x-javascript", "application/xml",
        "image/svg+xml", "application/wasm", "application/manifest+json",
    ]
}

/// The fields of a response head the compression decision looks at.
struct HTTPResponseHeadFields {
    var status: Int
    var contentEncoding: String?
    var contentLength: Int?
    var contentType: String?
    var cacheControl: String?

    init(
        status: Int,
        contentEncoding: String? = nil,
        contentLength: Int? = nil,
        contentType: String? = nil,
        cacheControl: String? = nil
    ) {
        self.status = status
        self.contentEncoding = contentEncoding
        self.contentLength = contentLength
        self.contentType = contentType
        self.cacheControl = cacheControl
    }

    init(_ head: HTTPResponseHead) {
        self.status = Int(head.status.code)
        // `identity` is no coding at all.
        self.contentEncoding = head.headers.first(name: "content-encoding").flatMap {
            $0.trimmingOWS().equalsCaseInsensitive("identity") ? nil : $0
        }
        self.contentLength = head.headers.first(name: "content-length").flatMap { Int($0.trimmingOWS()) }
        self.contentType = head.headers.first(name: "content-type")
        self.cacheControl = head.headers.first(name: "cache-control")
    }
}
