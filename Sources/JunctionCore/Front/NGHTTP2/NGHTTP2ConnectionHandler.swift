import NIOCore
import NIOHPACK
import NIOHTTP1

/// The HTTP/2 front of one client connection on libnghttp2: the last handler of its pipeline,
/// owning the connection's `NGHTTP2Session` and one `NGHTTP2StreamProxy` per open stream.
///
/// Bytes in go to `session.receive`; what the session has to send goes out as one write and one
/// flush per read burst (`channelReadComplete`), and once per event-loop tick for answers that
/// arrive from upstream between reads. It tells the connection's owner (`ClientConnection`, which
/// keeps the idle, GOAWAY and shutdown deadlines) when streams open and close, when a PING is
/// acknowledged, when the client sends GOAWAY and when a connection error ended the session, and
/// it submits the GOAWAY and PING frames the owner decides on.
///
/// Everything runs on the connection's event loop. nghttp2 must not be re-entered from its own
/// callbacks, so output requested while the session is running (a stream closing, a PING ack
/// leading to the final GOAWAY) is drained after the call returns.
final class NGHTTP2ConnectionHandler: ChannelDuplexHandler, NGHTTP2SessionDelegate {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = Never
    typealias OutboundOut = ByteBuffer

    static let maxConcurrentStreams: UInt32 = 100
    static let windowSize: UInt32 = 65535

    private(set) var session: NGHTTP2Session!
    let loop: LoopContext
    let listener: ListenerIdentity
    private var connection: ClientConnection?
    private var context: ChannelHandlerContext?
    private(set) var clientAddress = "-"
    /// The streams the session reported and has not closed yet.
    private var streams: [Int32: NGHTTP2StreamProxy] = [:]
    /// Streams whose head arrived during the current `receive`: they start once it returned `.ok`,
    /// so no answer is queued ahead of a GOAWAY for a connection error found in the same input.
    private var arrived: [NGHTTP2StreamProxy] = []
    /// Streams that sent request bytes upstream during this read burst (flushed at its end).
    private var touched: [NGHTTP2StreamProxy] = []
    /// Between the first `channelRead` of a burst and its `channelReadComplete`, which drains.
    private var inReadBurst = false
    /// Inside a session call (`receive`, `drainOutput`): nghttp2 must not be re-entered.
    private var inSession = false
    private var drainScheduled = false
    private var closeScheduled = false

    init(loop: LoopContext, listener: ListenerIdentity, connection: ClientConnection?) {
        self.loop = loop
        self.listener = listener
        self.connection = connection
        let limits = loop.runtime.limits
        let configuration = NGHTTP2Session.Configuration(
            maxConcurrentStreams: Self.maxConcurrentStreams,
            initialWindowSize: Self.windowSize,
            maxHeaderListSize: UInt32(clamping: limits.maxHeaderBytes * 2),
            headerBudget: limits.maxHeaderBytes,
            connectionWindowSize: Self.maxConcurrentStreams * Self.windowSize
        )
        self.session = NGHTTP2Session(configuration: configuration, delegate: self)
    }

    /// Whether the socket takes more output now (a stream's `canTakeResponse` also needs it).
    var isWritable: Bool { self.context?.channel.isWritable ?? false }

    // MARK: ChannelHandler

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        if let ip = self.listener.clientAddress ?? context.channel.remoteAddress?.ipAddress {
            self.clientAddress = ip
        }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.dropStreams()
        self.context = nil
        self.connection = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        self.inReadBurst = true
        self.inSession = true
        let result = self.session.receive(self.unwrapInboundIn(data))
        self.inSession = false
        let arrived = self.arrived
        self.arrived.removeAll(keepingCapacity: true)
        switch result {
        case .ok:
            for stream in arrived { stream.start() }
        case .connectionError:
            // The GOAWAY is in the output: send it and nothing after it, then close.
            self.inReadBurst = false
            self.flushOutput(context: context)
            self.connectionEnded(context: context)
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        guard self.inReadBurst else { return }
        self.inReadBurst = false
        for stream in self.touched { stream.flushUpstream() }
        self.touched.removeAll(keepingCapacity: true)
        self.flushOutput(context: context)
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable {
            for stream in self.streams.values { stream.downstreamBecameWritable() }
        }
        context.fireChannelWritabilityChanged()
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.dropStreams()
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        // TLS and socket errors: the channel closes; the streams go with `channelInactive`.
        context.close(promise: nil)
    }

    /// A flush from behind (`ClientConnection` before it closes): what the session holds goes too.
    func flush(context: ChannelHandlerContext) {
        self.outputPending(now: true)
    }

    // MARK: output

