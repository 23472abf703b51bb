import NIOCore
import NIOHTTP1

/// One event loop's keep-alive connections to every backend: idle ones are reused LIFO (the most
/// recently used is the least likely to have been closed by the backend), new ones are dialled on
/// the same loop as the client so an exchange never crosses threads.
final class UpstreamConnectionPool {
    /// Idle connections kept per backend per event loop; more are closed rather than pooled.
    static let maxIdlePerBackend = 256

    private let eventLoop: EventLoop
    private let connector: any UpstreamConnector
    private var idle: [ObjectIdentifier: IdleList] = [:]
    /// Set once the loop context exists; checks pooled connections' idle timeouts.
    var sweeper: DeadlineSweeper?

    init(eventLoop: EventLoop, connector: any UpstreamConnector = SocketConnector()) {
        self.eventLoop = eventLoop
        self.connector = connector
    }

    /// One backend's idle connections. A class: taking and returning a connection changes the list
    /// in place, where a dictionary of arrays went through the dictionary's modify accessor twice
    /// per proxied request (a coroutine frame malloc'd each time).
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
            connection.deadline = .distantFuture
            self.sweeper?.unregister(connection)
            if connection.isActive { return connection }
        }
        return nil
    }

    /// Keeps `connection` for reuse for up to `idleTimeout`.
    func release(_ connection: UpstreamConnection, idleTimeout: TimeAmount) {
        connection.detach()
        let list = self.idleList(for: connection.backend)
        guard connection.isActive, list.connections.count < Self.maxIdlePerBackend else {
            connection.close()
            return
        }
        connection.isPooled = true
        connection.deadline = .now() + idleTimeout
        list.connections.append(connection)
        self.sweeper?.register(connection)
    }

    /// Forgets a pooled connection that closed or expired.
    func remove(_ connection: UpstreamConnection) {
        guard connection.isPooled else { return }
        connection.isPooled = false
        self.sweeper?.unregister(connection)
        if let list = self.idle[ObjectIdentifier(connection.backend)],
            let index = list.connections.firstIndex(where: { $0 === connection })
        {
            list.connections.remove(at: index)
        }
    }

    /// Dials a new connection to `backend`.
    func connect(to backend: Backend, timeout: TimeAmount) -> EventLoopFuture<UpstreamConnection> {
        let decoder = HTTPResponseDecoder(leftOverBytesStrategy: .forwardBytes)
        let handler = UpstreamConnection(backend: backend, pool: self, decoder: decoder)
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
        let connections = self.idle.values.flatMap { $0.connections }
        for connection in connections {
            self.remove(connection)
            connection.close()
        }
    }
}
