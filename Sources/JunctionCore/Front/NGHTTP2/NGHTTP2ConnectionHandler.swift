import CNGHTTP2
import NIOCore
import NIOHPACK
import NIOHTTP1

/// The HTTP/2 front of one client connection on libnghttp2: the last handler of its pipeline. It
/// owns the connection's `NGHTTP2Session`, its protocol state and deadlines
/// (`HTTP2ConnectionStateMachine`: idle, GOAWAY, PING, a graceful shutdown) and, per open stream,
/// the stream's `ProxyRequest`, or once a WebSocket runs on it the tunnel's client end
/// (`NGHTTP2TunnelEnd`). It is the wire those write through (`StreamWire`), and keeps wire code
/// only: what to answer is the request's.
///
/// Bytes in go to `session.receive`, and what the session found (`NGHTTP2Session.Event`) is
/// handled once it returned; what the session has to send goes out as one write and one flush per
/// read burst (`channelReadComplete`), and once per event-loop tick for answers that arrive from
/// upstream between reads. Everything runs on the connection's event loop.
final class NGHTTP2ConnectionHandler: ChannelDuplexHandler, DeadlineTracked {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = Never
    typealias OutboundOut = ByteBuffer

    static let maxConcurrentStreams: UInt32 = 100
    static let windowSize: UInt32 = 65535
    /// Response body queued in the session above which a stream's upstream is not read.
    static let queueMark = 64 * 1024

    /// What one stream writes through: this handler, for that stream.
    struct StreamWire: ResponseWire {
        /// invariant: the handler outlives every call through here. It cancels each stream's
        /// request and closes each tunnel end when the stream or the connection goes, a cancelled
        /// request or closed end never writes again, and each call holds the handler strongly
        /// while it runs. `ExchangeTests.connectionGoneBeforeItsRequest` fails under
        /// AddressSanitizer if that breaks.
        unowned(unsafe) let handler: NGHTTP2ConnectionHandler
        let id: Int32

        func writeHead(_ head: HTTPResponseHead, _ details: ResponseDetails) {
            let handler = self.handler
            handler.writeHead(stream: self.id, head, details)
        }

        func writeBody(_ bytes: ByteBuffer) -> Bool {
            let handler = self.handler
            handler.session.submitData(stream: self.id, bytes, endStream: false)
            return handler.canTake(stream: self.id)
        }

        func writeEnd(_ end: ResponseEnd) {
            let handler = self.handler
            handler.writeEnd(stream: self.id, end)
        }

        func reset() {
            let handler = self.handler
            handler.session.resetStream(self.id, code: UInt32(NGHTTP2_CANCEL.rawValue))
            handler.outputPending()
        }

        func flush() {
            let handler = self.handler
            handler.flush(stream: self.id)
        }

        /// Opens the stream's window by the body its end handed on (a tunnel's partner took it).
        func consumeTaken() {
            let handler = self.handler
            handler.session.consumeTaken(stream: self.id)
            handler.outputPending()
        }

        /// Whether the stream takes more output now (under the queue mark, the socket writable).
        var canTake: Bool { self.handler.canTake(stream: self.id) }

        /// The session, for a tunnel end's own submissions on the stream.
        var session: NGHTTP2Session { self.handler.session }

        /// The submissions go out with the read burst's output, or on this tick.
        func outputPending() {
            let handler = self.handler
            handler.outputPending()
        }
    }

    /// Who a stream is to the connection.
    private enum Stream {
        case request(ProxyRequest)
        /// A WebSocket runs on it: the request left, the tunnel's client end took its place.
        case tunnel(NGHTTP2TunnelEnd)
    }

