import NIOCore
import NIOHTTP1

/// The HTTP/1.1 front of a client connection: sits after NIO's request decoder, owns the
/// connection's HTTP/1.1 state and deadlines (`HTTP1FrontStateMachine`: keep-alive, pipelining,
/// linger, a graceful shutdown) and one `ProxyRequest` per request, and is the wire those requests
/// write their responses through, as bytes it serializes itself (`HeaderRewriter`,
/// `HTTP1HeadWriter`, chunked coding). It keeps wire code only: what to answer is the request's.
///
/// It owns client-side flow control: reads are held back while the request in flight cannot take
/// more body (its upstream is full, or still being dialled) and while a pipelined request waits
/// its turn. There is no `HTTPServerPipelineHandler`: flipping read interest on every request
/// costs two `epoll_ctl` calls.
final class HTTP1Front: ChannelDuplexHandler, RemovableChannelHandler, DeadlineTracked {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundIn = Never
    typealias OutboundOut = ByteBuffer

    /// The interim answer to `Expect: 100-continue`.
    static let continueResponse = ByteBuffer(staticString: "HTTP/1.1 100 Continue\r\n\r\n")

    /// What a request writes its response through: this front.
    struct Wire: ResponseWire {
        /// invariant: the front outlives every call through here. It cancels the request in flight
        /// when its channel closes or it leaves the pipeline, a cancelled or ended request never
        /// writes again, and each call holds the front strongly while it runs.
        /// `ExchangeTests.frontGoneBeforeItsRequest` fails under AddressSanitizer if that breaks.
        unowned(unsafe) let front: HTTP1Front

        func writeHead(_ head: HTTPResponseHead, _ details: ResponseDetails) {
            let front = self.front
            front.writeHead(head, details)
        }

        func writeBody(_ bytes: ByteBuffer) -> Bool {
            let front = self.front
            return front.writeBody(bytes)
        }

        func writeEnd(_ end: ResponseEnd) {
            let front = self.front
            front.writeEnd(end)
        }

        func reset() {
            let front = self.front
            front.reset()
        }

        func flush() {
            let front = self.front
            front.flushResponse()
        }
    }

    private let loop: LoopContext
    private let listener: ListenerIdentity
    /// The request decoder, taken out of the pipeline when the connection becomes a tunnel.
    private let decoder: ByteToMessageHandler<HTTPRequestDecoder>
    private var machine: HTTP1FrontStateMachine
    private var context: ChannelHandlerContext?
    private var clientAddress = "-"
    /// The client as the per-client limits count it (nil: a UNIX socket, or not known).
    private var clientKey: ClientKey?
    /// The request in flight.
    private var request: ProxyRequest?
    /// The HTTP version of the request in flight (its response's status line).
    private var version = HTTPVersion.http1_1
    /// How the response body in flight goes to the client.
    private var framing = WireFraming.none
    /// The response head, not yet written: the first body part joins it when small, so a small
    /// response is one buffer (over TLS one record and one `SSL_write` instead of two). Written
    /// at the latest when the upstream's read burst ends (`flushResponse`) or the response does.
    private var heldHead: ByteBuffer?
    /// Parts of pipelined requests that arrived while one was in flight.
    private var queued = CircularBuffer<HTTPServerRequestPart>()
    private var heldRead = HeldRead()
    /// Replaying queued parts: a response that ends meanwhile leaves the next part to that loop.
    private var replaying = false

    var sweeperSlot = -1
    var deadline: NIODeadline { self.machine.deadline }

    /// Adds NIO's request decoder, with Junction's header limits, and the front at the end of
    /// `channel`'s pipeline. `headerDeadline`: `client_header_timeout` counted from accept.
    @discardableResult
    static func install(
        on channel: Channel,
        loop: LoopContext,
        listener: ListenerIdentity,
        headerDeadline: NIODeadline
    ) throws -> HTTP1Front {
        let limits = loop.runtime.limits
        var decoderLimits = NIOHTTPDecoderLimitConfiguration()
        decoderLimits.maxHeaderListSize = limits.maxHeaderBytes
        decoderLimits.maxHeaderFieldSize = limits.maxHeaderBytes
        let decoder = ByteToMessageHandler(
            HTTPRequestDecoder(
                leftOverBytesStrategy: .forwardBytes,
                informationalResponseStrategy: .drop,
                limitConfiguration: decoderLimits
            )
        )
        let front = HTTP1Front(loop: loop, listener: listener, decoder: decoder, headerDeadline: headerDeadline)
        let sync = channel.pipeline.syncOperations
        try sync.addHandler(decoder)
        try sync.addHandler(front)
        return front
    }

    private init(
        loop: LoopContext,
        listener: ListenerIdentity,
        decoder: ByteToMessageHandler<HTTPRequestDecoder>,
        headerDeadline: NIODeadline
    ) {
        let limits = loop.runtime.limits
        self.loop = loop
        self.listener = listener
        self.decoder = decoder
        self.machine = HTTP1FrontStateMachine(
            timeouts: .init(
                header: limits.clientHeaderTimeout,
                idle: limits.clientIdleTimeout,
                shutdownGrace: limits.shutdownGrace
            ),
            headerDeadline: headerDeadline
        )
    }

