import Logging
import NIOCore
import NIOHTTP1
import NIOPosix

import struct NIOConcurrencyHelpers.NIOLockedValueBox

/// What a listener applies to each new connection; replaced on reload without touching the socket.
/// A class: every connection keeps a reference to its listener's settings instead of a copy (the
/// copy was ~150 bytes of every idle WebSocket).
final class ListenerSettings: Sendable {
    /// The listener's config entry.
    let config: ListenerConfig
    /// Its TLS contexts (nil: plain).
    let tls: TLSContextSet?
    /// The http-01 answers a plain listener gives (nil: no certificate is validated by http-01).
    let challenges: ChallengeAnswers?

    init(config: ListenerConfig, tls: TLSContextSet?, challenges: ChallengeAnswers? = nil) {
        self.config = config
        self.tls = tls
        self.challenges = challenges
    }

    /// What the front handlers are told about the listener.
    var identity: ListenerIdentity {
        ListenerIdentity(
            name: self.config.name,
            scheme: self.tls == nil ? "http" : "https",
            authority: self.config.address.description,
            redirectHTTPSPort: self.config.redirectHTTPS,
            challenges: self.challenges
        )
    }
}

/// One bound listening socket. Each accepted connection is set up from the settings current at that
/// moment, so a reload changes certificates, HTTP/2, redirects or the PROXY protocol for new
/// connections while the socket (and every open connection) stays.
final class Listener: Sendable {
    /// Where the listener is in its life.
    enum State: Sendable {
        case idle
        case serving(Channel)
        case draining
        case stopped
    }

    private let settings: NIOLockedValueBox<ListenerSettings>
    private let group: EventLoopGroup
    private let contexts: LoopContexts
    private let logger: Logger
    private let state = NIOLockedValueBox<State>(.idle)
    /// Open client connections and the `max_connections` limit.
    let counter: ConnectionCounter
    /// Open client connections by channel, one set per event loop (by the loop's identity), so a
    /// drain reaches each on its own loop.
    private let connections: [ObjectIdentifier: NIOLoopBoundBox<[ObjectIdentifier: Channel]>]

    init(settings: ListenerSettings, maxConnections: Int, group: EventLoopGroup, contexts: LoopContexts, logger: Logger)
    {
        self.settings = NIOLockedValueBox(settings)
        self.group = group
        self.contexts = contexts
        self.logger = logger
        self.counter = ConnectionCounter(limit: maxConnections)
        var connections: [ObjectIdentifier: NIOLoopBoundBox<[ObjectIdentifier: Channel]>] = [:]
        for loop in group.makeIterator() {
            connections[ObjectIdentifier(loop)] = .makeBoxSendingValue([:], eventLoop: loop)
        }
        self.connections = connections
    }

    /// The settings new connections get.
    var current: ListenerSettings { self.settings.withLockedValue { $0 } }

    var name: String { self.current.config.name }
    var address: HostPort { self.current.config.address }

    /// Applies new settings (same address) to the connections accepted from now on.
    func update(_ settings: ListenerSettings, maxConnections: Int) {
        self.settings.withLockedValue { $0 = settings }
        self.counter.setLimit(maxConnections)
    }

    /// Binds the socket and prints the `listening ...` line.
    func start() async throws {
        let channel = try await self.bind()
        self.state.withLockedValue { $0 = .serving(channel) }
        let settings = self.current
        let bound =
            channel.localAddress.flatMap { address in
                address.ipAddress.map { HostPort(host: $0, port: address.port ?? 0).description }
            } ?? settings.config.address.description
        LineWriter.standardOutput.writeLine(
            "listening name=\(settings.config.name) address=\(bound) tls=\(settings.tls == nil ? "off" : "on") "
                + "h2=\(settings.config.http2 ? "on" : "off")"
        )
        self.logger.info("listener started", metadata: ["listener": "\(settings.config.name)", "address": "\(bound)"])
    }