    let session: NGHTTP2Session
    private let loop: LoopContext
    private let listener: ListenerIdentity
    private var machine: HTTP2ConnectionStateMachine
    private var context: ChannelHandlerContext?
    private var clientAddress = "-"
    /// The client as the per-client limits count it (nil: a UNIX socket, or not known).
    private var clientKey: ClientKey?
    /// The streams the session reported and has not closed yet.
    private var streams: [Int32: Stream] = [:]
    /// Streams that sent bytes upstream during this read burst (flushed at its end).
    private var touched: [Int32] = []
    /// Between the first `channelRead` of a burst and its `channelReadComplete`, which drains.
    private var inReadBurst = false
    /// Draining the session's output (and what draining found): a new drain waits for this one.
    private var flushing = false
    private var flushAgain = false
    private var drainScheduled = false
    private var closeScheduled = false

    var sweeperSlot = -1
    var deadline: NIODeadline { self.machine.deadline }

    /// Adds the front at the end of `channel`'s pipeline. `headerDeadline`: `client_header_timeout`
    /// counted from accept.
    @discardableResult
    static func install(
        on channel: Channel,
        loop: LoopContext,
        listener: ListenerIdentity,
        headerDeadline: NIODeadline
    ) throws -> NGHTTP2ConnectionHandler {
        let front = NGHTTP2ConnectionHandler(loop: loop, listener: listener, headerDeadline: headerDeadline)
        try channel.pipeline.syncOperations.addHandler(front)
        return front
    }

    private init(loop: LoopContext, listener: ListenerIdentity, headerDeadline: NIODeadline) {
        self.loop = loop
        self.listener = listener
        let limits = loop.runtime.limits
        self.machine = HTTP2ConnectionStateMachine(
            timeouts: .init(idle: limits.clientIdleTimeout, shutdownGrace: limits.shutdownGrace),
            headerDeadline: headerDeadline
        )
        self.session = NGHTTP2Session(
            configuration: NGHTTP2Session.Configuration(
                maxConcurrentStreams: Self.maxConcurrentStreams,
                initialWindowSize: Self.windowSize,
                maxHeaderListSize: UInt32(clamping: limits.maxHeaderBytes * 2),
                headerBudget: limits.maxHeaderBytes,
                connectionWindowSize: Self.maxConcurrentStreams * Self.windowSize
            )
        )
    }

    // MARK: ChannelHandler

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        let peer = self.listener.clientAddress == nil ? context.channel.remoteAddress : nil
        if let ip = self.listener.clientAddress ?? peer?.ipAddress {
            self.clientAddress = ip
        }
        self.clientKey = self.listener.clientKey ?? peer.flatMap(ClientKey.init)
        self.loop.sweeper.register(self)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.loop.sweeper.unregister(self)
        self.dropStreams()
        self.context = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        self.inReadBurst = true
        switch self.session.receive(self.unwrapInboundIn(data)) {
        case .ok:
            self.handleEvents()
        case .connectionError:
            // The GOAWAY is in the output: it goes out, nothing after it, then the close; what
            // else the read held (new streams among it) is not answered, but the 431s the session
            // answered are logged.
            while let event = self.session.nextEvent() {
                if case .refused(_, let pseudoHeaders, let status) = event {
                    self.logRefused(pseudoHeaders, status: status)
                }
            }
            self.inReadBurst = false
            self.flushOutput(context: context)
            self.perform(self.machine.connectionErrorSent())
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        guard self.inReadBurst else { return }
        self.inReadBurst = false
        for id in self.touched {
            switch self.streams[id] {
            case .request(let request): request.flushRequest()
            case .tunnel(let end): end.readBurstEnded()
            case nil: break
            }
        }
        self.touched.removeAll(keepingCapacity: true)
        self.flushOutput(context: context)
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable {
            for stream in self.streams.values {
                switch stream {
                case .request(let request): request.clientWritable()
                case .tunnel(let end): end.clientWritable()
                }
            }
        }
        context.fireChannelWritabilityChanged()
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.machine.closed()
        self.loop.sweeper.unregister(self)
        self.dropStreams()
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        // TLS and socket errors: the channel closes; the streams go with `channelInactive`.
        context.close(promise: nil)
    }

