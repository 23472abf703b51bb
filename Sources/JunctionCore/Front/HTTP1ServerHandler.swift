import NIOCore
import NIOHTTP1

/// The proxy's HTTP/1.1 front: sits after NIO's request decoder on a client connection, proxies
/// each request through a `ProxyExchange` and writes responses as bytes it serializes itself
/// (`HeaderRewriter`, `HTTP1HeadWriter`).
///
/// It owns client-side flow control: reads are held back while the upstream cannot take more
/// body bytes, while a pipelined request waits its turn, and while a connection is being dialled.
/// There is no `HTTPServerPipelineHandler`: flipping read interest on every request costs two
/// `epoll_ctl` calls (../shared/research/nio-performance.md).
final class HTTP1ServerHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundIn = Never
    typealias OutboundOut = ByteBuffer

    /// The interim answer to `Expect: 100-continue`.
    static let continueResponse = ByteBuffer(staticString: "HTTP/1.1 100 Continue\r\n\r\n")

    /// The request in flight.
    private struct Request {
        /// The record, body limit, gzip and log line (shared with the HTTP/2 front).
        var relay: ResponseRelay
        var facts: RequestFacts
        var version: HTTPVersion
        /// How the response body goes to the client.
        var framing = WireFraming.none
    }

    private let loop: LoopContext
    private let listener: ListenerIdentity
    /// The connection's owner: its state machine decides keep-alive, pipelining and every deadline.
    private var connection: ClientConnection?
    private var context: ChannelHandlerContext?
    private var clientAddress = "-"
    private var request: Request?
    private var exchange: ProxyExchange?
    /// Parts of pipelined requests that arrived while one was in flight.
    private var queued = CircularBuffer<HTTPServerRequestPart>()
    private var heldRead = HeldRead()
    /// Names the pipeline handlers, so a tunnel can take them out.
    private let codecs: HTTP1Codecs

    init(loop: LoopContext, listener: ListenerIdentity, codecs: HTTP1Codecs, connection: ClientConnection) {
        self.loop = loop
        self.listener = listener
        self.codecs = codecs
        self.connection = connection
    }

    private var runtime: RuntimeConfig { self.loop.runtime }

    // MARK: ChannelHandler

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        if let ip = self.listener.clientAddress ?? context.channel.remoteAddress?.ipAddress { self.clientAddress = ip }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
        self.connection = nil
    }

    func channelInactive(context: ChannelHandlerContext) {
        if let exchange = self.exchange {
            self.exchange = nil
            exchange.cancel()
            self.request?.relay.clientGone(on: self.loop)
        }
        self.request = nil
        self.queued.removeAll()
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        self.handle(self.unwrapInboundIn(data))
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        self.connection?.http1BytesArrived()
        self.exchange?.flushRequest()
        context.fireChannelReadComplete()
    }

    func read(context: ChannelHandlerContext) {
        if self.heldRead.passes(hold: self.shouldHoldReads) { context.read() }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable {
            self.exchange?.downstreamBecameWritable()
        }
        context.fireChannelWritabilityChanged()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        guard let state = self.connection?.http1State, !Self.isLingering(state) else { return }
        let failure: ProxyFailure
        if let parserError = error as? HTTPParserError {
            failure = parserError == .headerOverflow ? .headersTooLarge : .badRequest(Self.describe(parserError))
        } else {
            self.close()
            return
        }
        // The decoder cannot go on after a parse error: answer if nothing was answered yet, then close.
        if let request = self.request, request.relay.started {
            self.close()
            return
        }
        self.exchange?.cancel()
        self.exchange = nil
        if self.request == nil {
            self.beginRecord(method: .GET, target: "-", version: .http1_1, facts: RequestFacts())
        }
        self.respond(failure, forceClose: true)
    }

    /// The header deadline passed before a request head was complete: 408, then close.
    func headerTimedOut() {
        self.beginRecord(method: .GET, target: "-", version: .http1_1, facts: RequestFacts())
        self.respond(.headerTimeout, forceClose: true)
    }

    private func close() {
        self.connection?.http1Closed()
        self.context?.close(promise: nil)
    }

    private static func isLingering(_ state: ClientConnectionStateMachine.HTTP1State) -> Bool {
        if case .lingering = state { return true }
        return false
    }

    /// Whether a request is in flight (a new head has to wait behind it).
    private var requestInFlight: Bool {
        if case .active = self.connection?.http1State { return true }
        return false
    }

    // MARK: requests

    /// Processes parts in arrival order; a head that arrives while a request is in flight (HTTP/1.1
    /// pipelining) and everything after it wait in `queued`, and reading stops until it is answered.
    private func handle(_ part: HTTPServerRequestPart) {
        if !self.queued.isEmpty {
            self.queued.append(part)
            return
        }
        if case .head = part, self.requestInFlight {
            self.queued.append(part)
            return
        }
        self.process(part)
    }

    private func process(_ part: HTTPServerRequestPart) {
        switch part {
        case .head(let head):
            if self.connection?.http1RequestHeadArrived() == .process {
                self.startRequest(head)
            }
        case .body(let body):
            self.requestBody(body)
        case .end(let trailers):
            if self.connection?.http1LingerDone() == true {
                // The rest of the refused request arrived: no need to linger any longer.
                self.context?.close(promise: nil)
                return
            }
            self.requestEnd(trailers)
        }
    }

    private func startRequest(_ head: HTTPRequestHead) {
        let runtime = self.runtime
        let facts: RequestFacts
        switch HeaderRewriter.inspect(head) {
        case .success(let inspected):
            facts = inspected
        case .failure(let problem):
            self.beginRecord(method: head.method, target: head.uri, version: head.version, facts: RequestFacts())
            self.respond(.badRequest(problem.description), forceClose: true)
            return
        }
        self.beginRecord(method: head.method, target: head.uri, version: head.version, facts: facts)
        if facts.framing == .none {
            // No body: the decoder's `.end` follows at once, so the request is already complete as far
            // as keeping the connection is concerned (an early error answer need not linger).
            self.connection?.http1RequestEnded()
        }
        if let port = self.listener.redirectHTTPSPort {
            let target = facts.originForm ?? head.uri
            self.respondRedirect(to: HTTPSRedirect.location(host: facts.host, port: port, target: target))
            return
        }
        let request = ProxyRequest(head: head, facts: facts, requestID: self.request!.relay.record.requestID)
        switch request.dispatch(
            runtime: runtime,
            loop: self.loop,
            listener: self.listener,
            clientAddress: self.clientAddress,
            delegate: self
        ) {
        case .failure(let failure):
            self.respond(failure, forceClose: failure == .bodyTooLarge)
        case .success(let dispatched):
            self.request!.relay.routed(dispatched.route)
            self.exchange = dispatched.exchange
            dispatched.exchange.start()
            if facts.expectsContinue, self.exchange != nil, let context = self.context {
                // Junction answers the expectation itself (and does not forward it) once a backend is chosen.
                context.writeAndFlush(self.wrapOutboundOut(Self.continueResponse), promise: nil)
            }
        }
    }

    private func requestBody(_ body: ByteBuffer) {
        guard self.request != nil else { return }
        if !self.request!.relay.requestBodyArrived(body.readableBytes, limit: self.runtime.limits.maxBodyBytes) {
            if self.request!.relay.started {
                self.close()
            } else {
                self.exchange?.cancel()
                self.exchange = nil
                self.respond(.bodyTooLarge, forceClose: true)
            }
            return
        }
        self.exchange?.sendBody(body)
    }

    private func requestEnd(_ trailers: HTTPHeaders?) {
        guard self.request != nil else { return }
        self.connection?.http1RequestEnded()
        self.exchange?.sendEnd(trailers)
    }

    private func beginRecord(method: HTTPMethod, target: String, version: HTTPVersion, facts: RequestFacts) {
        let record = AccessRecord(
            start: .now(),
            client: self.clientAddress,
            listener: self.listener.name,
            method: method,
            target: target,
            version: version,
            status: 0,
            requestID: facts.requestID ?? self.loop.nextRequestID(),
            referer: facts.referer,
            userAgent: facts.userAgent
        )
        self.request = Request(
            relay: ResponseRelay(record: record, method: method, acceptEncoding: facts.acceptEncoding),
            facts: facts,
            version: version
        )
    }

    // MARK: responses

    /// Answers the current request with `failure`'s status and one line of text.
    private func respond(_ failure: ProxyFailure, forceClose: Bool) {
        guard var request = self.request, !request.relay.started, let context = self.context else { return }
        let keepAlive =
            self.connection?.http1ResponseStarting(requestWantsClose: forceClose || request.facts.wantsClose) ?? false
        let body = failure.body(requestID: request.relay.record.requestID)
        let head = failure.responseHead(
            version: request.version,
            requestID: request.relay.record.requestID,
            bodyLength: body.utf8.count,
            keepAlive: keepAlive
        )
        _ = request.relay.answer(status: failure.status.code, bodyBytes: body.utf8.count)
        var bytes = HTTP1HeadWriter.responseHead(head, allocator: self.loop.allocator)
        if request.relay.method != .HEAD { bytes.writeString(body) }
        self.request = request
        context.write(self.wrapOutboundOut(bytes), promise: nil)
        self.finishResponse(terminator: nil)
    }

    /// Answers with a 308 to the same target on HTTPS (`redirect_https`).
    private func respondRedirect(to location: String) {
        guard var request = self.request, let context = self.context else { return }
        let keepAlive = self.connection?.http1ResponseStarting(requestWantsClose: request.facts.wantsClose) ?? false
        let head = HTTPSRedirect.responseHead(
            location: location,
            version: request.version,
            requestID: request.relay.record.requestID,
            keepAlive: keepAlive
        )
        let body = HTTPSRedirect.body(location: location)
        _ = request.relay.answer(status: head.status.code, bodyBytes: body.utf8.count)
        self.request = request
        var bytes = HTTP1HeadWriter.responseHead(head, allocator: self.loop.allocator)
        if request.relay.method != .HEAD { bytes.writeString(body) }
        context.write(self.wrapOutboundOut(bytes), promise: nil)
        self.finishResponse(terminator: nil)
    }

    /// Ends the response (`terminator`: the last chunk of a chunked body), flushes it and decides
    /// what happens to the connection.
    private func finishResponse(terminator: ByteBuffer?) {
        guard let context = self.context, self.request != nil else { return }
        self.request!.relay.finish(on: self.loop)
        self.request = nil
        self.exchange = nil
        if let terminator {
            context.write(self.wrapOutboundOut(terminator), promise: nil)
        }
        switch self.connection?.http1ResponseEnded() ?? .close {
        case .keepAlive:
            context.flush()
            self.drainQueue()
        case .close:
            context.writeAndFlush(self.wrapOutboundOut(ByteBuffer())).assumeIsolated().whenComplete { _ in
                context.close(promise: nil)
            }
        case .linger:
            self.queued.removeAll()
            context.writeAndFlush(self.wrapOutboundOut(ByteBuffer())).assumeIsolated().whenComplete { _ in
                context.close(mode: .output, promise: nil)
            }
            self.resumeReadingIfPossible()
        }
    }

    /// Replays parts of pipelined requests that arrived while the previous one was in flight.
    private func drainQueue() {
        while let part = self.queued.first {
            if case .head = part, self.requestInFlight { break }
            self.queued.removeFirst()
            self.process(part)
        }
        // Outside a read burst: no channelReadComplete will push what the replayed parts wrote.
        self.exchange?.flushRequest()
        self.resumeReadingIfPossible()
    }

    private var shouldHoldReads: Bool {
        if !self.queued.isEmpty { return true }
        if let exchange = self.exchange { return !exchange.canTakeRequestData }
        return false
    }

    private func resumeReadingIfPossible() {
        if !self.shouldHoldReads, let context = self.context, self.heldRead.release() { context.read() }
    }

    private static func describe(_ error: HTTPParserError) -> String {
        switch error {
        case .invalidChunkSize: return "invalid chunk size"
        case .invalidContentLength: return "invalid Content-Length"
        case .invalidHeaderToken: return "invalid header"
        case .invalidMethod: return "invalid method"
        case .invalidURL: return "invalid request target"
        case .invalidVersion: return "invalid HTTP version"
        case .lfExpected, .invalidConstant, .invalidCharactersUsed, .strictModeAssertion: return "invalid syntax"
        case .unexpectedContentLength: return "unexpected Content-Length"
        default: return "the request could not be parsed"
        }
    }
}

