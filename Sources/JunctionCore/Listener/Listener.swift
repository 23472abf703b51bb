import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization

import struct NIOConcurrencyHelpers.NIOLockedValueBox

#if canImport(Glibc)
    import Glibc
#endif

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
        /// Accepting (once told to) on `channel`, whose socket is `descriptor`.
        case serving(channel: Channel, descriptor: CInt)
        /// The socket went to the process that replaced this one; the open connections finish
        /// (their tunnels closed at each pool's pace by the drainer).
        case handedOver
        case draining
        case stopped
    }

    /// What a connection accepted after the listener stopped serving is told (it missed the
    /// broadcast), as `phase`.
    private enum Phase: Int {
        case serving = 0
        case handedOver = 1
        case draining = 2
    }

    private let settings: NIOLockedValueBox<ListenerSettings>
    private let group: EventLoopGroup
    private let contexts: LoopContexts
    private let logger: Logger
    private let state = NIOLockedValueBox<State>(.idle)
    private let phase = Atomic<Int>(Phase.serving.rawValue)
    /// Made when the listener stops serving (hand-over or drain); succeeded once its last
    /// connection closed, or when a drain's grace is over. (Made then, not at init: a promise never
    /// fulfilled is a leak to NIO, and fulfilling one as the listener goes would reach for a loop
    /// that may be shut down.)
    private let emptied = NIOLockedValueBox<EventLoopPromise<Void>?>(nil)
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

    /// The promise of `emptied`, made the first time.
    private var emptiedPromise: EventLoopPromise<Void> {
        self.emptied.withLockedValue { promise in
            if let promise { return promise }
            let made = self.group.next().makePromise(of: Void.self)
            promise = made
            return made
        }
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

    /// Binds the socket (or takes over the one `inherited` holds for it) and prints the
    /// `listening ...` line. It accepts once `startAccepting` is called, or at once if `accepting`.
    func start(inherited: InheritedSockets? = nil, accepting: Bool) async throws {
        let settings = self.current
        let taken = inherited?.take(listener: settings.config.name, address: settings.config.address)
        let descriptor: CInt
        do {
            descriptor = try ListeningSocket.open(settings.config.address, inherited: taken)
        } catch {
            throw ListenerError(description: "cannot bind listener \(self.name) to \(self.address): \(error)")
        }
        let channel = try await self.register(descriptor, accepting: accepting)
        self.state.withLockedValue { $0 = .serving(channel: channel, descriptor: descriptor) }
        let bound =
            channel.localAddress.flatMap { address in
                address.ipAddress.map { HostPort(host: $0, port: address.port ?? 0).description }
            } ?? settings.config.address.description
        LineWriter.standardOutput.writeLine(
            "listening name=\(settings.config.name) address=\(bound) tls=\(settings.tls == nil ? "off" : "on") "
                + "h2=\(settings.config.http2 ? "on" : "off")"
        )
        self.logger.info(
            "listener started",
            metadata: [
                "listener": "\(settings.config.name)", "address": "\(bound)",
                "socket": "\(taken == nil ? "bound" : "inherited")",
            ]
        )
    }

    /// Starts accepting (the process is ready: every listener is bound).
    func startAccepting() {
        guard case .serving(let channel, _) = self.state.withLockedValue({ $0 }) else { return }
        channel.setOption(.autoRead, value: true).whenFailure { _ in }
    }

    /// The listening socket as a hand-over entry, its descriptor a close-on-exec copy numbered
    /// `minimum` or above (the caller closes it); nil when the listener no longer serves.
    func handoverSocket(minimum: CInt) throws -> Handover.Socket? {
        let config = self.current.config
        return try self.state.withLockedValue { state in
            // Under the lock: the socket is closed only after the state left `.serving`.
            guard case .serving(_, let descriptor) = state else { return nil }
            return Handover.Socket(
                descriptor: try ListeningSocket.duplicate(descriptor, minimum: minimum),
                kind: .listener,
                name: config.name,
                address: config.address.description
            )
        }
    }

    /// The process that replaced this one took the socket: stop accepting (the socket stays open
    /// there), and tell every connection with `HandoverEvent` (requests finish, tunnels stay for
    /// the drainer). Returns once the socket is closed here (`waitUntilEmpty` waits for the
    /// connections).
    func handOver() async {
        let serving: Channel? = self.state.withLockedValue { state in
            guard case .serving(let channel, _) = state else { return nil }
            state = .handedOver
            return channel
        }
        guard let channel = serving else { return }
        self.phase.store(Phase.handedOver.rawValue, ordering: .sequentiallyConsistent)
        self.logger.info(
            "listener handed over",
            metadata: ["listener": "\(self.name)", "open_connections": "\(self.counter.value)"]
        )
        try? await self.stopServing(channel, event: HandoverEvent()).get()
    }

    /// Returns once the listener stopped serving and its last connection closed.
    func waitUntilEmpty() async {
        try? await self.emptiedPromise.futureResult.get()
    }

    /// Closes the listening channel (this process's copy of the socket) and tells every open
    /// connection, on its own loop, with `event`.
    /// Returns the listening channel's close.
    @discardableResult
    private func stopServing(_ channel: Channel, event: any Sendable) -> EventLoopFuture<Void> {
        let emptied = self.emptiedPromise
        let counter = self.counter
        counter.startDraining()
        for connections in self.connections.values {
            connections.eventLoop.execute {
                for channel in connections.value.values {
                    channel.pipeline.fireUserInboundEventTriggered(event)
                }
            }
        }
        // Accepting stops first; the close waits until every connection already accepted has been
        // set up on its loop and handed through the server channel (NIO closes an accepted
        // connection whose server channel closed before that: its client would see a reset).
        // Counted once the socket is closed here: a connection the server loop accepted before
        // the close is counted by then (`ConnectionLimiter`), so "none left" means none.
        let serverLoop = channel.eventLoop
        let loops = Array(self.group.makeIterator())
        let closed = channel.setOption(.autoRead, value: false)
            .flatMap { EventLoopFuture.andAllComplete(loops.map { $0.submit {} }, on: serverLoop) }
            .flatMap { serverLoop.submit {} }
            .flatMap { channel.close() }
        closed.whenComplete { _ in
            counter.whenAllClosed { emptied.succeed() }
        }
        return closed
    }

    /// Stops accepting and waits until the open connections are gone: they close once idle, get
    /// `Connection: close` or GOAWAY, and are cut after `grace`.
    func drain(grace: TimeAmount) async {
        enum Start {
            case serving(Channel)
            case handedOver
        }
        let start: Start? = self.state.withLockedValue { state in
            switch state {
            case .serving(let channel, _):
                state = .draining
                return .serving(channel)
            case .handedOver:
                state = .draining
                return .handedOver
            case .idle, .draining, .stopped:
                return nil
            }
        }
        guard let start else { return }
        let name = self.name
        self.phase.store(Phase.draining.rawValue, ordering: .sequentiallyConsistent)
        self.logger.info(
            "listener draining",
            metadata: ["listener": "\(name)", "open_connections": "\(self.counter.value)"]
        )
        // Stop accepting, then tell every connection of this listener, on its own loop, with
        // NIO's quiesce event: whoever has the connection then (its setup, a front, a tunnel)
        // finishes what is under way. One accepted after `startDraining` is told when set up.
        // After a hand-over the socket is closed already, and the connections still open hear
        // it again: now their tunnels get the grace too.
        switch start {
        case .serving(let channel):
            self.stopServing(channel, event: ChannelShouldQuiesceEvent())
        case .handedOver:
            for connections in self.connections.values {
                connections.eventLoop.execute {
                    for channel in connections.value.values {
                        channel.pipeline.fireUserInboundEventTriggered(ChannelShouldQuiesceEvent())
                    }
                }
            }
        }
        let drained = self.emptiedPromise
        let loop = drained.futureResult.eventLoop
        // Each connection closes itself once idle, or when the grace is over (its own deadline, set
        // a moment after this one): say then what is still open.
        let counter = self.counter
        let logger = self.logger
        let graceOver = loop.scheduleTask(in: grace) {
            let left = counter.value
            guard left > 0 else { return }
            logger.warning(
                "shutdown grace over, closing what is still open",
                metadata: ["listener": "\(name)", "connections": "\(left)"]
            )
        }
        // A backstop: a connection that does not close is not waited for.
        let backstop = loop.scheduleTask(in: grace + .seconds(2)) {
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
            // Accepted while the listener stopped serving: it missed the broadcast. Told once the
            // channel is registered and active.
            let handedOver = self.phase.load(ordering: .sequentiallyConsistent) == Phase.handedOver.rawValue
            channel.eventLoop.assumeIsolated().execute {
                if handedOver {
                    channel.pipeline.fireUserInboundEventTriggered(HandoverEvent())
                } else {
                    channel.pipeline.fireUserInboundEventTriggered(ChannelShouldQuiesceEvent())
                }
            }
        }
    }

    /// Makes the listening `descriptor` a NIO server channel of this listener's group.
    private func register(_ descriptor: CInt, accepting: Bool) async throws -> Channel {
        let contexts = self.contexts
        let counter = self.counter
        let bootstrap = ServerBootstrap(group: self.group)
            .serverChannelOption(.autoRead, value: accepting)
            .serverChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    ListeningSocket.relisten(descriptor)
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
            return try await bootstrap.withBoundSocket(descriptor).get()
        } catch {
            throw ListenerError(description: "cannot listen on \(self.name) (\(self.address)): \(error)")
        }
    }
}

/// A listener that could not start, as one line.
struct ListenerError: Error, CustomStringConvertible {
    var description: String
}
