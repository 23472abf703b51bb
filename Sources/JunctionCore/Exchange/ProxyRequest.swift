import NIOCore
import NIOHTTP1
import NIOWebSocket

/// One client request, whichever front it came on (an HTTP/1.1 connection or an HTTP/2 stream),
/// from its head to the end of its response: the one owner of what the request decides.
///
/// Its front makes it from the head and feeds it the body and the end. It routes when it is made
/// (routing is pure), picks a backend (retrying others on failure), takes a pooled upstream
/// connection or dials one, streams the request out and the response back with backpressure both
/// ways, and decides everything about the response: the access record, the body limit, gzip,
/// Junction's own answers and the hand-over to a tunnel. It writes through its front's
/// `ResponseWire`; the upstream connection reports to it as its `ResponseSink`.
///
/// Every call happens on the connection's event loop. Once cancelled (the client went away) or
/// ended, it never touches the wire again: by then the front may be gone.
final class ProxyRequest: ResponseSink, DeadlineTracked {
    /// A part of the request body waiting for a connection.
    private enum PendingPart {
        case body(ByteBuffer)
        case end(HTTPHeaders?)
    }

    private let loop: LoopContext
    private let wire: any ResponseWire
    private let plan: RequestPlan
    private let facts: RequestFacts
    private let method: HTTPMethod
    /// The Sec-WebSocket-Key Junction sent for an RFC 8441 CONNECT (it checks the backend's accept).
    private let webSocketKey: String?
    /// The listener's name, for log lines.
    private let listenerName: String
    /// Whether the client connection is TLS (affinity cookies get `Secure`).
    private let secure: Bool
    /// The backend the request's affinity asks for.
    private let affinity: AffinityChoice
    private var relay: ResponseRelay
    private var machine: ExchangeStateMachine

    /// Body parts received before a connection was ready (bounded: the client is not read meanwhile).
    private var pending: [PendingPart] = []
    private var upstream: UpstreamConnection?
    /// The backend's active count while this request uses it.
    private var lease: BackendLease?
    /// A WebSocket's place in its client's `max_tunnels`, held until the request ends or, once
    /// it is a tunnel, by the tunnel.
    private var tunnelHold: ClientHold?
    /// The backend of the latest attempt; with `earlierTried`, the backends retries avoid. Kept
    /// apart so that a request that is not retried allocates no array.
    private var lastTried: Backend?
    /// Backends of the attempts before the latest.
    private var earlierTried: [Backend] = []
    /// Cleared when the client goes away or the response ended: the wire is not ours after.
    private var wireOpen = true

    var deadline: NIODeadline = .distantFuture
    var sweeperSlot = -1

    /// A request whose head the front parsed and checked (`facts`). `webSocketKey`: the key of an
    /// RFC 8441 CONNECT turned into an HTTP/1.1 upgrade (logged as CONNECT, as the client sent it).
    convenience init(
        loop: LoopContext,
        wire: any ResponseWire,
        listener: ListenerIdentity,
        client: String,
        clientKey: ClientKey? = nil,
        head: HTTPRequestHead,
        facts: RequestFacts,
        webSocketKey: String? = nil
    ) {
        let requestID = facts.requestID ?? loop.nextRequestID()
        let (plan, affinity, tunnelSlot) = RequestPlan.make(
            head: head,
            facts: facts,
            listener: listener,
            client: client,
            clientKey: clientKey,
            requestID: requestID,
            loop: loop
        )
        self.init(
            loop: loop,
            wire: wire,
            listener: listener,
            client: client,
            head: head,
            requestID: requestID,
            facts: facts,
            plan: plan,
            affinity: affinity,
            webSocketKey: webSocketKey
        )
        if let tunnelSlot { self.tunnelHold = ClientHold(tunnelSlot) }
    }

    /// A request Junction refuses before it could be routed (a malformed head, a header timeout):
    /// `failure` is the answer; `close`: the connection ends after it.
    convenience init(
        loop: LoopContext,
        wire: any ResponseWire,
        listener: ListenerIdentity,
        client: String,
        refusing failure: ProxyFailure,
        close: Bool,
        method: HTTPMethod = .GET,
        target: String = "-",
        version: HTTPVersion = .http1_1
    ) {
        self.init(
            loop: loop,
            wire: wire,
            listener: listener,
            client: client,
            head: HTTPRequestHead(version: version, method: method, uri: target),
            requestID: loop.nextRequestID(),
            facts: RequestFacts(),
            plan: .answer(failure, close: close),
            affinity: .none,
            webSocketKey: nil
        )
    }

