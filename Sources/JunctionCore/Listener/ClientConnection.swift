import Logging
import NIOCore

/// The one owner of a client connection, from accept to close: the first handler of its
/// pipeline, holding the `ClientConnectionStateMachine` and the connection's deadline.
///
/// It reads the PROXY header and sniffs the h2c preface itself, so bytes that arrive with a
/// preface go to the next phase in the same event-loop turn (and with the read's
/// `channelReadComplete` behind them); after that every read passes straight through. It sets up
/// each phase's handlers behind itself (TLS, HTTP/1.1, HTTP/2), takes the fronts' events, and is
/// the connection's only `DeadlineTracked` entry: header, idle, linger and GOAWAY deadlines, and
/// the graceful shutdown's grace.
final class ClientConnection: ChannelInboundHandler, DeadlineTracked {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    /// The handler that speaks HTTP on the connection now.
    private enum Front {
        case none
        case http1(HTTP1ServerHandler)
        case http2(NGHTTP2ConnectionHandler)
    }

    private var machine: ClientConnectionStateMachine
    private let loop: LoopContext
    private let settings: ListenerSettings
    /// The listener's open connections (its limiter counted this one in at accept; it counts
    /// itself out when it leaves the pipeline).
    private let counter: ConnectionCounter?
    private var context: ChannelHandlerContext?
    private var front = Front.none
    /// Set once setup is over: reads go straight on.
    private var passThrough = false

    var sweeperSlot = -1
    var deadline: NIODeadline { self.machine.deadline }

    init(loop: LoopContext, settings: ListenerSettings, counter: ConnectionCounter? = nil, now: NIODeadline = .now()) {
        let limits = loop.runtime.limits
        self.loop = loop
        self.settings = settings
        self.counter = counter
        self.machine = ClientConnectionStateMachine(
            setup: .init(
                proxyProtocol: settings.config.proxyProtocol,
                tls: settings.tls != nil,
                http2: settings.config.http2
            ),
            timeouts: .init(
                header: limits.clientHeaderTimeout,
                idle: limits.clientIdleTimeout,
                shutdownGrace: limits.shutdownGrace
            ),
            now: now
        )
    }

    /// What the fronts are told about the listener and the client.
    private var identity: ListenerIdentity {
        var identity = self.settings.identity
        identity.clientAddress = self.machine.clientAddress
        return identity
    }

    // MARK: ChannelHandler

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        self.loop.sweeper.register(self)
        if let phase = self.machine.initialPhase {
            do {
                try self.install(phase, context: context)
                _ = self.machine.phaseInstalled()
            } catch {
                self.fail(context: context, "cannot set up the connection: \(error)")
                return
            }
        }
        self.passThrough = self.machine.passesBytesThrough
        // Set up after its listener began draining: it missed the broadcast.
        if self.counter?.isDraining == true {
            self.quiesce()
        }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.loop.sweeper.unregister(self)
        self.counter?.connectionClosed()
        self.context = nil
        self.front = .none
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if self.passThrough {
            context.fireChannelRead(data)
            return
        }
        var action = self.machine.bytesReceived(self.unwrapInboundIn(data))
        while true {
            switch action {
            case .wait:
                self.passThrough = self.machine.passesBytesThrough
                return
            case .install(let phase):
                do {
                    try self.install(phase, context: context)
                } catch {
                    self.fail(context: context, "cannot set up the connection: \(error)")
                    return
                }
                action = self.machine.phaseInstalled()
            case .forward(let bytes):
                // The read's channelReadComplete follows: the next phase sees a whole read.
                self.passThrough = true
                context.fireChannelRead(self.wrapInboundOut(bytes))
                return
            case .reject(let reason):
                self.fail(context: context, reason)
                return
            }
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.machine.closed()
        self.loop.sweeper.unregister(self)
        context.fireChannelInactive()
        self.front = .none
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        guard event is ChannelShouldQuiesceEvent else {
            context.fireUserInboundEventTriggered(event)
            return
        }
        // The owner decides for every phase (tunnels included): the event goes no further.
        self.quiesce()
    }

    /// Whether this connection was accepted by the listener that counts with `counter`.
    func belongs(to counter: ConnectionCounter) -> Bool {
        self.counter === counter
    }

    /// The listener drains (or Junction shuts down): finish what is under way, then close, within
    /// the shutdown grace.
    func quiesce() {
        guard self.context != nil else { return }
        switch self.machine.quiesce(now: .now()) {
        case .close:
            self.closeAfterFlush()
        case .finish:
            break
        case .http2(let action):
            self.perform(action)
        }
    }

    /// Sets up `phase`'s handlers at the end of the pipeline (behind this handler, or behind the
    /// TLS handshake observer).
    private func install(_ phase: ClientConnectionStateMachine.Phase, context: ChannelHandlerContext) throws {
        let channel = context.channel
        switch phase {
        case .tls:
            guard let tls = self.settings.tls else { preconditionFailure("TLS phase on a plain listener") }
            let sync = channel.pipeline.syncOperations
            try sync.addHandler(tls.makeHandler())
            try sync.addHandler(TLSHandshakeObserver(connection: self))
        case .http1:
            self.front = .http1(
                try HTTP1Pipeline.configure(
                    channel: channel,
                    loop: self.loop,
                    listener: self.identity,
                    connection: self
                )
            )
        case .http2:
            // libnghttp2 behind one handler: the session, its streams and their exchanges.
            let front = NGHTTP2ConnectionHandler(loop: self.loop, listener: self.identity, connection: self)
            try channel.pipeline.syncOperations.addHandler(front)
            self.front = .http2(front)
        }
    }

