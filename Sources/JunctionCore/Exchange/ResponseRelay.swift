import NIOCore
import NIOHTTP1

/// The response side of one request, as values: the access-log record, the request-body limit,
/// whether the response has a body, gzip from start to finish, and the log line written exactly
/// once (499 when the client left before any answer). Its owner (`ProxyRequest`) writes what it
/// decides through the request's front.
struct ResponseRelay {
    /// What the access log will say.
    private(set) var record: AccessRecord
    /// The request's method (HEAD responses have no body).
    let method: HTTPMethod
    /// The request's Accept-Encoding, for a `compress: true` route.
    private let acceptEncoding: String?
    /// The route the request took, once dispatched.
    private(set) var route: Route?
    /// Compresses the response body when the route and the response allow it.
    private var gzip: GzipEncoder?
    /// Whether the response carries no body (HEAD, 1xx, 204, 304).
    private(set) var bodyless = false
    /// Whether a response head (the backend's or Junction's own) has gone out.
    private(set) var started = false
    /// Whether the log line was written.
    private(set) var logged = false

    init(record: AccessRecord, method: HTTPMethod, acceptEncoding: String?) {
        self.record = record
        self.method = method
        self.acceptEncoding = acceptEncoding
    }

    /// The request was dispatched to `route`.
    mutating func routed(_ route: Route) {
        self.route = route
        self.record.route = route.name
        self.record.pool = route.pool.name
    }

    /// `bytes` more of the request body arrived. False once the body is past `limit` (0: none).
    mutating func requestBodyArrived(_ bytes: Int, limit: Int64) -> Bool {
        self.record.bytesIn += Int64(bytes)
        return limit <= 0 || self.record.bytesIn <= limit
    }

    /// The backend's response head arrived: the client's response starts. Returns whether its
    /// body is gzipped.
    mutating func upstreamHead(_ head: HTTPResponseHead, backend: Backend, budget: GzipBudget) -> Bool {
        self.bodyless =
            self.method == .HEAD || head.status == .noContent || head.status == .notModified || head.status.code < 200
        self.gzip = CompressionPolicy.encoder(
            for: head,
            route: self.route,
            acceptEncoding: self.acceptEncoding,
            bodyless: self.bodyless,
            budget: budget
        )
        self.started = true
        self.record.status = head.status.code
        self.record.upstreamTime = .now() - self.record.start
        self.record.backend = backend.label
        return self.gzip != nil
    }

    /// What to do with a part of the backend's response body.
    enum BodyAction {
        /// Write these bytes (the part itself, or what gzip made of it; may be empty).
        case write(ByteBuffer)
        /// Nothing (a bodyless response).
        case skip
        /// zlib failed: cut the response, the client must not take a partial body as whole.
        case cut
    }

    /// A part of the backend's response body; counted as sent.
    mutating func upstreamBody(_ part: ByteBuffer, allocator: ByteBufferAllocator) -> BodyAction {
        if self.bodyless { return .skip }
        guard let gzip = self.gzip else {
            self.record.bytesOut += Int64(part.readableBytes)
            return .write(part)
        }
        guard let compressed = gzip.compress(part, allocator: allocator) else { return self.compressionFailed() }
        self.record.bytesOut += Int64(compressed.readableBytes)
        return .write(compressed)
    }

    /// The backend's response ended: what is left to write before the end (gzip's tail).
    mutating func upstreamEnd(allocator: ByteBufferAllocator) -> BodyAction {
        guard let gzip = self.gzip else { return .skip }
        self.gzip = nil
        guard let tail = gzip.finish(allocator: allocator) else { return self.compressionFailed() }
        self.record.bytesOut += Int64(tail.readableBytes)
        return .write(tail)
    }

    private mutating func compressionFailed() -> BodyAction {
        self.gzip = nil
        return .cut
    }

    /// Junction answers the request itself with `status` and a body of `bodyBytes` (not sent for
    /// HEAD). False when a response already started (nothing may be sent then).
    mutating func answer(status: UInt, bodyBytes: Int) -> Bool {
        guard !self.started else { return false }
        self.started = true
        self.record.status = status
        if self.method != .HEAD { self.record.bytesOut = Int64(bodyBytes) }
        return true
    }

    /// The exchange failed on `backend` (nil: none was reached) before a response started.
    mutating func failed(on backend: Backend?) {
        self.record.backend = backend?.label
    }

    /// The backend accepted a WebSocket upgrade: the record becomes the tunnel's, logged when the
    /// tunnel closes (`status`: what the client is told, 101 or HTTP/2's 200).
    mutating func tunnelOpened(status: UInt, backend: Backend) -> AccessRecord {
        self.started = true
        self.logged = true
        self.record.status = status
        self.record.upstreamTime = .now() - self.record.start
        self.record.backend = backend.label
        self.record.isTunnel = true
        return self.record
    }

    /// The response is complete, or was cut: the log line, once.
    mutating func finish(on loop: LoopContext) {
        guard !self.logged else { return }
        self.logged = true
        loop.requestFinished(self.record)
    }

    /// The client went away with the request in flight: 499 (as nginx logs it) when no response
    /// had started, and the log line.
    mutating func clientGone(on loop: LoopContext) {
        if !self.started { self.record.status = 499 }
        self.finish(on: loop)
    }
}
