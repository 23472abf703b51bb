import NIOCore
import NIOHPACK
import NIOHTTP1
import NIOHTTP2
import NIOWebSocket

/// One HTTP/2 stream of a client connection: converts its HEADERS and DATA into the same
/// `ProxyRequest` / `ProxyExchange` the HTTP/1.1 front uses, and the upstream's HTTP/1.1 response
/// back into frames. An RFC 8441 extended CONNECT becomes an HTTP/1.1 WebSocket upgrade upstream
/// and, once the backend's Sec-WebSocket-Accept checks out, a tunnel of DATA frames.
///
/// HTTP/2 flow control is the backpressure: reads on the stream are held while the upstream cannot
/// take more body, and the stream channel stops being writable when the client's window is spent.
final class HTTP2StreamHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTP2Frame.FramePayload
    typealias OutboundIn = Never
    typealias OutboundOut = HTTP2Frame.FramePayload

    private static let version = HTTPVersion(major: 2, minor: 0)

    private let loop: LoopContext
    private let listener: ListenerIdentity
    private var context: ChannelHandlerContext?
    private var clientAddress = "-"
    /// The stream's request, from its HEADERS on: the record, limits, gzip (shared with HTTP/1.1).
    private var relay: ResponseRelay?
    private var exchange: ProxyExchange?
    private var webSocketKey: String?
    private var heldRead = HeldRead()
    /// Whether the client ended its side of the stream (END_STREAM seen).
    private var requestEnded = false

    init(loop: LoopContext, listener: ListenerIdentity) {
        self.loop = loop
        self.listener = listener
    }

    private var runtime: RuntimeConfig { self.loop.runtime }

    // MARK: ChannelHandler

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        if let ip = self.listener.clientAddress ?? context.channel.parent?.remoteAddress?.ipAddress {
            self.clientAddress = ip
        }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch self.unwrapInboundIn(data) {
        case .headers(let headers):
            if headers.endStream { self.requestEnded = true }
            if self.relay == nil {
                self.start(headers.headers, endStream: headers.endStream)
            } else if headers.endStream {
                // Trailers.
                self.exchange?.sendEnd(Self.http1Fields(headers.headers))
            }
        case .data(let frame):
            guard case .byteBuffer(let body) = frame.data else { return }
            if frame.endStream { self.requestEnded = true }
            self.requestBody(body)
            if frame.endStream { self.exchange?.sendEnd(nil) }
        default:
            break
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        self.exchange?.flushRequest()
        context.fireChannelReadComplete()
    }

    func read(context: ChannelHandlerContext) {
        let hold = self.exchange.map { !$0.canTakeRequestData } ?? false
        if self.heldRead.passes(hold: hold) { context.read() }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable {
            self.exchange?.downstreamBecameWritable()
        }
        context.fireChannelWritabilityChanged()
    }

    func channelInactive(context: ChannelHandlerContext) {
        if let exchange = self.exchange {
            self.exchange = nil
            exchange.cancel()
            self.relay?.clientGone(on: self.loop)
        }
        self.relay = nil
        context.fireChannelInactive()
    }

    // MARK: requests

    private func start(_ block: HPACKHeaders, endStream: Bool) {
        let converted = HTTP2HeadConverter.request(block, endStream: endStream)
        let request: HTTP2HeadConverter.Request
        switch converted {
        case .success(let value):
            request = value
        case .failure(let problem) where problem.isStreamError:
            // Malformed: reset, not answered (RFC 9113 8.1.1).
            self.context?.writeAndFlush(self.wrapOutboundOut(.rstStream(.protocolError)), promise: nil)
            self.context?.close(promise: nil)
            return
        case .failure(let problem):
            self.beginRecord(method: .GET, target: block.first(name: ":path") ?? "-", facts: RequestFacts())
            self.respond(problem.failure)
            return
        }
        self.webSocketKey = request.webSocketKey
        self.beginRecord(method: request.head.method, target: request.head.uri, facts: request.facts)
        // RFC 9113 6.5.2: the decoded header list, each field counted with 32 bytes of overhead.
        let listSize = block.reduce(0) { $0 + $1.name.utf8.count + $1.value.utf8.count + 32 }
        if listSize > self.runtime.limits.maxHeaderBytes {
            self.respond(.headersTooLarge)
            return
        }
        if let port = self.listener.redirectHTTPSPort {
            let location = HTTPSRedirect.location(host: request.facts.host, port: port, target: request.head.uri)
            let head = HTTPSRedirect.responseHead(
                location: location,
                version: Self.version,
                requestID: self.relay!.record.requestID,
                keepAlive: true
            )
            self.respond(head: head, body: HTTPSRedirect.body(location: location))
            return
        }
        let proxyRequest = ProxyRequest(
            head: request.head,
            facts: request.facts,
            requestID: self.relay!.record.requestID
        )
        switch proxyRequest.dispatch(
            runtime: self.runtime,
            loop: self.loop,
            listener: self.listener,
            clientAddress: self.clientAddress,
            delegate: self
        ) {
        case .failure(let failure):
            self.respond(failure)
        case .success(let dispatched):
            self.relay!.routed(dispatched.route)
            self.exchange = dispatched.exchange
            dispatched.exchange.start()
            if endStream { self.exchange?.sendEnd(nil) }
        }
    }

    private func requestBody(_ body: ByteBuffer) {
        guard self.relay != nil else { return }
        if !self.relay!.requestBodyArrived(body.readableBytes, limit: self.runtime.limits.maxBodyBytes) {
            if let exchange = self.exchange {
                self.exchange = nil
                exchange.cancel()
            }
            if self.relay!.started {
                self.context?.close(promise: nil)
            } else {
                self.respond(.bodyTooLarge)
            }
            return
        }
        self.exchange?.sendBody(body)
    }

    private func beginRecord(method: HTTPMethod, target: String, facts: RequestFacts) {
        let record = AccessRecord(
            start: .now(),
            client: self.clientAddress,
            listener: self.listener.name,
            // The log shows what the client sent: CONNECT for an RFC 8441 WebSocket.
            method: self.webSocketKey == nil ? method : .CONNECT,
            target: target,
            version: Self.version,
            status: 0,
            requestID: facts.requestID ?? self.loop.nextRequestID(),
            referer: facts.referer,
            userAgent: facts.userAgent
        )
        self.relay = ResponseRelay(record: record, method: method, acceptEncoding: facts.acceptEncoding)
    }

    // MARK: responses

    /// Answers with Junction's own one-line response for `failure`.
    private func respond(_ failure: ProxyFailure) {
        guard let relay = self.relay else { return }
        let body = failure.body(requestID: relay.record.requestID)
        let head = failure.responseHead(
            version: Self.version,
            requestID: relay.record.requestID,
            bodyLength: body.utf8.count,
            keepAlive: true
        )
        self.respond(head: head, body: body)
    }

    private func respond(head: HTTPResponseHead, body: String) {
        guard let context = self.context,
            self.relay?.answer(status: head.status.code, bodyBytes: body.utf8.count) == true
        else { return }
        let headOnly = self.relay?.method == .HEAD
        context.write(
            self.wrapOutboundOut(.headers(.init(headers: HTTP2HeadConverter.response(head), endStream: headOnly))),
            promise: nil
        )
        if !headOnly {
            let buffer = ByteBuffer(string: body)
            context.write(self.wrapOutboundOut(.data(.init(data: .byteBuffer(buffer), endStream: true))), promise: nil)
        }
        if !self.requestEnded {
            // RFC 9113 8.1: answered before the request ended; ask the client to stop sending.
            context.write(self.wrapOutboundOut(.rstStream(.noError)), promise: nil)
        }
        context.flush()
        self.finish()
    }

    /// The response is complete: log it. The stream closes once both directions have ended.
    private func finish() {
        self.exchange = nil
        self.relay?.finish(on: self.loop)
        self.resumeReading()
    }

    private func resumeReading() {
        if let context = self.context, self.heldRead.release() { context.read() }
    }

    private static func http1Fields(_ block: HPACKHeaders) -> HTTPHeaders {
        var headers = HTTPHeaders()
        for (name, value, _) in block where name.utf8.first != UInt8(ascii: ":") {
            headers.add(name: name, value: value)
        }
        return headers
    }
}

