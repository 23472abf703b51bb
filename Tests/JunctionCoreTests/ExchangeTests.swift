import NIOCore
import NIOEmbedded
import Testing

@testable import JunctionCore

#if canImport(Glibc)
    import Glibc
#endif

/// Whole exchanges without a network: the HTTP/1.1 front on an `EmbeddedChannel`, and upstream
/// connections that the connector seam makes as `EmbeddedChannel`s on the same loop, where the
/// test plays the backend byte for byte.
@Suite("Exchanges through the connector seam")
struct ExchangeTests {
    /// Upstream connections as embedded channels; connects to `refused` ports fail as a refused
    /// TCP connect would; with `holdsConnects` a connect completes only on `completeHeld()`.
    final class EmbeddedConnector: UpstreamConnector, @unchecked Sendable {
        let loop: EmbeddedEventLoop
        let refused: Set<Int>
        let holdsConnects: Bool
        /// Every connect, by port, in order.
        private(set) var attempts: [Int] = []
        /// The connections made, in order.
        private(set) var channels: [EmbeddedChannel] = []
        /// Connects not completed yet (`holdsConnects`).
        private(set) var held: [() -> Void] = []

        init(loop: EmbeddedEventLoop, refused: Set<Int> = [], holdsConnects: Bool = false) {
            self.loop = loop
            self.refused = refused
            self.holdsConnects = holdsConnects
        }

        /// Completes the connects held so far, as the kernel would once the backend answered.
        func completeHeld() {
            let held = self.held
            self.held = []
            for complete in held { complete() }
        }

        func connect(
            to address: SocketAddress,
            on eventLoop: EventLoop,
            timeout: TimeAmount,
            initializer: @escaping @Sendable (Channel) -> EventLoopFuture<Void>
        ) -> EventLoopFuture<Channel> {
            let port = address.port ?? 0
            self.attempts.append(port)
            if self.refused.contains(port) {
                return eventLoop.makeFailedFuture(IOError(errnoCode: ECONNREFUSED, reason: "connect"))
            }
            guard self.holdsConnects else {
                let channel = EmbeddedChannel(loop: self.loop)
                self.channels.append(channel)
                return initializer(channel).flatMap { channel.connect(to: address) }.map { channel }
            }
            let promise = eventLoop.makePromise(of: Channel.self)
            self.held.append {
                let channel = EmbeddedChannel(loop: self.loop)
                self.channels.append(channel)
                promise.completeWith(initializer(channel).flatMap { channel.connect(to: address) }.map { channel })
            }
            return promise.futureResult
        }
    }

    /// A client connection on a plain listener (h2c with `http2`), routed (catch-all) to a pool of
    /// backends on `ports`.
    struct Setup {
        let client: EmbeddedChannel
        let connector: EmbeddedConnector
        let pool: Pool
        let loop: LoopContext

        init(
            ports: [Int] = [1],
            refused: Set<Int> = [],
            retries: Int = 1,
            http2: Bool = false,
            holdsConnects: Bool = false
        ) throws {
            self.client = EmbeddedChannel()
            self.connector = EmbeddedConnector(
                loop: self.client.embeddedEventLoop,
                refused: refused,
                holdsConnects: holdsConnects
            )
            var config = JunctionConfig()
            config.routes = [RouteConfig(name: "all", pool: "app")]
            let registry = BackendRegistry()
            self.pool = Pool(
                name: "app",
                members: registry.backends(named: "app"),
                balancer: LeastConnectionsBalancer(),
                timeouts: UpstreamTimeouts(),
                retries: retries,
                healthCheck: nil
            )
            let members = try ports.map { port in
                Backends.Member(
                    address: try SocketAddress(ipAddress: "127.0.0.1", port: port),
                    label: "127.0.0.1:\(port)",
                    configuredAddress: "127.0.0.1:\(port)",
                    weight: 1
                )
            }
            let runtime = RuntimeConfig(
                config: config,
                pools: ["app": self.pool],
                members: ["app": members],
                registry: registry
            )
            registry.apply(runtime)
            self.loop = LoopContext(
                eventLoop: self.client.embeddedEventLoop,
                runtime: runtime,
                accessLogSink: nil,
                connector: self.connector
            )
            var listener = ListenerConfig(name: "test", address: HostPort(host: "127.0.0.1", port: 80))
            listener.http2 = http2
            // The front reads the client's address when it is set up, which is at once here.
            self.client.remoteAddress = try SocketAddress(ipAddress: "203.0.113.7", port: 50000)
            try ClientConnection.install(
                on: self.client,
                loop: self.loop,
                settings: ListenerSettings(config: listener, tls: nil)
            )
            try self.client.connect(to: try SocketAddress(ipAddress: "127.0.0.1", port: 80)).wait()
        }

