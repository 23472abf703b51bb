import NIOCore
import NIOHTTP1

/// One event loop's keep-alive connections to every backend: idle ones are reused LIFO (the most
/// recently used is the least likely to have been closed by the backend), new ones are dialled on
/// the same loop as the client so an exchange never crosses threads.
///
/// The pool is the one deadline its idle connections have: at the soonest idle expiry it closes
/// the expired ones and forgets those that closed meanwhile (a closed connection is also skipped
/// when taken), so a pooled connection reports to nobody.
final class UpstreamConnectionPool: DeadlineTracked {
    /// Idle connections kept per backend per event loop; more are closed rather than pooled. High
    /// enough for the requests one loop has in flight at a time: under 50 HTTP/2 connections of 10
    /// streams each (500 requests in flight on one loop), a cap of 256 closed and redialled a
    /// backend connection for one request in ten whenever a burst of answers left more than 256
    /// idle at once. Idle connections exist only because that many were in use; they go after
    /// `pools.*.timeouts.idle` (at most about 11 kB of the process's memory each: 900 more idle
    /// connections after a 50 x 20 HTTP/2 load grew it by 9.5 MB).
    static let maxIdlePerBackend = 1024

    private let eventLoop: EventLoop
    private let connector: any UpstreamConnector
    private var idle: [ObjectIdentifier: IdleList] = [:]
    /// Set once the loop context exists; checks idle expiries.
    var sweeper: DeadlineSweeper?

    /// The soonest idle expiry (or earlier: a connection taken since leaves it early, and the sweep
    /// finds nothing to do).
    private(set) var deadline: NIODeadline = .distantFuture
    var sweeperSlot = -1

    init(eventLoop: EventLoop, connector: any UpstreamConnector = SocketConnector()) {
        self.eventLoop = eventLoop
        self.connector = connector
    }

    /// One backend's idle connections, the most recently used last. A class: taking and returning a connection
    /// changes the list in place, where a dictionary of arrays went through the dictionary's modify
    /// accessor twice per proxied request (a coroutine frame malloc'd each time).
    private final class IdleList {
        var connections: [UpstreamConnection] = []
    }

    /// `backend`'s list, made on first use.
    private func idleList(for backend: Backend) -> IdleList {
        let key = ObjectIdentifier(backend)
        if let list = self.idle[key] { return list }
        let list = IdleList()
        self.idle[key] = list
        return list
    }

    /// An idle, open connection to `backend`, removed from the pool; nil if none.
    func takeIdle(for backend: Backend) -> UpstreamConnection? {
        guard let list = self.idle[ObjectIdentifier(backend)] else { return nil }
        while let connection = list.connections.popLast() {
            connection.isPooled = false
            if connection.isActive { return connection }
        }
        return nil
    }

    /// Keeps `connection` for reuse for up to `idleTimeout`.
    func release(_ connection: UpstreamConnection, idleTimeout: TimeAmount) {
        connection.detach()
        let list = self.idleList(for: connection.backend)
        if list.connections.count >= Self.maxIdlePerBackend {
            list.connections.removeAll { !$0.isActive }
        }
        guard connection.isActive, list.connections.count < Self.maxIdlePerBackend else {
            connection.close()
            return
        }
        connection.isPooled = true
        connection.idleUntil = .now() + idleTimeout
        list.connections.append(connection)
        if connection.idleUntil < self.deadline {
            self.deadline = connection.idleUntil
            self.sweeper?.register(self)
        }
    }

    /// Dials a new connection to `backend`.
    func connect(to backend: Backend, timeout: TimeAmount) -> EventLoopFuture<UpstreamConnection> {
        let decoder = HTTPResponseDecoder(leftOverBytesStrategy: .forwardBytes)
        let handler = UpstreamConnection(backend: backend, decoder: decoder)
        let handlerBox = NIOLoopBound((handler, decoder), eventLoop: self.eventLoop)
        return self.connector.connect(to: backend.address, on: self.eventLoop, timeout: timeout) { channel in
            do {
                // Requests are serialized by Junction (HTTP1HeadWriter); only responses are parsed.
                let sync = channel.pipeline.syncOperations
                let (handler, decoder) = handlerBox.value
                try sync.addHandler(UpstreamWriter())
                try sync.addHandler(ByteToMessageHandler(decoder))
                try sync.addHandler(handler)
                return channel.eventLoop.makeSucceededVoidFuture()
            } catch {
                return channel.eventLoop.makeFailedFuture(error)
            }
        }
        .map { _ in handlerBox.value.0 }
    }

    /// Closes every idle connection (shutdown).
    func closeAll() {
        let lists = self.idle.values
        self.idle = [:]
        for list in lists {
            for connection in list.connections {
                connection.isPooled = false
                connection.close()
            }
        }
        self.deadline = .distantFuture
        self.sweeper?.unregister(self)
    }

    /// The number of connections waiting in the pool (open or not yet found closed), for tests.
    var idleCount: Int { self.idle.values.reduce(0) { $0 + $1.connections.count } }

    // MARK: DeadlineTracked

    func deadlinePassed(now: NIODeadline) {
        var soonest = NIODeadline.distantFuture
        for list in self.idle.values {
            // The whole list: a reload may have changed the idle timeout since older entries came.
            list.connections.removeAll { connection in
                guard connection.idleUntil <= now || !connection.isActive else {
                    soonest = min(soonest, connection.idleUntil)
                    return false
                }
                connection.isPooled = false
                connection.close()
                return true
            }
        }
        self.deadline = soonest
        if soonest == .distantFuture { self.sweeper?.unregister(self) }
    }
}