    private init(
        loop: LoopContext,
        wire: any ResponseWire,
        listener: ListenerIdentity,
        client: String,
        head: HTTPRequestHead,
        requestID: String,
        facts: RequestFacts,
        plan: RequestPlan,
        affinity: AffinityChoice,
        webSocketKey: String?
    ) {
        let record = AccessRecord(
            client: client,
            listener: listener.name,
            // The log shows what the client sent: CONNECT for an RFC 8441 WebSocket.
            method: webSocketKey == nil ? head.method : .CONNECT,
            target: head.uri,
            version: head.version,
            requestID: requestID,
            facts: facts
        )
        let method = head.method
        self.loop = loop
        self.wire = wire
        self.plan = plan
        self.facts = facts
        self.method = method
        self.webSocketKey = webSocketKey
        self.listenerName = listener.name
        self.secure = listener.scheme == "https"
        self.affinity = affinity
        self.relay = ResponseRelay(record: record, method: method, acceptEncoding: facts.acceptEncoding)
        if case .limited(let route, _, let reason) = plan {
            // Its route's: the record names it and the answer carries its response headers.
            self.relay.routed(route)
            loop.metrics?.limited(listener: listener.name, reason: reason)
        }
        if case .proxy(let route, _) = plan {
            self.relay.routed(route)
            self.machine = ExchangeStateMachine(
                retries: route.pool.retries,
                replayable: facts.framing == .none && method.isIdempotent,
                isUpgrade: facts.isWebSocketUpgrade,
                poolName: route.pool.name
            )
        } else {
            self.machine = .notProxied
        }
    }

    deinit {
        // Nothing may keep reporting to a request that is gone (the connection's sink is not retained).
        if let upstream = self.upstream {
            upstream.detach()
            upstream.close()
        }
    }

    private var pool: Pool? {
        if case .proxy(let route, _) = self.plan { return route.pool }
        return nil
    }

    /// The backend that served (or is serving) the request, for the access log.
    private var backend: Backend? { self.lease?.backend ?? self.lastTried }

    // MARK: from the front

    /// Answers, redirects, or picks a backend and starts sending. May write a whole answer to the
    /// wire before it returns.
    func start() {
        switch self.plan {
        case .answer(let failure, let close):
            self.answer(failure, close: close)
        case .limited(_, let failure, _):
            // A refused HTTP/1.1 upgrade leaves the request decoder in upgrade mode: it closes.
            self.answer(failure, close: self.facts.isWebSocketUpgrade)
        case .redirect(let location):
            let body = HTTPSRedirect.body(location: location)
            self.answer(head: HTTPSRedirect.responseHead(location: location), body: body, close: false)
        case .challengeAnswer(let keyAuthorization):
            self.answer(head: ACMEChallengePath.responseHead(keyAuthorization), body: keyAuthorization, close: false)
        case .proxy:
            self.attempt()
        }
    }

    /// Whether an exchange with a backend is under way (HTTP/1.1 answers `Expect: 100-continue`).
    var isProxying: Bool { self.wireOpen && self.machine.isRunning }

    /// Whether the front should go on reading the request's body now.
    var canTakeRequestBody: Bool {
        guard let upstream = self.upstream else { return !self.machine.isConnecting }
        return upstream.isWritable
    }

    /// Bytes of the request body: counted against `limits.max_body_bytes` and sent upstream.
    func requestBody(_ body: ByteBuffer) {
        guard self.wireOpen else { return }
        guard self.relay.requestBodyArrived(body.readableBytes, limit: self.loop.runtime.limits.maxBodyBytes) else {
            self.abandon(.bodyTooLarge)
            return
        }
        if let upstream = self.upstream {
            self.write(body: body, to: upstream)
        } else if self.machine.isConnecting {
            self.pending.append(.body(body))
        }
    }

    /// The request is complete. Flushing waits for the client's read burst to end (`flushRequest`).
    func requestEnded(trailers: HTTPHeaders?) {
        let timer = self.machine.requestEnded()
        if let upstream = self.upstream {
            self.writeEnd(trailers, to: upstream)
            if timer == .arm { self.armResponseTimeout() }
        } else if self.machine.isConnecting {
            self.pending.append(.end(trailers))
        }
    }