// MARK: - ProxyExchangeDelegate

extension HTTP1ServerHandler: ProxyExchangeDelegate, ResponseWire {
    var canTakeResponse: Bool { self.context?.channel.isWritable ?? false }

    func exchangeReceivedResponseHead(_ head: HTTPResponseHead, backend: Backend, setCookie: String?) {
        guard var request = self.request, let context = self.context else { return }
        let gzip = request.relay.upstreamHead(head, backend: backend, budget: self.loop.gzipBudget)
        // A refused upgrade leaves the request decoder in upgrade mode: the connection cannot continue.
        let keepAlive =
            self.connection?.http1ResponseStarting(
                requestWantsClose: request.facts.wantsClose || request.facts.isWebSocketUpgrade
            ) ?? false
        let (clientHead, framing, closeDelimited) = HeaderRewriter.clientResponseBytes(
            head,
            requestID: request.relay.record.requestID,
            clientVersion: request.version,
            bodyless: request.relay.bodyless,
            keepAlive: keepAlive,
            setCookie: setCookie,
            gzip: gzip,
            allocator: self.loop.allocator
        )
        if closeDelimited {
            // An HTTP/1.0 client and no Content-Length: the end of the body is the end of the connection.
            self.connection?.http1ResponseMustClose()
        }
        request.framing = framing
        self.request = request
        context.write(self.wrapOutboundOut(clientHead), promise: nil)
    }

