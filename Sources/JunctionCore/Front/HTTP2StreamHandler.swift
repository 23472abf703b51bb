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
    private var record: AccessRecord?
    private var route: Route?
    private var exchange: ProxyExchange?
    private var method: HTTPMethod = .GET
    private var webSocketKey: String?
    /// The request's Accept-Encoding, for a `compress: true` route.
    private var acceptEncoding: String?
    /// Compresses the response body when the route and the response allow it.
    private var gzip: GzipEncoder?
    private var responseStarted = false
    private var responseEnded = false
    private var bodyless = false
    private var readPending = false
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
            if self.record == nil {
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
        if let exchange = self.exchange, !exchange.canTakeRequestData {
            self.readPending = true
        } else {
            context.read()
        }
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
            if var record = self.record, !self.responseEnded {
                if !self.responseStarted { record.status = 499 }
                self.loop.requestFinished(record)
            }
        }
        self.record = nil
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
        self.method = request.head.method
        self.webSocketKey = request.webSocketKey
        self.acceptEncoding = request.facts.acceptEncoding
        // The log shows what the client sent: CONNECT for an RFC 8441 WebSocket.
        let loggedMethod: HTTPMethod = request.webSocketKey == nil ? request.head.method : .CONNECT
        self.beginRecord(method: loggedMethod, target: request.head.uri, facts: request.facts)
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
                requestID: self.record!.requestID,
                keepAlive: true
            )
            self.respond(head: head, body: HTTPSRedirect.body(location: location))
            return
        }
        let proxyRequest = ProxyRequest(head: request.head, facts: request.facts, requestID: self.record!.requestID)
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
            self.route = dispatched.route
            self.record!.route = dispatched.route.name
            self.record!.pool = dispatched.route.pool.name
            self.exchange = dispatched.exchange
            dispatched.exchange.start()
            if endStream { self.exchange?.sendEnd(nil) }
        }
    }

    private func requestBody(_ body: ByteBuffer) {
        guard self.record != nil else { return }
        self.record!.bytesIn += Int64(body.readableBytes)
        let limit = self.runtime.limits.maxBodyBytes
        if limit > 0 && self.record!.bytesIn > limit {
            if let exchange = self.exchange {
                self.exchange = nil
                exchange.cancel()
            }
            if self.responseStarted {
                self.context?.close(promise: nil)
            } else {
                self.respond(.bodyTooLarge)
            }
            return
        }
        self.exchange?.sendBody(body)
    }

    private func beginRecord(method: HTTPMethod, target: String, facts: RequestFacts) {
        self.record = AccessRecord(
            start: .now(),
            client: self.clientAddress,
            listener: self.listener.name,
            method: method,
            target: target,
            version: Self.version,
            status: 0,
            requestID: facts.requestID ?? self.loop.nextRequestID(),
            referer: facts.referer,
            userAgent: facts.userAgent
        )
    }

    // MARK: responses

    /// Answers with Junction's own one-line response for `failure`.
    private func respond(_ failure: ProxyFailure) {
        guard let record = self.record else { return }
        let body = failure.body(requestID: record.requestID)
        let head = failure.responseHead(
            version: Self.version,
            requestID: record.requestID,
            bodyLength: body.utf8.count,
            keepAlive: true
        )
        self.respond(head: head, body: body)
    }

    private func respond(head: HTTPResponseHead, body: String) {
        guard let context = self.context, !self.responseStarted else { return }
        self.responseStarted = true
        self.record?.status = head.status.code
        let headOnly = self.method == .HEAD
        context.write(
            self.wrapOutboundOut(.headers(.init(headers: HTTP2HeadConverter.response(head), endStream: headOnly))),
            promise: nil
        )
        if !headOnly {
            self.record?.bytesOut = Int64(body.utf8.count)
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
        self.responseEnded = true
        self.exchange = nil
        if let record = self.record {
            self.loop.requestFinished(record)
        }
        self.resumeReading()
    }

    private func resumeReading() {
        if self.readPending, let context = self.context {
            self.readPending = false
            context.read()
        }
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

extension HTTP2StreamHandler: ProxyExchangeDelegate {
    var canTakeResponse: Bool { self.context?.channel.isWritable ?? false }

    func exchangeReceivedResponseHead(_ head: HTTPResponseHead, backend: Backend, setCookie: String?) {
        guard let context = self.context, let record = self.record else { return }
        self.bodyless =
            self.method == .HEAD || head.status == .noContent || head.status == .notModified || head.status.code < 200
        self.responseStarted = true
        self.record?.status = head.status.code
        self.record?.upstreamTime = .now() - record.start
        self.record?.backend = backend.label
        self.gzip = CompressionPolicy.encoder(
            for: head,
            route: self.route,
            acceptEncoding: self.acceptEncoding,
            bodyless: self.bodyless,
            budget: self.loop.gzipBudget
        )
        let block = HTTP2HeadConverter.response(
            head,
            requestID: record.requestID,
            bodyless: self.bodyless,
            setCookie: setCookie,
            gzip: self.gzip != nil
        )
        context.write(self.wrapOutboundOut(.headers(.init(headers: block, endStream: self.bodyless))), promise: nil)
    }

    func exchangeReceivedResponseBody(_ body: ByteBuffer) {
        guard !self.bodyless else { return }
        if let gzip = self.gzip {
            guard let compressed = gzip.compress(body, allocator: self.loop.allocator) else {
                self.compressionFailed()
                return
            }
            self.writeBody(compressed)
        } else {
            self.writeBody(body)
        }
    }

    /// zlib failed mid-response: the stream is reset, the client must not take a cut body as whole.
    private func compressionFailed() {
        self.loop.logger.error("gzip failed; the response is cut", metadata: ["listener": "\(self.listener.name)"])
        self.gzip = nil
        self.exchange?.cancel()
        self.exchangeAborted()
    }

    private func writeBody(_ body: ByteBuffer) {
        guard let context = self.context, body.readableBytes > 0 else { return }
        self.record?.bytesOut += Int64(body.readableBytes)
        context.write(self.wrapOutboundOut(.data(.init(data: .byteBuffer(body)))), promise: nil)
    }

    func exchangeReceivedResponseEnd(_ trailers: HTTPHeaders?) {
        guard let context = self.context else { return }
        if let gzip = self.gzip {
            self.gzip = nil
            guard let tail = gzip.finish(allocator: self.loop.allocator) else {
                self.compressionFailed()
                return
            }
            self.writeBody(tail)
        }
        if !self.bodyless {
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
        self.record?.backend = backend?.label
        self.respond(failure)
    }

    func exchangeAborted() {
        self.exchange = nil
        if let record = self.record { self.loop.requestFinished(record) }
        self.responseEnded = true
        // Resets the stream: the client sees the response cut, not completed.
        self.context?.close(promise: nil)
    }

    func exchangeUpstreamBecameWritable() {
        self.resumeReading()
    }

    func exchangeUpgraded(_ head: HTTPResponseHead, upstream: UpstreamConnection, lease: consuming BackendLease) {
        let backend = lease.backend
        guard let context = self.context, var record = self.record, let upstreamChannel = upstream.channel,
            let key = self.webSocketKey
        else {
            // The lease ends here: the stream is gone.
            upstream.close()
            return
        }
        self.exchange = nil
        record.backend = backend.label
        // RFC 8441 puts the HTTP/1.1 handshake on Junction: check the backend's accept for our key.
        let checker = NIOWebSocketClientUpgrader(requestKey: key) { channel, _ in
            channel.eventLoop.makeSucceededVoidFuture()
        }
        guard checker.shouldAllowUpgrade(upgradeResponse: head) else {
            _ = consume lease
            upstream.close()
            self.record = record
            self.respond(.badGateway("the backend's Sec-WebSocket-Accept does not match the key Junction sent"))
            return
        }
        record.status = 200
        record.upstreamTime = .now() - record.start
        record.isTunnel = true
        self.responseStarted = true
        self.responseEnded = true
        self.record = nil
        context.writeAndFlush(
            self.wrapOutboundOut(
                .headers(.init(headers: HTTP2HeadConverter.webSocketAccepted(head, requestID: record.requestID)))
            ),
            promise: nil
        )
        let tunnel = Tunnel(
            loop: self.loop,
            lease: lease,
            route: self.route,
            record: record
        )
        TunnelSplicer.splice(
            tunnel: tunnel,
            stream: (channel: context.channel, handler: self),
            upstream: (channel: upstreamChannel, handler: upstream)
        )
    }
}
