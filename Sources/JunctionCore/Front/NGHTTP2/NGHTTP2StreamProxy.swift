import CNGHTTP2
import NIOCore
import NIOHPACK
import NIOHTTP1
import NIOWebSocket

/// One HTTP/2 stream of a client connection on libnghttp2: converts its request into the same
/// `ProxyRequest` / `ProxyExchange` the HTTP/1.1 front uses, and the upstream's HTTP/1.1 response
/// back into session submissions. No channel of its own: it lives in its
/// `NGHTTP2ConnectionHandler` from the request head to the stream's close.
///
/// Backpressure both ways goes through HTTP/2 flow control and the session's queue: request body
/// opens the client's windows (`consume`) only once the upstream took it, and the upstream is read
/// only while the stream's queued response body is under `queueMark` and the socket is writable.
final class NGHTTP2StreamProxy {
    /// Response body queued in the session above which the upstream is not read.
    static let queueMark = 64 * 1024

    private static let version = HTTPVersion(major: 2, minor: 0)

    /// Request input that arrived with the head, before the stream started.
    private enum Early {
        case data(ByteBuffer, endStream: Bool)
        case trailers(HPACKHeaders)
    }

    let id: Int32
    private unowned let connection: NGHTTP2ConnectionHandler
    /// The request head until `start`.
    private var head: HPACKHeaders?
    private let headEndsStream: Bool
    private var early: [Early] = []
    private var started = false
    /// The stream is closed (or reset by the client): nothing more may be submitted.
    private var isClosed = false
    /// The stream's request, from its head on: the record, limits, gzip (shared with HTTP/1.1).
    private var relay: ResponseRelay?
    private var exchange: ProxyExchange?
    private var webSocketKey: String?
    /// The RFC 8441 tunnel the stream became once the backend accepted the WebSocket.
    private var tunnel: NGHTTP2TunnelEndpoint?
    /// Whether the client ended its side of the stream (END_STREAM seen).
    private var requestEnded = false
    /// Request body handed to the exchange whose window is not opened yet.
    private var owed = 0
    /// Already in the connection's list of streams to flush upstream at the end of the read burst.
    private var touched = false

    init(id: Int32, connection: NGHTTP2ConnectionHandler, headers: HPACKHeaders, endStream: Bool) {
        self.id = id
        self.connection = connection
        self.head = headers
        self.headEndsStream = endStream
        self.requestEnded = endStream
    }

    private var session: NGHTTP2Session { self.connection.session }
    private var loop: LoopContext { self.connection.loop }
    private var runtime: RuntimeConfig { self.loop.runtime }

    // MARK: requests

    /// The head arrived in a `receive` that found no connection error: dispatch it, then what came
    /// with it.
    func start() {
        guard !self.started, !self.isClosed, let block = self.head else { return }
        self.started = true
        self.head = nil
        self.dispatch(block, endStream: self.headEndsStream)
        let early = self.early
        self.early = []
        for input in early {
            switch input {
            case .data(let bytes, let endStream): self.dataArrived(bytes, endStream: endStream)
            case .trailers(let trailers): self.trailersArrived(trailers)
            }
        }
    }

    func dataArrived(_ bytes: ByteBuffer, endStream: Bool) {
        guard self.started else {
            self.early.append(.data(bytes, endStream: endStream))
            return
        }
        if let tunnel = self.tunnel {
            tunnel.clientData(bytes, endStream: endStream)
            self.touchUpstream()
            return
        }
        if endStream { self.requestEnded = true }
        if bytes.readableBytes > 0 { self.requestBody(bytes) }
        if endStream { self.exchange?.sendEnd(nil) }
    }

    func trailersArrived(_ trailers: HPACKHeaders) {
        guard self.started else {
            self.early.append(.trailers(trailers))
            return
        }
        if let tunnel = self.tunnel {
            // Trailers on a WebSocket stream carry nothing to relay; they still end its half.
            tunnel.clientEnded()
            return
        }
        self.requestEnded = true
        self.exchange?.sendEnd(Self.http1Fields(trailers))
    }

    /// The end of the client's read burst: push what went upstream.
    func flushUpstream() {
        self.touched = false
        self.exchange?.flushRequest()
        self.tunnel?.readBurstEnded()
    }

