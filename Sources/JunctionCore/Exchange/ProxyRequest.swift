import NIOCore
import NIOHTTP1

/// A client request, whichever protocol it arrived on, ready to be proxied. Both fronts (HTTP/1.1
/// and HTTP/2) build one and call `dispatch`, so limits, routing, header rewriting and the exchange
/// are one implementation.
struct ProxyRequest {
    /// The head in HTTP/1.1 form (an HTTP/2 request is converted: `:authority` became Host).
    var head: HTTPRequestHead
    /// What the checks found (framing, Host, upgrade, request id...).
    var facts: RequestFacts
    /// The id sent upstream, logged and returned.
    var requestID: String

    /// What `dispatch` set up: the matched route and an exchange, not started yet (the caller keeps a
    /// reference first, because starting may already call back with a failure).
    struct Dispatched {
        let route: Route
        let exchange: ProxyExchange
    }

    /// Applies the body limit, matches a route and prepares the exchange to its pool.
    func dispatch(
        runtime: RuntimeConfig,
        loop: LoopContext,
        listener: ListenerIdentity,
        clientAddress: String,
        delegate: any ProxyExchangeDelegate
    ) -> Result<Dispatched, ProxyFailure> {
        if case .contentLength(let length) = self.facts.framing, runtime.limits.maxBodyBytes > 0,
            length > runtime.limits.maxBodyBytes
        {
            return .failure(.bodyTooLarge)
        }
        // An absolute-form target is routed (and forwarded) in origin-form, by its authority.
        let target = self.facts.originForm ?? self.head.uri
        guard let route = runtime.routes.route(hostHeader: self.facts.host, target: target) else {
            return .failure(.noRoute)
        }
        let affinity =
            route.pool.affinity == .none
            ? AffinityChoice.none
            : AffinityChoice.make(
                policy: route.pool.affinity,
                path: PathNormalizer.routingPath(of: target),
                headers: self.head.headers,
                poolName: route.pool.name
            )
        let headBytes = HeaderRewriter.upstreamRequestBytes(
            self.head,
            facts: self.facts,
            clientAddress: clientAddress,
            scheme: listener.scheme,
            requestID: self.requestID,
            defaultHost: listener.authority,
            allocator: loop.allocator
        )
        let exchange = ProxyExchange(
            loop: loop,
            pool: route.pool,
            headBytes: headBytes,
            method: self.head.method,
            framing: self.facts.framing,
            isUpgrade: self.facts.isWebSocketUpgrade,
            affinity: affinity,
            secure: listener.scheme == "https",
            delegate: delegate
        )
        return .success(Dispatched(route: route, exchange: exchange))
    }
}
