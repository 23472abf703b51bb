import NIOCore
import NIOHTTP1

/// What a request does, decided from its head when it is made (routing is pure): Junction's own
/// answer, a redirect to HTTPS, or proxying to a route's pool with the rewritten upstream head.
enum RequestPlan {
    /// Junction answers itself; `close`: the connection ends after the answer (HTTP/1.1).
    case answer(ProxyFailure, close: Bool)
    /// `redirect_https`: a 308 to this location.
    case redirect(String)
    /// An ACME http-01 validation: 200 with this key authorization.
    case challengeAnswer(String)
    /// Proxied to the route's pool with this upstream head.
    case proxy(Route, headBytes: ByteBuffer)
    /// A per-client limit refused it on its route: Junction answers `failure` (429).
    case limited(Route, ProxyFailure, ClientLimits.Reason)

    /// The plan for a checked head, in the order the contract sets: an ACME http-01 challenge
    /// this process answers first, then `redirect_https`, then
    /// the body limit (a declared length over `limits.max_body_bytes` is 413 before any of it is
    /// read), then the route table (404 without a match), then the per-client limits
    /// (`ClientLimits`: the request rate, the route's rate, then for a WebSocket the count of open
    /// ones; 429). With a route comes the backend its affinity asks for, and for a WebSocket the
    /// client's count it holds (released when the request or its tunnel ends).
    static func make(
        head: HTTPRequestHead,
        facts: RequestFacts,
        listener: ListenerIdentity,
        client: String,
        clientKey: ClientKey?,
        requestID: String,
        loop: LoopContext
    ) -> (RequestPlan, AffinityChoice, ClientSlot?) {
        let runtime = loop.runtime
        // An absolute-form target is routed (and forwarded) in origin-form, by its authority.
        let target = facts.originForm ?? head.uri
        if let challenges = listener.challenges, let token = ACMEChallengePath.token(in: target),
            let answer = challenges.httpAnswer(token: token)
        {
            return (.challengeAnswer(answer), .none, nil)
        }
        if let port = listener.redirectHTTPSPort {
            return (.redirect(HTTPSRedirect.location(host: facts.host, port: port, target: target)), .none, nil)
        }
        if case .contentLength(let length) = facts.framing, runtime.limits.maxBodyBytes > 0,
            length > runtime.limits.maxBodyBytes
        {
            return (.answer(.bodyTooLarge, close: true), .none, nil)
        }
        guard let route = runtime.routes.route(hostHeader: facts.host, target: target) else {
            return (.answer(.noRoute, close: false), .none, nil)
        }
        var tunnel: ClientSlot?
        if let clientKey, runtime.clientLimits.isOn || route.limit != nil {
            switch Self.limit(route: route, client: clientKey, isTunnel: facts.isWebSocketUpgrade, runtime.clientLimits)
            {
            case .admitted(let slot): tunnel = slot
            case .refused(let failure, let reason): return (.limited(route, failure, reason), .none, nil)
            }
        }
        let affinity =
            route.pool.affinity == .none
            ? AffinityChoice.none
            : AffinityChoice.make(
                policy: route.pool.affinity,
                path: PathNormalizer.routingPath(of: target),
                headers: head.headers,
                poolName: route.pool.name
            )
        let headBytes = HeaderRewriter.upstreamRequestBytes(
            head,
            facts: facts,
            clientAddress: client,
            scheme: listener.scheme,
            requestID: requestID,
            defaultHost: listener.authority,
            allocator: loop.allocator
        )
        return (.proxy(route, headBytes: headBytes), affinity, tunnel)
    }

    /// What the per-client limits say of a request of `client` on `route`.
    private enum LimitDecision {
        case admitted(ClientSlot?)
        case refused(ProxyFailure, ClientLimits.Reason)
    }

    private static func limit(
        route: Route,
        client: ClientKey,
        isTunnel: Bool,
        _ limits: ClientLimits
    ) -> LimitDecision {
        if limits.rates != nil || route.limit != nil {
            let now = NIODeadline.now().uptimeNanoseconds
            if let wait = limits.takeRequest(of: client, now: now) {
                return .refused(
                    .tooManyRequests(.requestRate, retryAfter: RateBucket.retryAfterSeconds(wait)),
                    .requests
                )
            }
            if let limit = route.limit, let wait = limit.rates.take(for: client, bucket: limit.bucket, now: now) {
                return .refused(
                    .tooManyRequests(.routeRate(route.name), retryAfter: RateBucket.retryAfterSeconds(wait)),
                    .requests
                )
            }
        }
        guard isTunnel else { return .admitted(nil) }
        switch limits.admitTunnel(of: client) {
        case .admitted(let slot): return .admitted(slot)
        case .refused: return .refused(.tooManyRequests(.tunnels, retryAfter: nil), .tunnels)
        }
    }
}
