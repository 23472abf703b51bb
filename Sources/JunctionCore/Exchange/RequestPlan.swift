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

    /// The plan for a checked head, in the order the contract sets: an ACME http-01 challenge
    /// this process answers first, then `redirect_https`, then
    /// the body limit (a declared length over `limits.max_body_bytes` is 413 before any of it is
    /// read), then the route table (404 without a match). With a route comes the backend its
    /// affinity asks for.
    static func make(
        head: HTTPRequestHead,
        facts: RequestFacts,
        listener: ListenerIdentity,
        client: String,
        requestID: String,
        loop: LoopContext
    ) -> (RequestPlan, AffinityChoice) {
        let runtime = loop.runtime
        // An absolute-form target is routed (and forwarded) in origin-form, by its authority.
        let target = facts.originForm ?? head.uri
        if let challenges = listener.challenges, let token = ACMEChallengePath.token(in: target),
            let answer = challenges.httpAnswer(token: token)
        {
            return (.challengeAnswer(answer), .none)
        }
        if let port = listener.redirectHTTPSPort {
            return (.redirect(HTTPSRedirect.location(host: facts.host, port: port, target: target)), .none)
        }
        if case .contentLength(let length) = facts.framing, runtime.limits.maxBodyBytes > 0,
            length > runtime.limits.maxBodyBytes
        {
            return (.answer(.bodyTooLarge, close: true), .none)
        }
        guard let route = runtime.routes.route(hostHeader: facts.host, target: target) else {
            return (.answer(.noRoute, close: false), .none)
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
        return (.proxy(route, headBytes: headBytes), affinity)
    }
}