    func exchangeReceivedResponseBody(_ body: ByteBuffer) {
        guard let action = self.request?.relay.upstreamBody(body, allocator: self.loop.allocator) else { return }
        self.write(action, logger: self.loop.logger, listener: self.listener.name)
    }

    /// Writes a part of the response body in the response's framing.
    func writeResponseBody(_ body: ByteBuffer) {
        guard let context = self.context, let framing = self.request?.framing else { return }
        switch framing {
        case .raw:
            context.write(self.wrapOutboundOut(body), promise: nil)
        case .chunked:
            guard body.readableBytes > 0 else { return }
            context.write(
                self.wrapOutboundOut(
                    ChunkedCoding.chunkHeader(size: body.readableBytes, allocator: self.loop.allocator)
                ),
                promise: nil
            )
            context.write(self.wrapOutboundOut(body), promise: nil)
            context.write(self.wrapOutboundOut(ChunkedCoding.crlf), promise: nil)
        case .none:
            break
        }
    }

    /// The client must not take a partial body as whole: the connection is cut.
    func cutResponse() {
        self.exchange?.cancel()
        self.exchangeAborted()
    }

    func exchangeReceivedResponseEnd(_ trailers: HTTPHeaders?) {
        guard let tail = self.request?.relay.upstreamEnd(allocator: self.loop.allocator) else { return }
        self.exchange = nil
        guard self.write(tail, logger: self.loop.logger, listener: self.listener.name) else { return }
        var terminator: ByteBuffer?
        if self.request?.framing == .chunked {
            if let trailers, !trailers.isEmpty {
                terminator = ChunkedCoding.lastChunk(trailers: trailers, allocator: self.loop.allocator)
            } else {
                terminator = ChunkedCoding.lastChunk
            }
        }
        // Flush now: the upstream connection is back in its pool and its read burst's end no
        // longer reaches this exchange.
        self.finishResponse(terminator: terminator)
    }