// MARK: - ProxyExchangeDelegate

extension HTTP2StreamHandler: ProxyExchangeDelegate, ResponseWire {
    var canTakeResponse: Bool { self.context?.channel.isWritable ?? false }

    func exchangeReceivedResponseHead(_ head: HTTPResponseHead, backend: Backend, setCookie: String?) {
        guard let context = self.context, self.relay != nil else { return }
        let gzip = self.relay!.upstreamHead(head, backend: backend, budget: self.loop.gzipBudget)
        let bodyless = self.relay!.bodyless
        let block = HTTP2HeadConverter.response(
            head,
            requestID: self.relay!.record.requestID,
            bodyless: bodyless,
            setCookie: setCookie,
            gzip: gzip
        )
        context.write(self.wrapOutboundOut(.headers(.init(headers: block, endStream: bodyless))), promise: nil)
    }

    func exchangeReceivedResponseBody(_ body: ByteBuffer) {
        guard let action = self.relay?.upstreamBody(body, allocator: self.loop.allocator) else { return }
        self.write(action, logger: self.loop.logger, listener: self.listener.name)
    }

    func writeResponseBody(_ bytes: ByteBuffer) {
        guard bytes.readableBytes > 0 else { return }
        self.context?.write(self.wrapOutboundOut(.data(.init(data: .byteBuffer(bytes)))), promise: nil)
    }