    // MARK: ChannelHandler

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        let peer = self.listener.clientAddress == nil ? context.channel.remoteAddress : nil
        if let ip = self.listener.clientAddress ?? peer?.ipAddress { self.clientAddress = ip }
        self.clientKey = self.listener.clientKey ?? peer.flatMap(ClientKey.init)
        self.loop.sweeper.register(self)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.loop.sweeper.unregister(self)
        self.dropRequest()
        self.context = nil
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.machine.closed()
        self.loop.sweeper.unregister(self)
        self.dropRequest()
        self.queued.removeAll()
        context.fireChannelInactive()
    }

    /// The client went away with a request in flight: it is cancelled (and logged as such).
    private func dropRequest() {
        guard let request = self.request else { return }
        self.request = nil
        request.cancel()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let part = self.unwrapInboundIn(data)
        if !self.queued.isEmpty {
            self.queued.append(part)
        } else if case .head = part, self.machine.isActive {
            // Pipelined: it waits (and reading stops) until the one in flight is answered.
            self.queued.append(part)
        } else {
            self.process(part)
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        if case .idle = self.machine.state { self.machine.bytesArrived(now: .now()) }
        self.request?.flushRequest()
        context.fireChannelReadComplete()
    }

    func read(context: ChannelHandlerContext) {
        if self.heldRead.passes(hold: self.shouldHoldReads) { context.read() }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable {
            self.request?.clientWritable()
        }
        context.fireChannelWritabilityChanged()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        guard self.machine.state != .closed, !self.machine.isLingering else { return }
        guard let parserError = error as? HTTPParserError else {
            self.close()
            return
        }
        // The decoder cannot go on after a parse error: answered if nothing was answered yet,
        // then the connection closes.
        let failure: ProxyFailure =
            parserError == .headerOverflow ? .headersTooLarge : .badRequest(Self.describe(parserError))
        if let request = self.request {
            request.abandon(failure)
        } else {
            self.refuse(failure)
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        switch event {
        case is ChannelShouldQuiesceEvent:
            // The listener drains or Junction shuts down: what is in flight finishes (answered
            // with `Connection: close`), within the shutdown grace.
            if self.machine.quiesce(now: .now()) == .close { self.close() }
        case is HandoverEvent:
            // An upgrade: the same, but a first request on its way is still served.
            if self.machine.handOver(now: .now()) == .close { self.close() }
        default:
            context.fireUserInboundEventTriggered(event)
        }
    }

    // MARK: DeadlineTracked

    func deadlinePassed(now: NIODeadline) {
        switch self.machine.deadlinePassed(now: now) {
        case .none:
            break
        case .close:
            self.close()
        case .requestTimeout:
            self.refuse(.headerTimeout)
        }
    }

    // MARK: requests

    private func process(_ part: HTTPServerRequestPart) {
        switch part {
        case .head(let head):
            switch self.machine.headArrived() {
            case .process: self.startRequest(head)
            case .queue: self.queued.append(part)
            case .drop: break
            }
        case .body(let body):
            self.request?.requestBody(body)
        case .end(let trailers):
            if self.machine.lingerDone() {
                // The rest of the refused request arrived: no need to linger any longer.
                self.context?.close(promise: nil)
                return
            }
            self.machine.requestEnded()
            self.request?.requestEnded(trailers: trailers)
        }
    }

    private func startRequest(_ head: HTTPRequestHead) {
        self.version = head.version
        let request: ProxyRequest
        var expectsContinue = false
        switch HeaderRewriter.inspect(head) {
        case .success(let facts):
            if facts.framing == .none {
                // No body: the decoder's `.end` follows at once, so the request is already complete
                // as far as keeping the connection is concerned (an early error answer need not linger).
                self.machine.requestEnded()
            }
            expectsContinue = facts.expectsContinue
            request = ProxyRequest(
                loop: self.loop,
                wire: Wire(front: self),
                listener: self.listener,
                client: self.clientAddress,
                clientKey: self.clientKey,
                head: head,
                facts: facts
            )
        case .failure(let problem):
            request = ProxyRequest(
                loop: self.loop,
                wire: Wire(front: self),
                listener: self.listener,
                client: self.clientAddress,
                refusing: .badRequest(problem.description),
                close: true,
                method: head.method,
                target: head.uri,
                version: head.version
            )
        }
        self.request = request
        request.start()
        if expectsContinue, request.isProxying, let context = self.context {
            // Junction answers the expectation itself (and does not forward it) once a backend is chosen.
            context.writeAndFlush(self.wrapOutboundOut(Self.continueResponse), promise: nil)
        }
    }

    /// Junction answers without a request head of the client's (a parse error, the header
    /// timeout): a request of its own carries the answer and its log line; the connection ends.
    private func refuse(_ failure: ProxyFailure) {
        let request = ProxyRequest(
            loop: self.loop,
            wire: Wire(front: self),
            listener: self.listener,
            client: self.clientAddress,
            refusing: failure,
            close: true
        )
        self.request = request
        request.start()
    }

    /// Replays parts of pipelined requests that arrived while the previous one was in flight.
    private func replayQueue() {
        guard !self.replaying else { return }
        self.replaying = true
        while let part = self.queued.first {
            if case .head = part, self.machine.isActive { break }
            self.queued.removeFirst()
            self.process(part)
        }
        self.replaying = false
        // Outside a read burst: no channelReadComplete will push what the replayed parts wrote.
        self.request?.flushRequest()
        self.resumeReadingIfPossible()
    }

    private var shouldHoldReads: Bool {
        if !self.queued.isEmpty { return true }
        if let request = self.request { return !request.canTakeRequestBody }
        return false
    }

    private func resumeReadingIfPossible() {
        if !self.shouldHoldReads, let context = self.context, self.heldRead.release() { context.read() }
    }

    private func close() {
        self.machine.closed()
        self.context?.close(promise: nil)
    }

    // MARK: the wire

    private func writeHead(_ head: HTTPResponseHead, _ details: ResponseDetails) {
        guard let context = self.context else { return }
        let keepAlive = self.machine.responseStarting(requestWantsClose: details.closeConnection)
        let (bytes, framing, closeDelimited) = HeaderRewriter.clientResponseBytes(
            head,
            requestID: details.requestID,
            clientVersion: self.version,
            bodyless: details.bodyless,
            keepAlive: keepAlive,
            setCookie: details.setCookie,
            gzip: details.gzip,
            rules: details.rules,
            allocator: self.loop.allocator
        )
        if closeDelimited {
            // An HTTP/1.0 client and no Content-Length: the end of the body is the end of the connection.
            self.machine.responseMustClose()
        }
        self.framing = framing
        self.heldHead = bytes
    }

    /// Writes the held head, with `body` in the same buffer when it is at most this many bytes.
    private static let joinedBodyLimit = 4096

    /// Writes the held head, if any: alone, or with `body` appended (true: `body` went with it).
    private func releaseHead(context: ChannelHandlerContext, joining body: ByteBuffer? = nil) -> Bool {
        guard var head = self.heldHead else { return false }
        self.heldHead = nil
        var joined = false
        if let body, body.readableBytes <= Self.joinedBodyLimit {
            head.writeImmutableBuffer(body)
            joined = true
        }
        context.write(self.wrapOutboundOut(head), promise: nil)
        return joined
    }

    private func writeBody(_ body: ByteBuffer) -> Bool {
        guard let context = self.context else { return false }
        if self.releaseHead(context: context, joining: self.framing == .raw ? body : nil) {
            return context.channel.isWritable
        }
        switch self.framing {
        case .raw:
            context.write(self.wrapOutboundOut(body), promise: nil)
        case .chunked:
            guard body.readableBytes > 0 else { break }
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
        return context.channel.isWritable
    }

    private func writeEnd(_ end: ResponseEnd) {
        self.request = nil
        guard let context = self.context else {
            self.heldHead = nil
            if case .tunnel(let handover) = end { handover.upstream.close() }
            return
        }
        _ = self.releaseHead(context: context)
        switch end {
        case .complete(let trailers):
            if self.framing == .chunked {
                let terminator =
                    if let trailers, !trailers.isEmpty {
                        ChunkedCoding.lastChunk(trailers: trailers, allocator: self.loop.allocator)
                    } else {
                        ChunkedCoding.lastChunk
                    }
                context.write(self.wrapOutboundOut(terminator), promise: nil)
            }
            self.framing = .none
            self.responseEnded(context: context)
        case .tunnel(let handover):
            self.machine.upgraded()
            let (head, _, _) = HeaderRewriter.clientResponseBytes(
                handover.head,
                requestID: handover.requestID,
                clientVersion: self.version,
                bodyless: true,
                keepAlive: true,
                isTunnel: true,
                rules: handover.rules,
                allocator: self.loop.allocator
            )
            context.writeAndFlush(self.wrapOutboundOut(head), promise: nil)
            // The front and the decoder leave; the client's socket is the tunnel's client end.
            TunnelSplicer.splice(
                client: context.channel,
                front: self,
                decoder: self.decoder,
                handover: handover,
                closeBy: self.machine.tunnelCloseBy,
                loop: self.loop
            )
        }
    }

    /// The response went out whole: keep the connection for the next request, or end it.
    private func responseEnded(context: ChannelHandlerContext) {
        switch self.machine.responseEnded(now: .now()) {
        case .keepAlive:
            context.flush()
            self.replayQueue()
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

    /// The response cannot be completed: the connection is cut, so the client does not take a
    /// partial body for whole.
    private func reset() {
        self.request = nil
        self.heldHead = nil
        self.close()
    }

    /// The upstream side moved on: what was written goes out, and the request's body is read again
    /// if it can go on.
    private func flushResponse() {
        if let context = self.context {
            _ = self.releaseHead(context: context)
            context.flush()
        }
        self.resumeReadingIfPossible()
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
