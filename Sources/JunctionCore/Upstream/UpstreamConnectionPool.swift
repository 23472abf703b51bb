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
    private var idle: [ObjectIdentifier: [UpstreamConnection]] = [:]
    /// Set once the loop context exists; checks pooled connections' idle timeouts.
    var sweeper: DeadlineSweeper?

    init(eventLoop: EventLoop, connector: any UpstreamConnector = SocketConnector()) {
        self.eventLoop = eventLoop
        self.connector = connector
    }

    /// An idle, open connection to `backend`, removed from the pool; nil if none.
    func takeIdle(for backend: Backend) -> UpstreamConnection? {
        let key = ObjectIdentifier(backend)
        while let connection = self.idle[key]?.popLast() {
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
        let key = ObjectIdentifier(connection.backend)
        guard connection.isActive, self.idle[key, default: []].count < Self.maxIdlePerBackend else {
            connection.close()
            return
        }
        connection.isPooled = true
        connection.deadline = .now() + idleTimeout
        self.idle[key, default: []].append(connection)
        self.sweeper?.register(connection)
    }

    /// Forgets a pooled connection that closed or expired.
    func remove(_ connection: UpstreamConnection) {
        guard connection.isPooled else { return }
        connection.isPooled = false
        self.sweeper?.unregister(connection)
        let key = ObjectIdentifier(connection.backend)
        if let index = self.idle[key]?.firstIndex(where: { $0 === connection }) {
            self.idle[key]!.remove(at: index)
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
        let connections = self.idle.values.flatMap { $0 }
        for connection in connections {
            self.remove(connection)
            connection.close()
        }
    }
}