    /// Stops accepting and waits until the open connections are gone: they close once idle, get
    /// `Connection: close` or GOAWAY, and are cut after `grace`.
    func drain(grace: TimeAmount) async {
        let serving: Channel? = self.state.withLockedValue { state in
            guard case .serving(let channel) = state else { return nil }
            state = .draining
            return channel
        }
        guard let channel = serving else { return }
        let name = self.name
        self.logger.info(
            "listener draining",
            metadata: ["listener": "\(name)", "open_connections": "\(self.counter.value)"]
        )
        // Stop accepting, then tell every connection of this listener, on its own loop, with
        // NIO's quiesce event: whoever has the connection then (its setup, a front, a tunnel)
        // finishes what is under way. One accepted after `startDraining` is told when set up.
        let drained = channel.eventLoop.makePromise(of: Void.self)
        self.counter.startDraining()
        channel.close(promise: nil)
        for connections in self.connections.values {
            connections.eventLoop.execute {
                for channel in connections.value.values {
                    channel.pipeline.fireUserInboundEventTriggered(ChannelShouldQuiesceEvent())
                }
            }
        }
        self.counter.whenAllClosed { drained.succeed() }
        // Each connection closes itself once idle, or when the grace is over (its own deadline, set
        // a moment after this one): say then what is still open.
        let counter = self.counter
        let logger = self.logger
        let graceOver = channel.eventLoop.scheduleTask(in: grace) {
            let left = counter.value
            guard left > 0 else { return }
            logger.warning(
                "shutdown grace over, closing what is still open",
                metadata: ["listener": "\(name)", "connections": "\(left)"]
            )
        }
        // A backstop: a connection that does not close is not waited for.
        let backstop = channel.eventLoop.scheduleTask(in: grace + .seconds(2)) {
            drained.succeed()
        }
        try? await drained.futureResult.get()
        graceOver.cancel()
        backstop.cancel()
        let left = self.counter.value
        if left > 0 {
            self.logger.error(
                "connections still open after the shutdown grace were left behind",
                metadata: ["listener": "\(name)", "connections": "\(left)"]
            )
        }
        self.state.withLockedValue { $0 = .stopped }
        self.logger.info("listener stopped", metadata: ["listener": "\(name)"])
    }

    /// A connection was accepted (on its own loop): listed for drains until it closes, counted out
    /// when it does.
    private func accepted(_ channel: Channel, counter: ConnectionCounter) {
        guard let connections = self.connections[ObjectIdentifier(channel.eventLoop)] else { return }
        let id = ObjectIdentifier(channel)
        connections.value[id] = channel
        channel.closeFuture.assumeIsolated().whenComplete { _ in
            connections.value[id] = nil
            counter.connectionClosed()
        }
        if counter.isDraining {
            // Accepted while the listener began draining: it missed the broadcast. Told once the
            // channel is registered and active.
            channel.eventLoop.assumeIsolated().execute {
                channel.pipeline.fireUserInboundEventTriggered(ChannelShouldQuiesceEvent())
            }
        }
    }

    private func bind() async throws -> Channel {
        let contexts = self.contexts
        let counter = self.counter
        let address = self.address
        let bootstrap = ServerBootstrap(group: self.group)
            .serverChannelOption(.backlog, value: 4096)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .serverChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let sync = channel.pipeline.syncOperations
                    try sync.addHandler(ConnectionLimiter(counter: counter, eventLoop: channel.eventLoop))
                }
            }
            .childChannelOption(.tcpOption(.tcp_nodelay), value: 1)
            .childChannelOption(.recvAllocator, value: ReadBuffers.connection)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    self.accepted(channel, counter: counter)
                    let loop = contexts.context(for: channel.eventLoop)
                    try ClientConnection.install(on: channel, loop: loop, settings: self.current)
                }
            }
        do {
            return try await bootstrap.bind(host: address.host, port: address.port).get()
        } catch {
            throw ListenerError(description: "cannot bind listener \(self.name) to \(address): \(error)")
        }
    }
}

/// A listener that could not start, as one line.
struct ListenerError: Error, CustomStringConvertible {
    var description: String
}
