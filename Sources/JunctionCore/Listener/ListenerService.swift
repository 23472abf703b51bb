import Logging
import NIOCore
import NIOExtras
import NIOHTTP1
import NIOPosix
import ServiceLifecycle
import Synchronization

/// One client-facing listener as a lifecycle `Service`: binds, serves until graceful shutdown,
/// then stops accepting, lets open connections finish (up to `shutdown_grace`) and returns.
final class ListenerService: Service {
    /// Where the listener is in its life.
    enum State: Sendable {
        case idle
        case serving(Channel)
        case draining
        case stopped
    }

    let config: ListenerConfig
    private let group: EventLoopGroup
    private let contexts: LoopContexts
    private let tls: TLSContextBox?
    private let limits: LimitsConfig
    private let logger: Logger
    /// Open client connections (for metrics and status).
    let counter = ConnectionCounter()
    private let state = Mutex<State>(.idle)

    init(
        config: ListenerConfig,
        group: EventLoopGroup,
        contexts: LoopContexts,
        tls: TLSContextBox?,
        limits: LimitsConfig,
        logger: Logger
    ) {
        self.config = config
        self.group = group
        self.contexts = contexts
        self.tls = tls
        self.limits = limits
        self.logger = logger
    }

    /// Open client connections of this listener.
    var openConnections: Int { self.counter.value }

    func run() async throws {
        let quiesce = ServerQuiescingHelper(group: self.group)
        let channel = try await self.bind(quiesce: quiesce)
        self.state.withLock { $0 = .serving(channel) }
        let bound =
            channel.localAddress.flatMap { address in
                address.ipAddress.map { HostPort(host: $0, port: address.port ?? 0).description }
            } ?? self.config.address.description
        StandardOutput.writeLine(
            "listening name=\(self.config.name) address=\(bound) tls=\(self.tls == nil ? "off" : "on") "
                + "h2=\(self.config.http2 ? "on" : "off")"
        )
        self.logger.info("listener started", metadata: ["listener": "\(self.config.name)", "address": "\(bound)"])

        // Serve until a graceful shutdown is requested (or the task is cancelled).
        try? await gracefulShutdown()

        self.state.withLock { $0 = .draining }
        self.logger.info(
            "listener draining",
            metadata: ["listener": "\(self.config.name)", "open_connections": "\(self.counter.value)"]
        )
        let drained = channel.eventLoop.makePromise(of: Void.self)
        quiesce.initiateShutdown(promise: drained)
        // Connections close themselves once idle or after shutdown_grace; this is only a backstop.
        let backstop = channel.eventLoop.scheduleTask(in: self.limits.shutdownGrace + .seconds(2)) {
            drained.succeed()
        }
        try? await drained.futureResult.get()
        backstop.cancel()
        self.state.withLock { $0 = .stopped }
        self.logger.info("listener stopped", metadata: ["listener": "\(self.config.name)"])
    }

    private func bind(quiesce: ServerQuiescingHelper) async throws -> Channel {
        let contexts = self.contexts
        let tls = self.tls
        let limits = self.limits
        let counter = self.counter
        let identity = ListenerIdentity(
            name: self.config.name,
            scheme: tls == nil ? "http" : "https",
            authority: self.config.address.description,
            redirectHTTPSPort: self.config.redirectHTTPS
        )
        let http2 = self.config.http2
        let bootstrap = ServerBootstrap(group: self.group)
            .serverChannelOption(.backlog, value: 4096)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .serverChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let sync = channel.pipeline.syncOperations
                    try sync.addHandler(quiesce.makeServerChannelHandler(channel: channel))
                    try sync.addHandler(
                        ConnectionLimiter(limit: limits.maxConnections, counter: counter, eventLoop: channel.eventLoop)
                    )
                }
            }
            .childChannelOption(.tcpOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let loop = contexts.context(for: channel.eventLoop)
                    switch (tls?.current, http2) {
                    case (let contexts?, true):
                        try contexts.addHandlers(to: channel)
                        try ProtocolSelector.addALPN(to: channel, loop: loop, listener: identity)
                    case (let contexts?, false):
                        try contexts.addHandlers(to: channel)
                        try HTTP1Pipeline.configure(channel: channel, loop: loop, listener: identity)
                    case (nil, true):
                        try ProtocolSelector.addPrefaceSniffer(to: channel, loop: loop, listener: identity)
                    case (nil, false):
                        try HTTP1Pipeline.configure(channel: channel, loop: loop, listener: identity)
                    }
                }
            }
        do {
            return try await bootstrap.bind(host: self.config.address.host, port: self.config.address.port).get()
        } catch {
            throw ListenerError(
                description: "cannot bind listener \(self.config.name) to \(self.config.address): \(error)"
            )
        }
    }
}

/// A listener that could not start, as one line.
struct ListenerError: Error, CustomStringConvertible {
    var description: String
}

/// Sets up the HTTP/1.1 handlers of a client connection.
enum HTTP1Pipeline {
    static func configure(channel: Channel, loop: LoopContext, listener: ListenerIdentity) throws {
        var decoderLimits = NIOHTTPDecoderLimitConfiguration()
        decoderLimits.maxHeaderListSize = loop.runtime.limits.maxHeaderBytes
        decoderLimits.maxHeaderFieldSize = loop.runtime.limits.maxHeaderBytes
        let decoder = ByteToMessageHandler(
            HTTPRequestDecoder(
                leftOverBytesStrategy: .forwardBytes,
                informationalResponseStrategy: .drop,
                limitConfiguration: decoderLimits
            )
        )
        // Responses are serialized by Junction (HTTP1HeadWriter): no response encoder.
        let sync = channel.pipeline.syncOperations
        try sync.addHandler(decoder)
        try sync.addHandler(HTTP1ServerHandler(loop: loop, listener: listener, codecs: HTTP1Codecs(decoder: decoder)))
    }
}