    private func dispatch(_ block: HPACKHeaders, endStream: Bool) {
        let request: HTTP2HeadConverter.Request
        switch HTTP2HeadConverter.request(block, endStream: endStream) {
        case .success(let value):
            request = value
        case .failure(let problem) where problem.isStreamError:
            // Malformed: reset, not answered (RFC 9113 8.1.1).
            self.session.resetStream(self.id, code: UInt32(NGHTTP2_PROTOCOL_ERROR.rawValue))
            self.connection.outputPending()
            return
        case .failure(let problem):
            self.beginRecord(method: .GET, target: block.first(name: ":path") ?? "-", facts: RequestFacts())
            self.respond(problem.failure)
            return
        }
        self.webSocketKey = request.webSocketKey
        self.beginRecord(method: request.head.method, target: request.head.uri, facts: request.facts)
        // The header budget (431) was enforced by the session before the head got here.
        if let port = self.connection.listener.redirectHTTPSPort {
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
            listener: self.connection.listener,
            clientAddress: self.connection.clientAddress,
            delegate: self
        ) {
        case .failure(let failure):
            self.respond(failure)
        case .success(let dispatched):
            self.relay!.routed(dispatched.route)
            self.exchange = dispatched.exchange
            dispatched.exchange.start()
            if endStream { self.exchange?.sendEnd(nil) }
            self.touchUpstream()
        }
    }

    private func requestBody(_ body: ByteBuffer) {
        let count = body.readableBytes
        guard self.relay != nil, let exchange = self.exchange else {
            // Answered already (or never dispatched): the body is not wanted, its window reopens.
            self.session.consume(stream: self.id, bytes: count)
            return
        }
        if !self.relay!.requestBodyArrived(count, limit: self.runtime.limits.maxBodyBytes) {
            self.exchange = nil
            exchange.cancel()
            self.session.consume(stream: self.id, bytes: count + self.owed)
            self.owed = 0
            if self.relay!.started {
                self.reset()
            } else {
                self.respond(.bodyTooLarge)
            }
            return
        }
        exchange.sendBody(body)
        self.owed += count
        self.touchUpstream()
        if exchange.canTakeRequestData { self.releaseOwed() }
    }

    /// Opens the client's windows for the body the upstream took.
    private func releaseOwed() {
        guard self.owed > 0, !self.isClosed else { return }
        self.session.consume(stream: self.id, bytes: self.owed)
        self.owed = 0
        // The WINDOW_UPDATE goes out with the read burst's output, or on this tick.
        self.connection.outputPending()
    }

    private func touchUpstream() {
        guard !self.touched else { return }
        self.touched = true
        self.connection.touch(self)
    }