        /// The backend on `port`.
        func backend(_ port: Int) -> Backend {
            self.pool.backends.first { $0.label == "127.0.0.1:\(port)" }!
        }
    }

    /// A WebSocket upgrade on /websocket, and a backend's 101 accepting its key.
    static let upgradeRequest = ByteBuffer(
        string: "GET /websocket HTTP/1.1\r\nHost: chat.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            + "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    static let upgradeAccepted = ByteBuffer(
        string: "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            + "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n"
    )

    /// Everything `channel` wrote, as text.
    static func written(_ channel: EmbeddedChannel) throws -> String {
        try HandlerTests.written(channel)
    }

    @Test("A request goes out rewritten, the response comes back, the connection is pooled and reused")
    func requestAndResponse() throws {
        let setup = try Setup()
        try setup.client.writeInbound(ByteBuffer(string: "GET /api/info?x=1 HTTP/1.1\r\nHost: chat.test\r\n\r\n"))
        #expect(setup.connector.channels.count == 1)
        let upstream = setup.connector.channels[0]
        let sent = try Self.written(upstream)
        #expect(sent.hasPrefix("GET /api/info?x=1 HTTP/1.1\r\n"), "\(sent)")
        #expect(sent.contains("Host: chat.test\r\n"))
        #expect(sent.contains("X-Forwarded-For: 203.0.113.7\r\n"), "\(sent)")
        #expect(setup.backend(1).active == 1, "counted while the request is in flight")

        try upstream.writeInbound(ByteBuffer(string: "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"))
        let answer = try Self.written(setup.client)
        #expect(answer.hasPrefix("HTTP/1.1 200 OK\r\n"), "\(answer)")
        #expect(answer.hasSuffix("\r\n\r\nok"), "\(answer)")
        #expect(setup.backend(1).active == 0, "released at the response's end")

        // The next request on the client connection reuses the pooled upstream connection.
        try setup.client.writeInbound(ByteBuffer(string: "GET /b HTTP/1.1\r\nHost: chat.test\r\n\r\n"))
        #expect(setup.connector.channels.count == 1)
        #expect(try Self.written(upstream).hasPrefix("GET /b HTTP/1.1\r\n"))
        try upstream.writeInbound(ByteBuffer(string: "HTTP/1.1 204 No Content\r\n\r\n"))
        #expect(try Self.written(setup.client).hasPrefix("HTTP/1.1 204 No Content\r\n"))
        _ = try? setup.client.finish()
    }

    @Test("A refused backend: the request is retried on the other, the refused one backs off")
    func retryAndPassiveMarking() throws {
        let setup = try Setup(ports: [1, 2], refused: [1])
        try setup.client.writeInbound(ByteBuffer(string: "GET / HTTP/1.1\r\nHost: chat.test\r\n\r\n"))
        #expect(setup.connector.attempts == [1, 2], "the tie went to the first backend, then the retry")
        let now = NIODeadline.now()
        #expect(!setup.backend(1).isAvailable(at: now) && setup.backend(1).retryAt(after: now) != nil)
        #expect(setup.backend(1).active == 0 && setup.backend(2).active == 1)
        try setup.connector.channels[0].writeInbound(ByteBuffer(string: "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"))
        #expect(try Self.written(setup.client).hasPrefix("HTTP/1.1 200 OK\r\n"))

        // No retries left: 502 naming the pool.
        let single = try Setup(ports: [1], refused: [1], retries: 0)
        try single.client.writeInbound(ByteBuffer(string: "GET / HTTP/1.1\r\nHost: chat.test\r\n\r\n"))
        let answer = try Self.written(single.client)
        #expect(answer.hasPrefix("HTTP/1.1 502 Bad Gateway\r\n"), "\(answer)")
        #expect(answer.contains("no backend of pool app could be reached"), "\(answer)")
        #expect(single.backend(1).active == 0)
    }

    @Test("A backend closing before answering a GET: retried once on a fresh connection")
    func resetBeforeResponse() throws {
        let setup = try Setup(ports: [1, 2])
        try setup.client.writeInbound(ByteBuffer(string: "GET / HTTP/1.1\r\nHost: chat.test\r\n\r\n"))
        let first = setup.connector.channels[0]
        #expect(try Self.written(first).hasPrefix("GET / HTTP/1.1"))
        first.pipeline.fireChannelInactive()
        #expect(setup.connector.attempts == [1, 2])
        let second = setup.connector.channels[1]
        #expect(try Self.written(second).hasPrefix("GET / HTTP/1.1"), "the request is replayed")
        try second.writeInbound(ByteBuffer(string: "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx"))
        #expect(try Self.written(setup.client).hasSuffix("\r\n\r\nx"))
        #expect(setup.backend(1).active == 0 && setup.backend(2).active == 0)
    }

    @Test("A 101 hands the connection to a tunnel that holds the backend's lease until it closes")
    func tunnelHandOver() throws {
        let setup = try Setup()
        try setup.client.writeInbound(Self.upgradeRequest)
        let upstream = setup.connector.channels[0]
        let sent = try Self.written(upstream)
        #expect(sent.hasPrefix("GET /websocket HTTP/1.1\r\n") && sent.lowercased().contains("upgrade: websocket"))
        try upstream.writeInbound(Self.upgradeAccepted)
        setup.client.embeddedEventLoop.run()
        #expect(try Self.written(setup.client).hasPrefix("HTTP/1.1 101 Switching Protocols\r\n"))
        #expect(setup.backend(1).active == 1 && setup.pool.members.tunnelCount.load(ordering: .relaxed) == 1)

        // Bytes both ways, untouched.
        try setup.client.writeInbound(ByteBuffer(bytes: [0x81, 0x82, 1, 2, 3, 4, 5, 6]))
        setup.client.embeddedEventLoop.run()
        #expect(
            try upstream.readOutbound(as: IOData.self).map { data -> [UInt8] in
                guard case .byteBuffer(let buffer) = data else { return [] }
                return Array(buffer.readableBytesView)
            } == [0x81, 0x82, 1, 2, 3, 4, 5, 6]
        )
        try upstream.writeInbound(ByteBuffer(string: "from the backend"))
        setup.client.embeddedEventLoop.run()
        #expect(try Self.written(setup.client) == "from the backend")

        // Both sides gone: the lease and the tunnel count end.
        upstream.pipeline.fireChannelInactive()
        setup.client.pipeline.fireChannelInactive()
        setup.client.embeddedEventLoop.run()
        #expect(setup.backend(1).active == 0)
        #expect(setup.pool.members.tunnelCount.load(ordering: .relaxed) == 0)
    }

