import NIOHTTP1

/// When a response is gzipped on a `compress: true` route: the client accepts gzip, the upstream
/// left it uncompressed, it has a body worth compressing (1 KiB or more, or of unknown length) of a
/// compressible type, and it is not an event stream or a tunnel.
enum CompressionPolicy {
    /// Responses smaller than this gain nothing from gzip.
    static let minimumLength = 1024

    /// The encoder for `head`'s body when it is to be gzipped: the route compresses, the client
    /// accepts gzip, the response qualifies and the loop's budget has room; nil otherwise.
    static func encoder(
        for head: HTTPResponseHead,
        route: Route?,
        acceptEncoding: String?,
        bodyless: Bool,
        budget: GzipBudget
    ) -> GzipEncoder? {
        guard route?.compress == true, self.shouldCompress(head, acceptEncoding: acceptEncoding, bodyless: bodyless)
        else { return nil }
        return GzipEncoder(budget: budget)
    }

    /// Whether `head`'s body should be gzipped for a request with `acceptEncoding`.
    static func shouldCompress(_ head: HTTPResponseHead, acceptEncoding: String?, bodyless: Bool) -> Bool {
        guard !bodyless, let acceptEncoding, self.acceptsGzip(acceptEncoding[...]) else { return false }
        return self.shouldCompress(HTTPResponseHeadFields(head), bodyless: bodyless)
    }

    /// Whether an Accept-Encoding value allows gzip: a `gzip` item decides by its weight (`q=0`
    /// refuses), else a `*` item does (RFC 9110 12.5.3).
    static func acceptsGzip(_ value: Substring) -> Bool {
        var gzip: Bool?
        var wildcard: Bool?
        for item in value.split(separator: ",") {
            let parts = item.split(separator: ";")
            guard let coding = parts.first?.trimmingOWS() else { continue }
            let accepted = !parts.dropFirst().contains { parameter in
                let trimmed = parameter.trimmingOWS().lowercased()
                return trimmed.hasPrefix("q=") && (Double(trimmed.dropFirst(2)) ?? 1) == 0
            }
            if coding.equalsCaseInsensitive("gzip") {
                gzip = (gzip ?? false) || accepted
            } else if coding == "*" {
                wildcard = (wildcard ?? false) || accepted
            }
        }
        return gzip ?? wildcard ?? false
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