    /// The stream is reset: the client must not take a partial body as whole.
    func cutResponse() {
        self.exchange?.cancel()
        self.exchangeAborted()
    }

    func exchangeReceivedResponseEnd(_ trailers: HTTPHeaders?) {
        guard let context = self.context, let tail = self.relay?.upstreamEnd(allocator: self.loop.allocator) else {
            return
        }
        guard self.write(tail, logger: self.loop.logger, listener: self.listener.name) else { return }
        if self.relay?.bodyless == false {
            if let trailers, !trailers.isEmpty {
                let block = HTTP2HeadConverter.trailers(trailers)
                context.write(self.wrapOutboundOut(.headers(.init(headers: block, endStream: true))), promise: nil)
            } else {
                let end = HTTP2Frame.FramePayload.Data(data: .byteBuffer(ByteBuffer()), endStream: true)
                context.write(self.wrapOutboundOut(.data(end)), promise: nil)
            }
        }
        context.flush()
        self.finish()
    }

    func exchangeFlush() {
        self.context?.flush()
    }

    func exchangeFailed(_ failure: ProxyFailure, backend: Backend?) {
        self.exchange = nil
        self.relay?.failed(on: backend)
        self.respond(failure)
    }

    func exchangeAborted() {
        self.exchange = nil
        self.relay?.finish(on: self.loop)
        // Resets the stream: the client sees the response cut, not completed.
        self.context?.close(promise: nil)
    }

    func exchangeUpstreamBecameWritable() {
        self.resumeReading()
    }

    func exchangeUpgraded(_ head: HTTPResponseHead, upstream: UpstreamConnection, lease: consuming BackendLease) {
        let backend = lease.backend
        guard let context = self.context, self.relay != nil, let upstreamChannel = upstream.channel,
            let key = self.webSocketKey
        else {
            // The lease ends here: the stream is gone.
            upstream.close()
            return
        }
        self.exchange = nil
        // RFC 8441 puts the HTTP/1.1 handshake on Junction: check the backend's accept for our key.
        let checker = NIOWebSocketClientUpgrader(requestKey: key) { channel, _ in
            channel.eventLoop.makeSucceededVoidFuture()
        }
        guard checker.shouldAllowUpgrade(upgradeResponse: head) else {
            _ = consume lease
            upstream.close()
            self.relay!.failed(on: backend)
            self.respond(.badGateway("the backend's Sec-WebSocket-Accept does not match the key Junction sent"))
            return
        }
        let record = self.relay!.tunnelOpened(status: 200, backend: backend)
        context.writeAndFlush(
            self.wrapOutboundOut(
                .headers(.init(headers: HTTP2HeadConverter.webSocketAccepted(head, requestID: record.requestID)))
            ),
            promise: nil
        )
        let tunnel = Tunnel(
            loop: self.loop,
            lease: lease,
            route: self.relay!.route,
            record: record
        )
        TunnelSplicer.splice(
            tunnel: tunnel,
            stream: (channel: context.channel, handler: self),
            upstream: (channel: upstreamChannel, handler: upstream)
        )
    }
}