    func exchangeFlush() {
        self.context?.flush()
    }

    func exchangeFailed(_ failure: ProxyFailure, backend: Backend?) {
        self.exchange = nil
        self.request?.relay.failed(on: backend)
        // Without the whole request received, the rest of its body must not be read as a new request.
        self.respond(failure, forceClose: false)
    }

    func exchangeAborted() {
        self.exchange = nil
        self.request?.relay.finish(on: self.loop)
        self.request = nil
        self.close()
    }

    func exchangeUpstreamBecameWritable() {
        self.resumeReadingIfPossible()
    }

    func exchangeUpgraded(_ head: HTTPResponseHead, upstream: UpstreamConnection, lease: consuming BackendLease) {
        let backend = lease.backend
        guard var request = self.request, let context = self.context, let upstreamChannel = upstream.channel else {
            // The lease ends here: the client is gone.
            upstream.close()
            return
        }
        self.exchange = nil
        self.connection?.http1Upgraded()
        let (clientHead, _, _) = HeaderRewriter.clientResponseBytes(
            head,
            requestID: request.relay.record.requestID,
            clientVersion: request.version,
            bodyless: true,
            keepAlive: true,
            isTunnel: true,
            allocator: self.loop.allocator
        )
        let record = request.relay.tunnelOpened(status: 101, backend: backend)
        context.writeAndFlush(self.wrapOutboundOut(clientHead), promise: nil)

        let tunnel = Tunnel(
            loop: self.loop,
            lease: lease,
            route: request.relay.route,
            record: record
        )
        self.request = nil
        TunnelSplicer.splice(
            tunnel: tunnel,
            client: (channel: context.channel, codecs: self.codecs, handler: self),
            upstream: (channel: upstreamChannel, handler: upstream)
        )
    }
}