    // MARK: the back references' invariants (run under AddressSanitizer by Tests/sanitizers.sh)

    @Test("A pooled connection that hears from its backend after its request is gone closes, reporting to nobody")
    func requestGoneBeforeItsConnection() throws {
        let setup = try Setup()
        try setup.client.writeInbound(ByteBuffer(string: "GET /a HTTP/1.1\r\nHost: chat.test\r\n\r\n"))
        let upstream = setup.connector.channels[0]
        _ = try Self.written(upstream)
        try upstream.writeInbound(ByteBuffer(string: "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"))
        #expect(try Self.written(setup.client).hasSuffix("\r\n\r\nok"))
        weak var front = try setup.client.pipeline.syncOperations.handler(type: HTTP1Front.self)
        // The client leaves: the front and its request are gone; the connection waits in the pool.
        _ = try? setup.client.finish()
        setup.client.embeddedEventLoop.run()
        #expect(front == nil, "nothing keeps the front (or its finished request)")
        #expect(setup.loop.connections.idleCount == 1)
        // The backend speaks out of turn: the connection closes itself, telling no request.
        _ = try? upstream.writeInbound(ByteBuffer(string: "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"))
        #expect(!upstream.isActive)
        #expect(setup.loop.connections.takeIdle(for: setup.backend(1)) == nil)
    }

    @Test("A connect that completes after the HTTP/1.1 client left: the connection is pooled, nothing is written")
    func frontGoneBeforeItsRequest() throws {
        let setup = try Setup(holdsConnects: true)
        try setup.client.writeInbound(ByteBuffer(string: "GET /a HTTP/1.1\r\nHost: chat.test\r\n\r\n"))
        #expect(setup.connector.held.count == 1 && setup.backend(1).active == 1)
        try Self.leaveWhileDialling(setup, front: HTTP1Front.self)
    }