    /// A stream (or the owner) submitted frames. Drained at the end of the read burst when one is
    /// under way, else once per event-loop tick (`now`: at once when the session is not running),
    /// so the answers of many streams share one write. The tick's drain is scheduled during a read
    /// burst too: it finds nothing once `channelReadComplete` drained, and it does not leave the
    /// output behind should a read ever come without its `channelReadComplete`.
    func outputPending(now: Bool = false) {
        guard let context = self.context else { return }
        if now && !self.inSession && !self.inReadBurst {
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

    /// One write and one flush of everything the session has; closes once it wants nothing more.
    private func flushOutput(context: ChannelHandlerContext) {
        var wrote = false
        self.inSession = true
        self.session.drainOutput { bytes in
            context.write(self.wrapOutboundOut(bytes), promise: nil)
            wrote = true
        }
        self.inSession = false
        if wrote { context.flush() }
        if !self.session.wantsRead && !self.session.wantsWrite {
            // Both sides are done (GOAWAY exchanged and the last stream closed, or a connection
            // error sent).
            self.scheduleClose(context: context)
        }
    }

    /// Closes after what was written: on the next tick, so TLS sees the flush first.
    private func scheduleClose(context: ChannelHandlerContext) {
        guard !self.closeScheduled else { return }
        self.closeScheduled = true
        context.eventLoop.assumeIsolated().execute { context.close(promise: nil) }
    }

    private func connectionEnded(context: ChannelHandlerContext) {
        self.connection?.http2ConnectionErrorSent()
        self.scheduleClose(context: context)
    }

    /// The connection is gone: every exchange still running is cancelled (and logged as such).
    private func dropStreams() {
        let streams = self.streams
        self.streams.removeAll()
        self.arrived.removeAll()
        self.touched.removeAll()
        for stream in streams.values { stream.closed() }
    }

    /// The stream sent request bytes upstream in this read burst: flush them at its end.
    func touch(_ stream: NGHTTP2StreamProxy) {
        self.touched.append(stream)
    }

    // MARK: the owner's GOAWAY and PING

    /// GOAWAY (`lastStreamID` nil: the graceful first one, 2^31-1) and, when `ping` is given, a PING
    /// whose ack tells that the client has seen it.
    func sendGoAway(lastStreamID: Int?, ping: UInt64?) {
        if lastStreamID == nil {
            self.session.submitShutdownNotice()
        } else {
            // nghttp2 lowers the id to the last stream it received; the streams it refused itself
            // (431s) count as processed too.
            self.session.submitGoAway(lastStreamID: self.session.lastProcessedStreamID, code: 0)
        }
        if let ping { self.session.submitPing(ping) }
        self.outputPending(now: true)
    }

    // MARK: NGHTTP2SessionDelegate

    func streamHeadersComplete(_ id: Int32, headers: HPACKHeaders, endStream: Bool) {
        let stream = NGHTTP2StreamProxy(id: id, connection: self, headers: headers, endStream: endStream)
        self.streams[id] = stream
        self.arrived.append(stream)
        self.connection?.http2StreamOpened(Int(id))
    }

    func streamData(_ id: Int32, _ bytes: ByteBuffer, endStream: Bool) {
        self.streams[id]?.dataArrived(bytes, endStream: endStream)
    }

    func streamTrailers(_ id: Int32, _ trailers: HPACKHeaders) {
        self.streams[id]?.trailersArrived(trailers)
    }

    func streamReset(_ id: Int32, errorCode: UInt32) {
        self.streams[id]?.closed()
    }

    func streamClosed(_ id: Int32, errorCode: UInt32) {
        guard let stream = self.streams.removeValue(forKey: id) else { return }
        stream.closed()
        self.connection?.http2StreamClosed()
    }

    func streamWritable(_ id: Int32) {
        self.streams[id]?.downstreamBecameWritable()
    }

    /// A head over `limits.max_header_bytes`, answered 431 by the session: logged as the old front
    /// logged it (the method and target it kept, status 431).
    func streamRefused(_ id: Int32, pseudoHeaders: HPACKHeaders, status: UInt) {
        let method = pseudoHeaders.first(name: ":method").map { HTTPMethod(rawValue: $0) } ?? .GET
        let record = AccessRecord(
            start: .now(),
            client: self.clientAddress,
            listener: self.listener.name,
            method: method,
            target: pseudoHeaders.first(name: ":path") ?? "-",
            version: HTTPVersion(major: 2, minor: 0),
            status: status,
            requestID: self.loop.nextRequestID(),
            referer: nil,
            userAgent: nil
        )
        self.loop.requestFinished(record)
    }

    func goAwayReceived(lastStreamID: Int32, errorCode: UInt32) {
        self.connection?.http2GoAwayReceived()
    }

    func pingAcked(_ data: UInt64) {
        self.connection?.http2PingAcked(data)
    }
}
