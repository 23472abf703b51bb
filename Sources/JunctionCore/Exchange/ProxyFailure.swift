import NIOHTTP1

/// Why Junction answers a request itself instead of relaying the upstream's answer.
///
/// Where the failure came from decides the status: the client (4xx) or the upstream side (5xx).
public enum ProxyFailure: Error, Equatable, Sendable {
    /// Malformed request (400).
    case badRequest(String)
    /// No route matched (404).
    case noRoute
    /// The request head did not arrive in time (408).
    case headerTimeout
    /// The body is larger than `limits.max_body_bytes` (413).
    case bodyTooLarge
    /// The head is larger than `limits.max_header_bytes` (431).
    case headersTooLarge
    /// No backend could be reached, or it answered garbage (502).
    case badGateway(String)
    /// A per-client limit refused the request (429); `retryAfter`: seconds until it would not.
    case tooManyRequests(Limit, retryAfter: Int?)
    /// Every backend of the pool is down (503).
    case noHealthyBackend(pool: String, retryAfter: Int64)
    /// The backend did not start answering within `timeouts.response` (504).
    case upstreamTimeout(pool: String)

    /// Which per-client limit a 429 is for.
    public enum Limit: Equatable, Sendable {
        /// `limits.per_client.requests_per_second`.
        case requestRate
        /// The route's `limit`.
        case routeRate(String)
        /// `limits.per_client.max_tunnels`.
        case tunnels
    }

    /// The status code sent to the client.
    public var status: HTTPResponseStatus {
        switch self {
        case .badRequest: return .badRequest
        case .noRoute: return .notFound
        case .headerTimeout: return .requestTimeout
        case .bodyTooLarge: return .payloadTooLarge
        case .headersTooLarge: return .requestHeaderFieldsTooLarge
        case .tooManyRequests: return .tooManyRequests
        case .badGateway: return .badGateway
        case .noHealthyBackend: return .serviceUnavailable
        case .upstreamTimeout: return .gatewayTimeout
        }
    }

    /// The reason, in words, for the body and the log.
    public var reason: String {
        switch self {
        case .badRequest(let detail): return "malformed request: \(detail)"
        case .noRoute: return "no route matches this request"
        case .headerTimeout: return "the request head did not arrive in time"
        case .bodyTooLarge: return "the request body exceeds limits.max_body_bytes"
        case .headersTooLarge: return "the request head exceeds limits.max_header_bytes"
        case .tooManyRequests(.requestRate, _):
            return "this client exceeds limits.per_client.requests_per_second"
        case .tooManyRequests(.routeRate(let route), _):
            return "this client exceeds the request rate limit of route \(route)"
        case .tooManyRequests(.tunnels, _):
            return "this client has limits.per_client.max_tunnels WebSockets open"
        case .badGateway(let detail): return detail
        case .noHealthyBackend(let pool, _): return "no healthy backend in pool \(pool)"
        case .upstreamTimeout(let pool): return "a backend of pool \(pool) did not answer in time"
        }
    }

    /// The one-line text/plain body, e.g.
    /// `503 Service Unavailable: no healthy backend in pool ddp-streamer (request 1f3a...)`.
    public func body(requestID: String) -> String {
        "\(self.status.code) \(self.status.reasonPhrase): \(self.reason) (request \(requestID))\n"
    }

    /// The response head for this failure, as a backend's would be: the wire adds X-Request-ID and
    /// what its protocol needs (the status line's version, `Connection`).
    public func responseHead(bodyLength: Int) -> HTTPResponseHead {
        var headers = HTTPHeaders()
        headers.reserveCapacity(3)
        headers.add(name: "Content-Type", value: "text/plain; charset=utf-8")
        headers.add(name: "Content-Length", value: String(bodyLength))
        switch self {
        case .noHealthyBackend(_, let retryAfter):
            headers.add(name: "Retry-After", value: String(retryAfter))
        case .tooManyRequests(_, .some(let retryAfter)):
            headers.add(name: "Retry-After", value: String(retryAfter))
        default:
            break
        }
        return HTTPResponseHead(version: .http1_1, status: self.status, headers: headers)
    }
}
