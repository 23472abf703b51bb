import Logging
import NIOCore
import NIOTLS

/// The setup of one client connection, from accept until a front takes it: the PROXY header, the
/// TLS handshake (SNI picks the certificate) and the choice of protocol (ALPN, or the h2c preface
/// on a plain listener), all within `client_header_timeout` (`ClientConnectionStateMachine`).
///
/// It reads the PROXY header and sniffs the h2c preface itself, so bytes that arrive with a
/// preface go on to the next phase in the same event-loop turn (with the read's
/// `channelReadComplete` behind them). It puts the TLS handler in front of itself, so it sees the
/// handshake complete; then it sets up the HTTP/1.1 or HTTP/2 front behind itself, hands it what it
/// holds and the header deadline, and leaves the pipeline: after the setup, no byte passes it.
final class ClientConnection: ChannelInboundHandler, RemovableChannelHandler, DeadlineTracked {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    private var machine: ClientConnectionStateMachine
    private let loop: LoopContext
    private let settings: ListenerSettings
    private var context: ChannelHandlerContext?
    /// The client a PROXY header named, as the per-client limits count it.
    private var clientKey: ClientKey?

    var sweeperSlot = -1
    var deadline: NIODeadline { self.machine.deadline }

    /// Sets up a new connection of a listener with `settings`: a plain HTTP/1.1 listener hands it
    /// to the front at once; any other starts with the setup.
    static func install(
        on channel: Channel,
        loop: LoopContext,
        settings: ListenerSettings,
        now: NIODeadline = .now()
    ) throws {
        let setup = ClientConnectionStateMachine.Setup(
            proxyProtocol: settings.config.proxyProtocol,
            tls: settings.tls != nil,
            http2: settings.config.http2,
            acmeValidations: settings.tls?.challengeContext != nil
        )
        let headerTimeout = loop.runtime.limits.clientHeaderTimeout
        // The client is the socket's peer unless a PROXY header will say (then it is admitted
        // once the header is read).
        if !setup.proxyProtocol, loop.runtime.clientLimits.settings.maxConnections > 0 {
            let peer = channel.remoteAddress
            guard
                Self.admit(
                    channel,
                    client: peer.flatMap(ClientKey.init),
                    address: peer?.ipAddress,
                    loop: loop,
                    settings: settings
                )
            else {
                // Not registered yet: closed once it is active.
                try channel.pipeline.syncOperations.addHandler(RefusedConnection())
                return
            }
        }
        guard setup != ClientConnectionStateMachine.Setup() else {
            // Nothing to read before the first request: the front takes the connection now.
            try HTTP1Front.install(
                on: channel,
                loop: loop,
                listener: settings.identity,
                headerDeadline: now + headerTimeout
            )
            return
        }
        let machine = ClientConnectionStateMachine(setup: setup, headerTimeout: headerTimeout, now: now)
        try channel.pipeline.syncOperations.addHandler(
            ClientConnection(loop: loop, settings: settings, machine: machine)
        )
    }

    private init(loop: LoopContext, settings: ListenerSettings, machine: ClientConnectionStateMachine) {
        self.loop = loop
        self.settings = settings
        self.machine = machine
    }

    /// What the front is told about the listener and the client.
    private var identity: ListenerIdentity {
        var identity = self.settings.identity
        identity.clientAddress = self.machine.clientAddress
        identity.clientKey = self.clientKey
        return identity
    }

    /// `limits.per_client.max_connections` for a new connection of `client`: true when it is let
    /// in (counted until its channel closes), false when it was closed at once (counted in
    /// `junction_limited_total`, logged at most once a second).
    private static func admit(
        _ channel: Channel,
        client: ClientKey?,
        address: String?,
        loop: LoopContext,
        settings: ListenerSettings
    ) -> Bool {
        let limits = loop.runtime.clientLimits
        guard let client, limits.settings.maxConnections > 0 else { return true }
        switch limits.admitConnection(of: client) {
        case .admitted(let slot):
            if let slot { channel.closeFuture.whenComplete { _ in slot.release() } }
            return true
        case .refused:
            let listener = settings.config.name
            loop.metrics?.limited(listener: listener, reason: .connections)
            if let closed = loop.runtime.limiter.refusalToLog(now: NIODeadline.now().uptimeNanoseconds) {
                loop.logger.warning(
                    "per-client limit: closed a connection at accept",
                    metadata: [
                        "listener": "\(listener)",
                        "client": "\(address ?? "-")",
                        "max_connections": "\(limits.settings.maxConnections)",
                        "closed_since_last_line": "\(closed)",
                    ]
                )
            }
            return false
        }
    }

