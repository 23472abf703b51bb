import Logging
import NIOCore
import ServiceLifecycle

import struct NIOConcurrencyHelpers.NIOLockedValueBox

#if canImport(Glibc)
    import Glibc
#endif

/// Every client-facing listener, as one lifecycle `Service`: binds them at start, changes them on
/// reload (a listener whose address stays keeps its socket; new addresses are bound before old ones
/// are let go), and drains them all on graceful shutdown.
final class ListenerManager: Service {
    private let group: EventLoopGroup
    private let contexts: LoopContexts
    private let logger: Logger
    /// Where the manager is in its life: reloads apply only while serving.
    enum State {
        case starting
        case serving
        /// An upgrade handed the sockets to the new process: the connections finish here.
        case handedOver
        case stopping
    }

    private let state = NIOLockedValueBox(State.starting)
    private let listeners = NIOLockedValueBox<[Listener]>([])
    /// Drains of listeners a reload removed, awaited on shutdown.
    private let drains = NIOLockedValueBox<[Task<Void, Never>]>([])
    private let initial: [(ListenerSettings, Int)]
    private let shutdownGrace: NIOLockedValueBox<TimeAmount>
    /// Called once every listener of the first config is bound (they accept once told to,
    /// `startAccepting`).
    private let onBound: @Sendable () -> Void
    /// The sockets an upgrade handed this process, taken by the first config's listeners.
    private let inherited: InheritedSockets?

    init(
        settings: [ListenerSettings],
        maxConnections: Int,
        shutdownGrace: TimeAmount,
        group: EventLoopGroup,
        contexts: LoopContexts,
        logger: Logger,
        inherited: InheritedSockets? = nil,
        onBound: @escaping @Sendable () -> Void = {}
    ) {
        self.initial = settings.map { ($0, maxConnections) }
        self.onBound = onBound
        self.inherited = inherited
        self.shutdownGrace = NIOLockedValueBox(shutdownGrace)
        self.group = group
        self.contexts = contexts
        self.logger = logger
    }

    /// The running listeners (for metrics and status).
    var all: [Listener] { self.listeners.withLockedValue { $0 } }

    func run() async throws {
        for (settings, maxConnections) in self.initial {
            let listener = Listener(
                settings: settings,
                maxConnections: maxConnections,
                group: self.group,
                contexts: self.contexts,
                logger: self.logger
            )
            try await listener.start(inherited: self.inherited, accepting: false)
            self.listeners.withLockedValue { $0.append(listener) }
        }
        self.state.withLockedValue { $0 = .serving }
        self.onBound()
        try? await gracefulShutdown()
        // From here on a reload changes nothing, so the list below is final.
        self.state.withLockedValue { $0 = .stopping }
        // Tunnels that end from now on end because of the shutdown (their close reason).
        for loop in self.contexts.all {
            loop.execute { $0.isShuttingDown = true }
        }
        let grace = self.shutdownGrace.withLockedValue { $0 }
        let earlier = self.drains.withLockedValue { $0 }
        await withTaskGroup(of: Void.self) { drains in
            for listener in self.all {
                drains.addTask { await listener.drain(grace: grace) }
            }
            for drain in earlier {
                drains.addTask { await drain.value }
            }
        }
    }

    /// Whether `next` is `listener` reconfigured: the same address; for port 0 (any free port, as in
    /// tests) the same name too, since every port-0 listener gets its own port.
    private static func isSame(_ listener: Listener, _ next: ListenerSettings) -> Bool {
        guard listener.address == next.config.address else { return false }
        return next.config.address.port != 0 || listener.name == next.config.name
    }

    /// A reload: binds listeners at new addresses (throwing, with nothing changed, if one cannot be
    /// bound), updates those whose address stays, and drains those no longer configured.
    func apply(_ settings: [ListenerSettings], maxConnections: Int, shutdownGrace: TimeAmount) async throws {
        switch self.state.withLockedValue({ $0 }) {
        case .starting: throw ListenerError(description: "the listeners are still starting")
        case .stopping: throw ListenerError(description: "shutting down")
        case .handedOver: throw ListenerError(description: "this process handed its listeners to a new one")
        case .serving: break
        }
        let current = self.all
        var started: [Listener] = []
        for next in settings where !current.contains(where: { Self.isSame($0, next) }) {
            let listener = Listener(
                settings: next,
                maxConnections: maxConnections,
                group: self.group,
                contexts: self.contexts,
                logger: self.logger
            )
            do {
                try await listener.start(accepting: true)
            } catch {
                for listener in started { await listener.drain(grace: .zero) }
                throw error
            }
            started.append(listener)
        }
        var kept: [Listener] = []
        var removed: [Listener] = []
        for listener in current {
            if let next = settings.first(where: { Self.isSame(listener, $0) }) {
                listener.update(next, maxConnections: maxConnections)
                kept.append(listener)
            } else {
                removed.append(listener)
            }
        }
        // Published under the state lock: once shutdown has begun, its list of listeners is final.
        let published = self.state.withLockedValue { state -> Bool in
            guard state == .serving else { return false }
            self.listeners.withLockedValue { $0 = kept + started }
            return true
        }
        guard published else {
            for listener in started { await listener.drain(grace: .zero) }
            throw ListenerError(description: "shutting down")
        }
        self.shutdownGrace.withLockedValue { $0 = shutdownGrace }
        let newDrains = removed.map { listener in Task { await listener.drain(grace: shutdownGrace) } }
        self.drains.withLockedValue { $0.append(contentsOf: newDrains) }
    }

    /// Every listener accepts (the process is ready).
    func startAccepting() {
        for listener in self.all { listener.startAccepting() }
    }

    /// The listening sockets for an upgrade, as close-on-exec copies numbered `minimum` or above
    /// (the caller closes them).
    func handoverSockets(minimum: CInt) throws -> [Handover.Socket] {
        var sockets: [Handover.Socket] = []
        do {
            for listener in self.all {
                if let socket = try listener.handoverSocket(minimum: minimum) { sockets.append(socket) }
            }
        } catch {
            for socket in sockets { close(socket.descriptor) }
            throw error
        }
        return sockets
    }

    /// The new process serves: every listener stops accepting (its socket closed here, open in the
    /// new process) and tells its connections (`HandoverEvent`). Returns once every socket is
    /// closed here; false if a shutdown began first (it drains them instead).
    func stopAccepting() async -> Bool {
        let listeners: [Listener]? = self.state.withLockedValue { state in
            guard state == .serving else { return nil }
            state = .handedOver
            return self.all
        }
        guard let listeners else { return false }
        for listener in listeners {
            await listener.handOver()
        }
        return true
    }

    /// After `stopAccepting`: returns once no connection is left, those of listeners an earlier
    /// reload removed included.
    @discardableResult
    func waitUntilDrained() async -> Bool {
        let listeners = self.all
        let earlier = self.drains.withLockedValue { $0 }
        await withTaskGroup(of: Void.self) { group in
            for listener in listeners {
                group.addTask { await listener.waitUntilEmpty() }
            }
            for drain in earlier {
                group.addTask { await drain.value }
            }
        }
        return true
    }

    /// Open client connections of every listener (the hand-over's progress).
    var openConnections: Int { self.all.reduce(0) { $0 + $1.counter.value } }
}