    private func fail(context: ChannelHandlerContext, _ reason: String) {
        self.loop.logger.debug(
            "client connection refused",
            metadata: ["listener": "\(self.settings.config.name)", "reason": "\(reason)"]
        )
        self.machine.closed()
        context.close(promise: nil)
    }

    /// Flushes what the pipeline holds (a last response, a GOAWAY), then closes: from the tail, so
    /// TLS ends with close_notify (whose answer NIOSSL waits for at most its shutdown timeout).
    private func closeAfterFlush() {
        guard let channel = self.context?.channel else { return }
        channel.flush()
        // The HTTP/2 front drains its session at the end of this tick when it cannot at once: close
        // after it.
        channel.eventLoop.assumeIsolated().execute { channel.close(promise: nil) }
    }

    // MARK: TLS

    /// The TLS handshake completed (from `TLSHandshakeObserver`, which leaves right after).
    func tlsHandshakeCompleted(alpn: String?) {
        guard let context = self.context, let phase = self.machine.tlsHandshakeCompleted(alpn: alpn) else { return }
        do {
            try self.install(phase, context: context)
            _ = self.machine.phaseInstalled()
        } catch {
            self.fail(context: context, "cannot set up \(phase) after TLS: \(error)")
        }
    }

    // MARK: HTTP/1.1 front

    /// Where the HTTP/1.1 connection is (nil once it is no longer HTTP/1.1).
    var http1State: ClientConnectionStateMachine.HTTP1State? {
        if case .http1(let state) = self.machine.state { return state }
        return nil
    }

    /// Whether the connection is closed or closing.
    var isClosed: Bool { self.machine.state == .closed }

    /// Whether a graceful shutdown started.
    var isQuiescing: Bool { self.machine.quiescing }

    func http1BytesArrived() {
        self.machine.http1BytesArrived(now: .now())
    }

    func http1RequestHeadArrived() -> ClientConnectionStateMachine.HeadAction {
        self.machine.http1RequestHeadArrived()
    }

    func http1RequestEnded() {
        self.machine.http1RequestEnded()
    }

    func http1ResponseStarting(requestWantsClose: Bool) -> Bool {
        self.machine.http1ResponseStarting(requestWantsClose: requestWantsClose)
    }

    func http1ResponseMustClose() {
        self.machine.http1ResponseMustClose()
    }

    func http1ResponseEnded() -> ClientConnectionStateMachine.ResponseEndAction {
        self.machine.http1ResponseEnded(now: .now())
    }

    func http1LingerDone() -> Bool {
        self.machine.http1LingerDone()
    }

    /// The HTTP/1.1 front handed the connection to a tunnel and left.
    func http1Upgraded() {
        self.machine.http1Upgraded()
        self.front = .none
    }

    /// The HTTP/1.1 front closed the connection (a protocol error, an aborted response).
    func http1Closed() {
        self.machine.closed()
    }

    // MARK: HTTP/2 front

    func http2StreamOpened(_ id: Int) {
        self.machine.http2StreamOpened(id)
    }

    func http2StreamClosed() {
        self.perform(self.machine.http2StreamClosed(now: .now()))
    }

    func http2PingAcked(_ data: UInt64) {
        self.perform(self.machine.http2PingAcked(data))
    }

    func http2GoAwayReceived() {
        self.perform(self.machine.http2GoAwayReceived())
    }

    /// The HTTP/2 session sent a GOAWAY with an error code: the connection is over.
    func http2ConnectionErrorSent() {
        self.perform(self.machine.http2ConnectionErrorSent())
    }

    private func perform(_ action: ClientConnectionStateMachine.HTTP2Action) {
        switch action {
        case .none:
            break
        case .sendGoAwayAndPing:
            if case .http2(let front) = self.front {
                front.sendGoAway(lastStreamID: nil, ping: ClientConnectionStateMachine.goAwayPingData)
            }
        case .sendGoAway(let lastStreamID, let thenClose):
            if case .http2(let front) = self.front {
                front.sendGoAway(lastStreamID: lastStreamID, ping: nil)
            }
            if thenClose { self.closeAfterFlush() }
        case .close:
            self.closeAfterFlush()
        }
    }

    // MARK: DeadlineTracked

    func deadlinePassed(now: NIODeadline) {
        switch self.machine.deadlinePassed(now: now) {
        case .none:
            break
        case .close:
            self.closeAfterFlush()
        case .requestTimeout:
            if case .http1(let front) = self.front {
                front.headerTimedOut()
            } else {
                self.closeAfterFlush()
            }
        case .http2(let action):
            self.perform(action)
        }
    }
}