    private func beginRecord(method: HTTPMethod, target: String, facts: RequestFacts) {
        let record = AccessRecord(
            start: .now(),
            client: self.connection.clientAddress,
            listener: self.connection.listener.name,
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

    // MARK: the stream's end

    /// The stream closed, the client reset it, or the connection went away: an exchange still
    /// running is cancelled, and the request logged (499 when no response had started).
    func closed() {
        guard !self.isClosed else { return }
        self.isClosed = true
        self.early = []
        // The session gave the stream's unconsumed bytes back already; and the connection may be
        // gone: nothing may reach it from here on.
        self.owed = 0
        if let tunnel = self.tunnel {
            self.tunnel = nil
            tunnel.streamClosed()
        }
        if let exchange = self.exchange {
            self.exchange = nil
            exchange.cancel()
            self.relay?.clientGone(on: self.loop)
        }
        self.relay = nil
    }

    /// RST_STREAM CANCEL: the client sees the response cut, not completed.
    private func reset() {
        guard !self.isClosed else { return }
        self.session.resetStream(self.id, code: UInt32(NGHTTP2_CANCEL.rawValue))
        self.connection.outputPending()
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
        guard !self.isClosed, self.relay?.answer(status: head.status.code, bodyBytes: body.utf8.count) == true
        else { return }
        let headOnly = self.relay?.method == .HEAD
        self.session.submitResponse(stream: self.id, headers: HTTP2HeadConverter.response(head), hasBody: !headOnly)
        if !headOnly {
            self.session.submitData(stream: self.id, ByteBuffer(string: body), endStream: true)
        }
        if !self.requestEnded {
            // RFC 9113 8.1: answered before the request ended; ask the client to stop sending.
            self.session.resetAfterResponse(stream: self.id)
        }
        self.connection.outputPending()
        self.finish()
    }

    /// The response is complete: log it. The stream closes once both directions have ended.
    private func finish() {
        self.exchange = nil
        self.relay?.finish(on: self.loop)
        // Body still owed a window is not wanted any more.
        self.releaseOwed()
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

extension NGHTTP2StreamProxy: ProxyExchangeDelegate, ResponseWire {
    var canTakeResponse: Bool {
        !self.isClosed && self.connection.isWritable
            && self.session.queuedBytes(stream: self.id) < Self.queueMark
    }

    /// The session framed the queued body, or the socket drained: the upstream may be read again.
    func downstreamBecameWritable() {
        self.exchange?.downstreamBecameWritable()
        self.tunnel?.downstreamBecameWritable()
    }

    func exchangeReceivedResponseHead(_ head: HTTPResponseHead, backend: Backend, setCookie: String?) {
        guard !self.isClosed, self.relay != nil else { return }
        let gzip = self.relay!.upstreamHead(head, backend: backend, budget: self.loop.gzipBudget)
        let bodyless = self.relay!.bodyless
        let block = HTTP2HeadConverter.response(
            head,
            requestID: self.relay!.record.requestID,
            bodyless: bodyless,
            setCookie: setCookie,
            gzip: gzip
        )
        self.session.submitResponse(stream: self.id, headers: block, hasBody: !bodyless)
    }

    func exchangeReceivedResponseBody(_ body: ByteBuffer) {
        guard let action = self.relay?.upstreamBody(body, allocator: self.loop.allocator) else { return }
        self.write(action, logger: self.loop.logger, listener: self.connection.listener.name)
    }

    func writeResponseBody(_ bytes: ByteBuffer) {
        guard bytes.readableBytes > 0, !self.isClosed else { return }
        self.session.submitData(stream: self.id, bytes, endStream: false)
    }

    /// The stream is reset: the client must not take a partial body as whole.
    func cutResponse() {
        self.exchange?.cancel()
        self.exchangeAborted()
    }

    func exchangeReceivedResponseEnd(_ trailers: HTTPHeaders?) {
        guard !self.isClosed, let tail = self.relay?.upstreamEnd(allocator: self.loop.allocator) else { return }
        guard self.write(tail, logger: self.loop.logger, listener: self.connection.listener.name) else { return }
        if self.relay?.bodyless == false {
            if let trailers, !trailers.isEmpty {
                self.session.submitTrailers(stream: self.id, HTTP2HeadConverter.trailers(trailers))
            } else {
                self.session.submitData(stream: self.id, ByteBuffer(), endStream: true)
            }
        }
        self.connection.outputPending()
        self.finish()
    }

    func exchangeFlush() {
        guard !self.isClosed else { return }
        self.connection.outputPending()
    }

    func exchangeFailed(_ failure: ProxyFailure, backend: Backend?) {
        self.exchange = nil
        self.relay?.failed(on: backend)
        self.respond(failure)
    }

    func exchangeAborted() {
        self.exchange = nil
        self.relay?.finish(on: self.loop)
        self.reset()
    }

    func exchangeUpstreamBecameWritable() {
        self.releaseOwed()
    }

    func exchangeUpgraded(_ head: HTTPResponseHead, upstream: UpstreamConnection, lease: consuming BackendLease) {
        let backend = lease.backend
        guard !self.isClosed, self.relay != nil, let upstreamChannel = upstream.channel, let key = self.webSocketKey
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
        // The stream stays open both ways: its DATA is the WebSocket's bytes from now on.
        self.session.submitResponse(
            stream: self.id,
            headers: HTTP2HeadConverter.webSocketAccepted(head, requestID: record.requestID),
            hasBody: true
        )
        let tunnel = Tunnel(loop: self.loop, lease: lease, route: self.relay!.route, record: record)
        let endpoint = NGHTTP2TunnelEndpoint(id: self.id, connection: self.connection, tunnel: tunnel)
        self.tunnel = endpoint
        // Request bytes that went upstream before the handshake (none from a conforming client)
        // have their window opened here.
        self.releaseOwed()
        self.connection.outputPending()
        TunnelSplicer.splice(tunnel: tunnel, stream: endpoint, upstream: (channel: upstreamChannel, handler: upstream))
    }
}