    /// A flush from behind: what the session holds goes too.
    func flush(context: ChannelHandlerContext) {
        self.outputPending(now: true)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        switch event {
        case is ChannelShouldQuiesceEvent:
            // The listener drains or Junction shuts down: GOAWAY, and the open streams get the
            // grace.
            self.perform(self.machine.quiesce(now: .now()))
        case is HandoverEvent:
            // An upgrade: GOAWAY; tunnels stay until the drainer closes them.
            self.perform(self.machine.handOver(now: .now(), holdsTunnels: self.holdsTunnels))
        default:
            context.fireUserInboundEventTriggered(event)
        }
    }

    // MARK: DeadlineTracked

    func deadlinePassed(now: NIODeadline) {
        self.perform(self.machine.deadlinePassed(now: now))
    }

    // MARK: the session's events

    private func handleEvents() {
        while let event = self.session.nextEvent() {
            switch event {
            case .headers(let id, let fields, let endStream):
                self.open(id, fields, endStream: endStream)
            case .data(let id, let bytes, let endStream):
                self.data(id, bytes, endStream: endStream)
            case .trailers(let id, let fields):
                switch self.streams[id] {
                case .request(let request):
                    request.requestEnded(trailers: HTTP2HeadConverter.http1Fields(fields))
                    self.touch(id)
                case .tunnel(let end):
                    // Trailers on a WebSocket stream carry nothing to relay; they still end its half.
                    end.clientEnded()
                case nil:
                    break
                }
            case .reset(let id, _):
                // `.closed` follows; the request stops (and is logged) now.
                if case .request(let request) = self.streams[id] { request.cancel() }
            case .closed(let id, _):
                guard let stream = self.streams.removeValue(forKey: id) else { break }
                switch stream {
                case .request(let request): request.cancel()
                case .tunnel(let end):
                    end.streamClosed()
                    if !self.holdsTunnels { self.machine.tunnelsGone(now: .now()) }
                }
                self.perform(self.machine.streamClosed(now: .now()))
            case .writable(let id):
                switch self.streams[id] {
                case .request(let request): request.clientWritable()
                case .tunnel(let end): end.clientWritable()
                case nil: break
                }
            case .refused(_, let pseudoHeaders, let status):
                self.logRefused(pseudoHeaders, status: status)
            case .goAwayReceived:
                self.perform(self.machine.goAwayReceived())
            case .pingAcked(let data):
                self.perform(self.machine.pingAcked(data))
            }
        }
    }

    /// A request head: a request for the stream, started at once.
    private func open(_ id: Int32, _ fields: HPACKHeaders, endStream: Bool) {
        let request: ProxyRequest
        switch HTTP2HeadConverter.request(fields, endStream: endStream) {
        case .failure(let problem) where problem.isStreamError:
            // Malformed: reset, not answered (RFC 9113 8.1.1).
            self.session.resetStream(id, code: UInt32(NGHTTP2_PROTOCOL_ERROR.rawValue))
            self.outputPending()
            return
        case .failure(let problem):
            request = ProxyRequest(
                loop: self.loop,
                wire: StreamWire(handler: self, id: id),
                listener: self.listener,
                client: self.clientAddress,
                refusing: problem.failure,
                close: false,
                target: fields.first(name: ":path") ?? "-",
                version: HTTPVersion(major: 2, minor: 0)
            )
        case .success(let converted):
            request = ProxyRequest(
                loop: self.loop,
                wire: StreamWire(handler: self, id: id),
                listener: self.listener,
                client: self.clientAddress,
                clientKey: self.clientKey,
                head: converted.head,
                facts: converted.facts,
                webSocketKey: converted.webSocketKey
            )
        }
        self.machine.streamOpened(Int(id))
        self.streams[id] = .request(request)
        request.start()
        if endStream { request.requestEnded(trailers: nil) }
        self.touch(id)
    }