    /// The client finished a read burst: push what went upstream.
    func flushRequest() {
        self.upstream?.flush()
    }

    /// The client takes response bytes again: read the upstream again.
    func clientWritable() {
        self.upstream?.resumeReads()
    }

    /// The front cannot go on with this request (a malformed or oversized body): answered with
    /// `failure` (ending the connection) when no response started, else cut.
    func abandon(_ failure: ProxyFailure) {
        guard self.wireOpen else { return }
        self.stopExchange()
        if self.relay.started {
            self.cut()
        } else {
            self.answer(failure, close: true)
        }
    }

    /// The client went away: the exchange stops, the backend is freed, the request is logged (499
    /// when no response had started); the wire is not touched again.
    func cancel() {
        guard self.wireOpen else { return }
        self.wireOpen = false
        self.tunnelHold = nil
        self.stopExchange()
        self.relay.clientGone(on: self.loop)
    }

    // MARK: the response

    /// Junction's own one-line answer for `failure`.
    private func answer(_ failure: ProxyFailure, close: Bool) {
        let body = failure.body(requestID: self.relay.record.requestID)
        self.answer(head: failure.responseHead(bodyLength: body.utf8.count), body: body, close: close)
    }

    private func answer(head: HTTPResponseHead, body: String, close: Bool) {
        guard self.wireOpen, self.relay.answer(status: head.status.code, bodyBytes: body.utf8.count) else { return }
        let bodyless = self.method == .HEAD
        let details = ResponseDetails(
            requestID: self.relay.record.requestID,
            bodyless: bodyless,
            closeConnection: close || self.facts.wantsClose,
            // Junction's own answers on a route carry its headers too (a 404 has no route).
            rules: self.relay.route?.responseHeaders
        )
        self.wire.writeHead(head, details)
        if !bodyless { _ = self.wire.writeBody(self.loop.allocator.buffer(string: body)) }
        self.end(.complete(trailers: nil))
    }

    /// The response is whole (or became a tunnel): its log line, then the wire's end.
    private func end(_ end: ResponseEnd) {
        self.relay.finish(on: self.loop)
        self.wireOpen = false
        self.tunnelHold = nil
        self.wire.writeEnd(end)
    }

    /// The client must not take a partial response as whole: logged, then cut on the wire.
    private func cut() {
        self.relay.finish(on: self.loop)
        self.wireOpen = false
        self.tunnelHold = nil
        self.wire.reset()
    }

    private func responseHead(_ head: HTTPResponseHead) {
        self.disarmResponseTimeout()
        guard case .forward = self.machine.responseHeadReceived(head), let pool = self.pool,
            let backend = self.lease?.backend
        else {
            // An accepted upgrade waits for the 101's end: splicing before it would feed an HTTP
            // part to the tunnel.
            return
        }
        let setCookie = self.affinity.setCookie(for: backend, poolName: pool.name, secure: self.secure)
        let gzip = self.relay.upstreamHead(head, backend: backend, budget: self.loop.gzipBudget)
        guard self.wireOpen else { return }
        let details = ResponseDetails(
            requestID: self.relay.record.requestID,
            bodyless: self.relay.bodyless,
            setCookie: setCookie,
            gzip: gzip,
            // A refused upgrade leaves the HTTP/1.1 request decoder in upgrade mode: the
            // connection cannot go on.
            closeConnection: self.facts.wantsClose || self.facts.isWebSocketUpgrade,
            rules: self.relay.route?.responseHeaders
        )
        self.wire.writeHead(head, details)
    }

    private func responseBody(_ body: ByteBuffer) {
        guard self.wireOpen, self.machine.isStreamingResponse else { return }
        self.write(self.relay.upstreamBody(body, allocator: self.loop.allocator))
    }

    /// Puts what the relay made of a body part on the wire; false when the response was cut.
    @discardableResult
    private func write(_ action: ResponseRelay.BodyAction) -> Bool {
        switch action {
        case .write(let bytes):
            if !self.wire.writeBody(bytes) { self.upstream?.pauseReads() }
            return true
        case .skip:
            return true
        case .cut:
            self.loop.logger.error("gzip failed; the response is cut", metadata: ["listener": "\(self.listenerName)"])
            self.stopExchange()
            self.cut()
            return false
        }
    }

