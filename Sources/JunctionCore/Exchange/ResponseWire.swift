import NIOCore
import NIOHTTP1

/// Where a request's response goes: an HTTP/1.1 connection (`HTTP1Front.Wire`) or an HTTP/2
/// stream (`NGHTTP2ConnectionHandler.StreamWire`). Its one caller is the request's owner
/// (`ProxyRequest`), on the connection's event loop; the front behind it keeps the protocol's
/// framing and connection rules, and nothing else.
protocol ResponseWire {
    /// The response head (the backend's, or Junction's own answer), rewritten for the client; not
    /// flushed.
    func writeHead(_ head: HTTPResponseHead, _ details: ResponseDetails)
    /// Body bytes in the wire's framing. Returns whether the client takes more now: when it does
    /// not, the owner stops reading the upstream until the front says it does again.
    func writeBody(_ bytes: ByteBuffer) -> Bool
    /// The response is whole, or became a tunnel; the wire is the owner's no longer.
    func writeEnd(_ end: ResponseEnd)
    /// The response cannot be completed: cut it, so the client does not take it for whole.
    func reset()
    /// The upstream side moved on (a read burst ended, or it takes more of the request's body):
    /// push what was written and go on reading the request if the owner can take it.
    func flush()
}

/// What the wire needs to know about a response head beyond the head itself.
struct ResponseDetails {
    /// Returned to the client as X-Request-ID.
    var requestID: String
    /// The response has no body (HEAD, 1xx, 204, 304).
    var bodyless: Bool
    /// An affinity cookie the response carries.
    var setCookie: String? = nil
    /// Junction compresses the body (the head announces gzip).
    var gzip = false
    /// The request asked for (or needs) the end of the connection after this response: HTTP/1.1
    /// only, where it adds `Connection: close`.
    var closeConnection = false
    /// The route's `response_headers` (nil: none configured, or no route).
    var rules: ResponseHeaderRules? = nil
}

/// How a response ends on the wire.
enum ResponseEnd {
    /// Whole, with the backend's trailers if any.
    case complete(trailers: HTTPHeaders?)
    /// The backend accepted a WebSocket: the wire answers the client (101, or HTTP/2's 200) and
    /// builds the tunnel's client end around what it is handed.
    case tunnel(TunnelHandover)
}

/// What a WebSocket upgrade hands from the request's owner to its front: the upstream connection
/// (its channel becomes the tunnel's upstream end), the tunnel's ledger (the lease on the backend
/// among it) and the backend's 101.
struct TunnelHandover {
    let upstream: UpstreamConnection
    let ledger: TunnelLedger
    let head: HTTPResponseHead
    let requestID: String
    /// The route's `response_headers`, for the 101 (HTTP/1.1) or the 200 (RFC 8441).
    let rules: ResponseHeaderRules?
}