    private func data(_ id: Int32, _ bytes: ByteBuffer, endStream: Bool) {
        switch self.streams[id] {
        case .request(let request):
            if bytes.readableBytes > 0 { request.requestBody(bytes) }
            if endStream { request.requestEnded(trailers: nil) }
            // The window reopens once the upstream took the body (else on the wire's flush).
            if request.canTakeRequestBody { self.session.consumeTaken(stream: id) }
            self.touch(id)
        case .tunnel(let end):
            end.clientData(bytes, endStream: endStream)
            self.touch(id)
        case nil:
            // A stream that was reset at its head: its body is not wanted.
            self.session.consumeTaken(stream: id)
        }
    }

    /// The stream sent bytes upstream in this read burst: flush them at its end.
    private func touch(_ id: Int32) {
        if self.touched.last != id { self.touched.append(id) }
    }

    /// A head over `limits.max_header_bytes`, answered 431 by the session: logged with the method
    /// and target it kept.
    private func logRefused(_ pseudoHeaders: HPACKHeaders, status: UInt) {
        var record = AccessRecord(
            client: self.clientAddress,
            listener: self.listener.name,
            method: pseudoHeaders.first(name: ":method").map { HTTPMethod(rawValue: $0) } ?? .GET,
            target: pseudoHeaders.first(name: ":path") ?? "-",
            version: HTTPVersion(major: 2, minor: 0),
            requestID: self.loop.nextRequestID(),
            facts: RequestFacts()
        )
        record.status = status
        self.loop.requestFinished(record)
    }

    /// Whether a WebSocket runs on one of the streams.
    private var holdsTunnels: Bool {
        self.streams.values.contains {
            if case .tunnel = $0 { return true }
            return false
        }
    }

    /// The connection is gone: every request still running is cancelled (and logged as such),
    /// every tunnel end closes.
    private func dropStreams() {
        let streams = self.streams
        self.streams.removeAll()
        self.touched.removeAll()
        for stream in streams.values {
            switch stream {
            case .request(let request): request.cancel()
            case .tunnel(let end): end.streamClosed()
            }
        }
    }

    // MARK: the connection's own frames

    private func perform(_ action: HTTP2ConnectionStateMachine.Action) {
        switch action {
        case .none:
            break
        case .sendGoAwayAndPing:
            // GOAWAY with 2^31-1, and a PING whose ack tells that the client has seen it.
            self.session.submitShutdownNotice()
            self.session.submitPing(HTTP2ConnectionStateMachine.goAwayPingData)
            self.outputPending(now: true)
        case .sendGoAway(_, let thenClose):
            // nghttp2 lowers the id to the last stream it received; the streams it refused itself
            // (431s) count as processed too.
            self.session.submitGoAway(lastStreamID: self.session.lastProcessedStreamID, code: 0)
            self.outputPending(now: true)
            if thenClose { self.closeAfterOutput() }
        case .close:
            self.closeAfterOutput()
        }
    }

    /// Closes after what was written: on the next tick, so the output (a GOAWAY) and TLS's
    /// close_notify go first.
    private func closeAfterOutput() {
        guard let context = self.context, !self.closeScheduled else { return }
        self.outputPending(now: true)
        self.closeScheduled = true
        context.eventLoop.assumeIsolated().execute { context.close(promise: nil) }
    }

    // MARK: output

    /// Frames were submitted. Drained at the end of the read burst when one is under way, else
    /// once per event-loop tick (`now`: at once when no drain or read burst is under way), so the
    /// answers of many streams share one write. The tick's drain is scheduled during a read burst
    /// too: it finds nothing once `channelReadComplete` drained, and it does not leave the output
    /// behind should a read ever come without its `channelReadComplete`.
    func outputPending(now: Bool = false) {
        guard let context = self.context else { return }
        if now && self.flushing {
            self.flushAgain = true
            return
        }
        if now && !self.inReadBurst {
            self.flushOutput(context: context)
            return
        }
        guard !self.drainScheduled else { return }
        self.drainScheduled = true
        context.eventLoop.assumeIsolated().execute {
            self.drainScheduled = false
            guard let context = self.context else { return }
            self.flushOutput(context: context)
        }
    }