    private func responseEnd(_ trailers: HTTPHeaders?, from upstream: UpstreamConnection) {
        switch self.machine.responseEnded() {
        case .tunnel(let head):
            self.handOver(upstream, head: head)
        case .finish(let reusable):
            self.upstream = nil
            upstream.detach()
            // Pooled before the client side hears of the end: it may start the next request at once.
            if reusable, let pool = self.pool {
                self.loop.connections.release(upstream, idleTimeout: pool.timeouts.idle)
            } else {
                upstream.close()
            }
            self.lease = nil
            guard self.wireOpen, self.write(self.relay.upstreamEnd(allocator: self.loop.allocator)) else { return }
            self.end(.complete(trailers: trailers))
        case .none:
            break
        }
    }

    /// The backend accepted the WebSocket: the upstream connection and the lease go to a tunnel.
    private func handOver(_ upstream: UpstreamConnection, head: HTTPResponseHead) {
        self.upstream = nil
        upstream.detach()
        guard self.wireOpen, let lease = self.lease.take() else {
            upstream.close()
            return
        }
        let backend = lease.backend
        if let key = self.webSocketKey {
            // RFC 8441 puts the HTTP/1.1 handshake on Junction: check the backend's accept for our key.
            let checker = NIOWebSocketClientUpgrader(requestKey: key) { channel, _ in
                channel.eventLoop.makeSucceededVoidFuture()
            }
            guard checker.shouldAllowUpgrade(upgradeResponse: head) else {
                _ = consume lease
                upstream.close()
                self.relay.failed(on: backend)
                self.answer(
                    .badGateway("the backend's Sec-WebSocket-Accept does not match the key Junction sent"),
                    close: false
                )
                return
            }
        }
        // What the client is told: 101 on HTTP/1.1, 200 on an HTTP/2 stream.
        let status: UInt = self.relay.record.version.major == 2 ? 200 : 101
        let record = self.relay.tunnelOpened(status: status, backend: backend)
        let ledger = TunnelLedger(
            loop: self.loop,
            lease: lease,
            hold: self.tunnelHold.take(),
            route: self.relay.route,
            record: record
        )
        self.end(
            .tunnel(
                TunnelHandover(
                    upstream: upstream,
                    ledger: ledger,
                    head: head,
                    requestID: record.requestID,
                    rules: self.relay.route?.responseHeaders
                )
            )
        )
    }

    // MARK: ResponseSink

    func upstreamReceived(_ part: HTTPClientResponsePart) {
        switch part {
        case .head(let head):
            self.responseHead(head)
        case .body(let body):
            self.responseBody(body)
        case .end(let trailers):
            guard let upstream = self.upstream else { return }
            self.responseEnd(trailers, from: upstream)
        }
    }

    func upstreamReadComplete() {
        if self.wireOpen { self.wire.flush() }
    }

    func upstreamWritable() {
        // The front resumes reading the request.
        if self.wireOpen { self.wire.flush() }
    }

    func upstreamClosed(error: Error?) {
        self.upstream = nil
        if error != nil, self.machine.isAwaitingResponse, let backend = self.lease?.backend {
            // A reset before any response byte counts against the backend (a clean close of a
            // reused connection does not: backends close idle keep-alive connections).
            self.loop.logHealth(
                backend,
                backend.recordResetBeforeResponse(),
                reason: "connection reset before a response"
            )
        }
        let reason = error.map(ConnectionFailure.describe) ?? "connection closed"
        self.handle(self.machine.upstreamFailed(reason: reason))
    }

    // MARK: DeadlineTracked: the response timeout

    func deadlinePassed(now: NIODeadline) {
        self.disarmResponseTimeout()
        let action = self.machine.responseTimedOut()
        if let upstream = self.upstream {
            self.upstream = nil
            upstream.detach()
            upstream.close()
        }
        self.handle(action)
    }

    // MARK: the exchange