    /// `admit` for the client a PROXY header named; false: refused, and closed.
    private func admitAfterProxyHeader(context: ChannelHandlerContext) -> Bool {
        let client = self.machine.clientAddress.flatMap(ClientKey.init(text:))
        let peer = context.channel.remoteAddress
        let admitted = Self.admit(
            context.channel,
            client: client ?? peer.flatMap(ClientKey.init),
            address: self.machine.clientAddress ?? peer?.ipAddress,
            loop: self.loop,
            settings: self.settings
        )
        guard admitted else {
            self.machine.closed()
            context.close(promise: nil)
            return false
        }
        self.clientKey = client
        return true
    }

    // MARK: ChannelHandler

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        self.loop.sweeper.register(self)
        if let phase = self.machine.initialPhase {
            self.installed(phase, context: context)
        }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.loop.sweeper.unregister(self)
        self.context = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let awaitedHeader = self.machine.awaitsProxyHeader
        let action = self.machine.bytesReceived(self.unwrapInboundIn(data))
        // The header is read (a bad one closed the machine and is rejected below): the client it
        // named, or for a LOCAL header the socket's peer, is admitted now.
        if awaitedHeader, !self.machine.awaitsProxyHeader, !self.machine.isClosed,
            !self.admitAfterProxyHeader(context: context)
        {
            return
        }
        switch action {
        case .wait:
            break
        case .install(let phase):
            self.installed(phase, context: context)
        case .forward(let bytes):
            context.fireChannelRead(self.wrapInboundOut(bytes))
        case .reject(let reason):
            self.fail(context: context, reason)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.machine.closed()
        self.loop.sweeper.unregister(self)
        context.fireChannelInactive()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case TLSUserEvent.handshakeCompleted(let negotiated) = event {
            if let phase = self.machine.tlsHandshakeCompleted(alpn: negotiated) {
                self.installed(phase, context: context)
            } else if case .closed = self.machine.state {
                // An ACME validation: the handshake was all it wanted.
                context.close(promise: nil)
            }
        } else if event is ChannelShouldQuiesceEvent {
            // A drain during the setup: no request yet, the client retries elsewhere.
            if self.machine.quiesce() { context.close(promise: nil) }
        } else if event is HandoverEvent {
            // An upgrade during the setup: it finishes here, and the front hears of it.
            self.machine.handOver()
        } else {
            context.fireUserInboundEventTriggered(event)
        }
    }

    // MARK: DeadlineTracked

    func deadlinePassed(now: NIODeadline) {
        if self.machine.deadlinePassed(now: now) { self.context?.close(promise: nil) }
    }

    // MARK: phases

    /// Sets up `phase` and gives it what the setup held: the TLS handler goes in front of this
    /// handler (which then sees the handshake complete); a front goes behind it and takes the
    /// connection over.
    private func installed(_ phase: ClientConnectionStateMachine.Phase, context: ChannelHandlerContext) {
        let channel = context.channel
        do {
            switch phase {
            case .tls:
                guard let tls = self.settings.tls else { preconditionFailure("TLS phase on a plain listener") }
                try channel.pipeline.syncOperations.addHandler(tls.makeHandler(), position: .first)
            case .validationTLS:
                guard let handler = self.settings.tls?.makeChallengeHandler() else {
                    preconditionFailure("validation phase on a listener without tls-alpn-01")
                }
                try channel.pipeline.syncOperations.addHandler(handler, position: .first)
            case .http1:
                try HTTP1Front.install(
                    on: channel,
                    loop: self.loop,
                    listener: self.identity,
                    headerDeadline: self.machine.headerDeadline
                )
            case .http2:
                try NGHTTP2ConnectionHandler.install(
                    on: channel,
                    loop: self.loop,
                    listener: self.identity,
                    headerDeadline: self.machine.headerDeadline
                )
            }
        } catch {
            self.fail(context: context, "cannot set up \(phase): \(error)")
            return
        }
        let held = self.machine.phaseInstalled()
        if phase == .tls || phase == .validationTLS {
            // Bytes behind a PROXY header start the handshake: into the TLS handler, from the head.
            if case .forward(let bytes) = held {
                channel.pipeline.syncOperations.fireChannelRead(NIOAny(bytes))
            }
            return
        }
        // The read's channelReadComplete follows: the front sees a whole read.
        if case .forward(let bytes) = held { context.fireChannelRead(self.wrapInboundOut(bytes)) }
        if self.machine.handOverPending { context.fireUserInboundEventTriggered(HandoverEvent()) }
        self.loop.sweeper.unregister(self)
        context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
    }

    private func fail(context: ChannelHandlerContext, _ reason: String) {
        self.loop.logger.debug(
            "client connection refused",
            metadata: ["listener": "\(self.settings.config.name)", "reason": "\(reason)"]
        )
        self.machine.closed()
        context.close(promise: nil)
    }
}

/// A connection closed at accept by `limits.per_client.max_connections`: it closes as soon as it is
/// registered and active, before it reads a byte.
private final class RefusedConnection: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { context.close(promise: nil) }
    }

    func channelActive(context: ChannelHandlerContext) {
        context.close(promise: nil)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {}
}