    /// The client leaves while the backend is dialled: the front (of type `front`) is gone and its
    /// request cancelled; then the dial completes, and the request, alive in the connect's
    /// callback, writes to no front and leaves the connection to the pool.
    static func leaveWhileDialling<Front: AnyObject & ChannelHandler>(_ setup: Setup, front: Front.Type) throws {
        weak var handler = try setup.client.pipeline.syncOperations.handler(type: Front.self)
        _ = try? setup.client.finish()
        setup.client.embeddedEventLoop.run()
        #expect(handler == nil, "nothing keeps the front")
        #expect(setup.backend(1).active == 0, "the cancelled request freed its backend")
        setup.connector.completeHeld()
        #expect(setup.loop.connections.idleCount == 1, "the fresh connection waits for someone else")
        #expect(try Self.written(setup.connector.channels[0]).isEmpty, "no request went out")
    }

    @Test("A connect that completes after the HTTP/2 connection went: the connection is pooled, nothing is written")
    func connectionGoneBeforeItsRequest() throws {
        let setup = try Setup(http2: true, holdsConnects: true)
        let client = TestClient()
        _ = client.request([(":method", "GET"), (":scheme", "http"), (":authority", "chat.test"), (":path", "/a")])
        try NGHTTP2FrontTests.pump(setup.client, client)
        #expect(setup.connector.held.count == 1 && setup.backend(1).active == 1)
        try Self.leaveWhileDialling(setup, front: NGHTTP2ConnectionHandler.self)
    }

    @Test("A drain that reached an HTTP/1.1 connection before its 101 still ends the tunnel at the shutdown grace")
    func drainBeforeTheUpgrade() throws {
        let setup = try Setup()
        try setup.client.writeInbound(Self.upgradeRequest)
        let upstream = setup.connector.channels[0]
        _ = try Self.written(upstream)
        // The listener drains while the backend is still answering.
        let drainedAt = NIODeadline.now()
        setup.client.pipeline.fireUserInboundEventTriggered(ChannelShouldQuiesceEvent())
        try upstream.writeInbound(Self.upgradeAccepted)
        setup.client.embeddedEventLoop.run()
        #expect(try Self.written(setup.client).hasPrefix("HTTP/1.1 101 Switching Protocols\r\n"))
        let clientEnd = try setup.client.pipeline.syncOperations.handler(type: TunnelGlue.self)
        let grace = setup.loop.runtime.limits.shutdownGrace
        #expect(clientEnd.deadline >= drainedAt + grace && clientEnd.deadline <= .now() + grace, "the drain's grace")
        #expect(clientEnd.sweeperSlot >= 0, "timed by the loop's sweeper")
        // The grace is over: the tunnel ends, and the backend is free.
        clientEnd.deadlinePassed(now: clientEnd.deadline)
        setup.client.embeddedEventLoop.run()
        #expect(!setup.client.isActive && !upstream.isActive)
        #expect(setup.backend(1).active == 0 && setup.backend(1).tunnels == 0)
    }

    @Test("The connection pool closes each idle connection at its own expiry, whatever the order they came in")
    func poolExpiry() throws {
        let setup = try Setup(ports: [1])
        let pool = setup.loop.connections
        let backend = setup.backend(1)
        var connections: [UpstreamConnection] = []
        for _ in 0..<3 {
            connections.append(try pool.connect(to: backend, timeout: .seconds(1)).wait())
        }
        // A reload shortened the idle timeout: the newest expires first.
        pool.release(connections[0], idleTimeout: .seconds(60))
        pool.release(connections[1], idleTimeout: .seconds(60))
        pool.release(connections[2], idleTimeout: .seconds(1))
        #expect(pool.idleCount == 3)
        #expect(pool.deadline <= connections[2].idleUntil)
        pool.deadlinePassed(now: .now() + .seconds(2))
        #expect(pool.idleCount == 2, "the expired one went, though it came last")
        #expect(!setup.connector.channels[2].isActive && setup.connector.channels[0].isActive)
        #expect(pool.deadline == connections[0].idleUntil, "the next expiry")
        // One closed while pooled is forgotten at the next sweep, expired or not.
        _ = try? setup.connector.channels[0].close().wait()
        pool.deadlinePassed(now: .now())
        #expect(pool.idleCount == 1)
        #expect(pool.takeIdle(for: backend) === connections[1])
    }
}