    private func attempt() {
        guard let pool = self.pool else { return }
        let now = NIODeadline.now()
        if let previous = self.lastTried, !self.earlierTried.contains(where: { $0 === previous }) {
            self.earlierTried.append(previous)
        }
        guard
            let backend = pool.select(
                from: self.loop.members(of: pool.members),
                affinity: self.affinity,
                excluding: self.earlierTried,
                now: now
            )
        else {
            let action = self.machine.noBackend(
                retryAfter: pool.retryAfterSeconds(now: now),
                triedAny: !self.earlierTried.isEmpty
            )
            self.handle(action)
            return
        }
        self.lastTried = backend
        self.lease = BackendLease(backend)
        if let connection = self.loop.connections.takeIdle(for: backend) {
            self.attach(connection)
            return
        }
        self.loop.connections.connect(to: backend, timeout: pool.timeouts.connect)
            .assumeIsolated()
            .whenComplete { result in self.connected(result, to: backend, pool: pool) }
    }

    private func connected(_ result: Result<UpstreamConnection, Error>, to backend: Backend, pool: Pool) {
        let current = self.machine.isConnecting && self.lease?.backend === backend
        switch result {
        case .success(let connection):
            self.loop.logHealth(backend, backend.recordConnectSuccess(), reason: "connected")
            if current {
                self.attach(connection)
            } else {
                // Cancelled while dialling: keep the fresh connection for someone else.
                self.loop.connections.release(connection, idleTimeout: pool.timeouts.idle)
            }
        case .failure(let error):
            guard current else { return }
            let reason = ConnectionFailure.describe(error)
            self.loop.logHealth(backend, backend.recordConnectFailure(at: .now()), reason: reason)
            self.handle(self.machine.connectFailed(reason: reason))
        }
    }

    private func attach(_ connection: UpstreamConnection) {
        guard case .proxy(_, let headBytes) = self.plan else { return }
        self.upstream = connection
        connection.attach(self)
        let timer = self.machine.connected()
        connection.writeHead(headBytes, method: self.method)
        for part in self.pending {
            switch part {
            case .body(let body): self.write(body: body, to: connection)
            case .end(let trailers): self.writeEnd(trailers, to: connection)
            }
        }
        self.pending.removeAll()
        connection.flush()
        if timer == .arm { self.armResponseTimeout() }
        // Reads from the client were held while connecting.
        if self.wireOpen { self.wire.flush() }
    }

    private func write(body: ByteBuffer, to upstream: UpstreamConnection) {
        if self.facts.framing == .chunked {
            upstream.writeBytes(ChunkedCoding.chunkHeader(size: body.readableBytes, allocator: self.loop.allocator))
            upstream.writeBytes(body)
            upstream.writeBytes(ChunkedCoding.crlf)
        } else {
            upstream.writeBytes(body)
        }
    }

    private func writeEnd(_ trailers: HTTPHeaders?, to upstream: UpstreamConnection) {
        guard self.facts.framing == .chunked else { return }
        if let trailers, !trailers.isEmpty {
            upstream.writeBytes(ChunkedCoding.lastChunk(trailers: trailers, allocator: self.loop.allocator))
        } else {
            upstream.writeBytes(ChunkedCoding.lastChunk)
        }
    }

    /// Ends the exchange where it is: the backend is freed, the connection dropped (it is
    /// mid-message).
    private func stopExchange() {
        guard self.machine.cancelled() else { return }
        self.disarmResponseTimeout()
        if let upstream = self.upstream {
            self.upstream = nil
            upstream.detach()
            upstream.close()
        }
        self.lease = nil
    }

    private func handle(_ action: ExchangeStateMachine.FailureAction) {
        if action != .none { self.disarmResponseTimeout() }
        switch action {
        case .retry:
            self.lease = nil
            // A replayed (bodyless) request was drained into the failed connection: its end goes out again.
            if self.machine.requestComplete && self.pending.isEmpty { self.pending.append(.end(nil)) }
            self.attempt()
        case .fail(let failure):
            self.relay.failed(on: self.backend)
            self.lease = nil
            self.answer(failure, close: false)
        case .abort:
            self.lease = nil
            if self.wireOpen { self.cut() }
        case .none:
            break
        }
    }

    private func armResponseTimeout() {
        guard let pool = self.pool else { return }
        self.deadline = .now() + pool.timeouts.response
        self.loop.sweeper.register(self)
    }

    private func disarmResponseTimeout() {
        self.deadline = .distantFuture
        self.loop.sweeper.unregister(self)
    }
}

extension HTTPMethod {
    /// RFC 9110 9.2.2: safe to send twice.
    var isIdempotent: Bool {
        switch self {
        case .GET, .HEAD, .OPTIONS, .TRACE, .PUT, .DELETE: return true
        default: return false
        }
    }
}