    /// One write and one flush of everything the session has, then what serialising found (streams
    /// writable again or closed); closes once the session wants nothing more.
    private func flushOutput(context: ChannelHandlerContext) {
        guard !self.flushing else {
            self.flushAgain = true
            return
        }
        self.flushing = true
        repeat {
            self.flushAgain = false
            var wrote = false
            self.session.drainOutput { bytes in
                context.write(self.wrapOutboundOut(bytes), promise: nil)
                wrote = true
            }
            if wrote { context.flush() }
            self.handleEvents()
        } while self.flushAgain
        self.flushing = false
        if !self.session.wantsRead && !self.session.wantsWrite, !self.closeScheduled {
            // Both sides are done (GOAWAY exchanged and the last stream closed, or a connection
            // error sent): close on the next tick, after TLS saw the flush.
            self.closeScheduled = true
            context.eventLoop.assumeIsolated().execute { context.close(promise: nil) }
        }
    }

    // MARK: the wire (`StreamWire`)

    /// Whether the stream takes more response bytes now.
    private func canTake(stream id: Int32) -> Bool {
        (self.context?.channel.isWritable ?? false) && self.session.queuedBytes(stream: id) < Self.queueMark
    }

    private func writeHead(stream id: Int32, _ head: HTTPResponseHead, _ details: ResponseDetails) {
        let block = HTTP2HeadConverter.response(
            head,
            requestID: details.requestID,
            bodyless: details.bodyless,
            setCookie: details.setCookie,
            gzip: details.gzip,
            rules: details.rules
        )
        self.session.submitResponse(stream: id, headers: block, hasBody: !details.bodyless)
    }

    private func writeEnd(stream id: Int32, _ end: ResponseEnd) {
        switch end {
        case .complete(let trailers):
            // A bodyless response ended with its head; these do nothing then.
            if let trailers, !trailers.isEmpty {
                self.session.submitTrailers(stream: id, HTTP2HeadConverter.trailers(trailers))
            } else {
                self.session.submitData(stream: id, ByteBuffer(), endStream: true)
            }
            if !self.session.clientEnded(stream: id) {
                // RFC 9113 8.1: answered before the request ended; ask the client to stop sending.
                self.session.resetAfterResponse(stream: id)
            }
            self.outputPending()
        case .tunnel(let handover):
            self.openTunnel(stream: id, handover)
        }
    }

    /// The backend accepted an RFC 8441 WebSocket: 200, and the stream's request gives way to the
    /// tunnel's client end, paired with the upstream socket.
    private func openTunnel(stream id: Int32, _ handover: TunnelHandover) {
        let accepted = HTTP2HeadConverter.webSocketAccepted(
            handover.head,
            requestID: handover.requestID,
            rules: handover.rules
        )
        // The stream stays open both ways: its DATA is the WebSocket's bytes from now on.
        self.session.submitResponse(stream: id, headers: accepted, hasBody: true)
        let end = NGHTTP2TunnelEnd(wire: StreamWire(handler: self, id: id))
        self.streams[id] = .tunnel(end)
        self.machine.tunnelOpened()
        // Request bytes that went upstream before the handshake (none from a conforming client)
        // have their window opened here.
        self.session.consumeTaken(stream: id)
        self.outputPending()
        if !TunnelSplicer.splice(stream: end, handover: handover, loop: self.loop) {
            end.partnerClose(.reset)
        }
    }

    private func flush(stream id: Int32) {
        if case .request(let request) = self.streams[id], request.canTakeRequestBody {
            self.session.consumeTaken(stream: id)
        }
        self.outputPending()
    }
}
