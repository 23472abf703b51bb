import NIOCore
import NIOEmbedded
import NIOHPACK

@testable import JunctionCore

#if canImport(Glibc)
    import Glibc
#endif

/// Upstream connections as `EmbeddedChannel`s on the client's loop (the connector seam), so a
/// whole exchange runs without a network.
final class EmbeddedConnector: UpstreamConnector, @unchecked Sendable {
    let loop: EmbeddedEventLoop
    private(set) var channels: [EmbeddedChannel] = []

    init(loop: EmbeddedEventLoop) {
        self.loop = loop
    }

    func connect(
        to address: SocketAddress,
        on eventLoop: EventLoop,
        timeout: TimeAmount,
        initializer: @escaping @Sendable (Channel) -> EventLoopFuture<Void>
    ) -> EventLoopFuture<Channel> {
        let channel = EmbeddedChannel(loop: self.loop)
        self.channels.append(channel)
        return initializer(channel).flatMap { channel.connect(to: address) }.map { channel }
    }
}

/// A client connection on a plain listener whose catch-all route goes to one backend, played by
/// the benchmark byte for byte.
final class Exchange {
    let client: EmbeddedChannel
    let connector: EmbeddedConnector

    static let request = ByteBuffer(
        string: "GET /api/v1/info?x=1 HTTP/1.1\r\nHost: chat.example.com\r\nUser-Agent: bench\r\nAccept: */*\r\n\r\n"
    )
    static let response = ByteBuffer(
        string: "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{\"ok\":true}"
    )
    static let upgradeRequest = ByteBuffer(
        string: "GET /websocket HTTP/1.1\r\nHost: chat.example.com\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            + "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    static let upgradeResponse = ByteBuffer(
        string: "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            + "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n"
    )
    /// A 128-byte DDP message, masked as a client sends it, and as the backend answers it.
    static let clientFrame = ByteBuffer(
        bytes: [0x81, 0xFE, 0x00, 0x80, 0, 0, 0, 0] + Array(repeating: 0x78, count: 128)
    )
    static let serverFrame = ByteBuffer(bytes: [0x81, 0x7E, 0x00, 0x80] + Array(repeating: 0x78, count: 128))

    /// `limits`: every per-client limit on (too high to refuse anything) and a limit on the route.
    init(http2: Bool = false, limits: Bool = false) throws {
        self.client = EmbeddedChannel()
        self.connector = EmbeddedConnector(loop: self.client.embeddedEventLoop)
        var config = JunctionConfig()
        config.routes = [RouteConfig(name: "all", pool: "app")]
        if limits {
            config.limits.perClient.maxConnections = 1_000_000
            config.limits.perClient.maxTunnels = 1_000_000
            config.limits.perClient.rate = RequestRate(requestsPerSecond: 1_000_000, burst: 1_000_000)
            config.routes[0].limit = RequestRate(requestsPerSecond: 1_000_000, burst: 1_000_000)
        }
        let registry = BackendRegistry()
        let pool = Pool(
            name: "app",
            members: registry.backends(named: "app"),
            balancer: LeastConnectionsBalancer(),
            timeouts: UpstreamTimeouts(),
            retries: 1,
            healthCheck: nil
        )
        let member = Backends.Member(
            address: try SocketAddress(ipAddress: "127.0.0.1", port: 1),
            label: "127.0.0.1:1",
            configuredAddress: "127.0.0.1:1",
            weight: 1
        )
        let runtime = RuntimeConfig(
            config: config,
            pools: ["app": pool],
            members: ["app": [member]],
            registry: registry
        )
        registry.apply(runtime)
        let loop = LoopContext(
            eventLoop: self.client.embeddedEventLoop,
            runtime: runtime,
            accessLogSink: nil,
            connector: self.connector
        )
        var listener = ListenerConfig(name: "bench", address: HostPort(host: "127.0.0.1", port: 80))
        listener.http2 = http2
        self.client.remoteAddress = try SocketAddress(ipAddress: "203.0.113.7", port: 50000)
        try ClientConnection.install(
            on: self.client,
            loop: loop,
            settings: ListenerSettings(config: listener, tls: nil)
        )
        try self.client.connect(to: try SocketAddress(ipAddress: "127.0.0.1", port: 80)).wait()
    }

    var upstream: EmbeddedChannel { self.connector.channels[0] }

    /// What went wrong in a benchmark's exchange (it would count the wrong thing).
    struct Unexpected: Error, CustomStringConvertible {
        var description: String
    }

    /// Takes what `channel` wrote; returns how many bytes.
    @discardableResult
    static func drain(_ channel: EmbeddedChannel) throws -> Int {
        var total = 0
        while let data = try channel.readOutbound(as: IOData.self) {
            if case .byteBuffer(let buffer) = data { total += buffer.readableBytes }
        }
        return total
    }

    /// Fails unless `channel` wrote exactly `expected` bytes.
    static func expect(_ channel: EmbeddedChannel, bytes expected: Int, _ what: String) throws {
        let written = try Self.drain(channel)
        guard written == expected else {
            throw Unexpected(description: "\(what): \(written) bytes written, expected \(expected)")
        }
    }

    /// One request to the backend and its response back to the client.
    func roundTrip() throws {
        try self.client.writeInbound(Self.request)
        guard try Self.drain(self.upstream) > Self.request.readableBytes else {
            throw Unexpected(description: "the request did not reach the backend")
        }
        try self.upstream.writeInbound(Self.response)
        guard try Self.drain(self.client) >= Self.response.readableBytes else {
            throw Unexpected(description: "the response did not reach the client")
        }
    }

    /// Upgrades the connection to a tunnel.
    func upgrade() throws {
        try self.client.writeInbound(Self.upgradeRequest)
        try Self.drain(self.upstream)
        try self.upstream.writeInbound(Self.upgradeResponse)
        self.client.embeddedEventLoop.run()
        guard try Self.drain(self.client) > 0 else { throw Unexpected(description: "no 101 to the client") }
    }

    /// One message to the backend and its answer back, each as one read with its read burst's end.
    func echo() throws {
        try self.client.writeInbound(Self.clientFrame)
        self.client.pipeline.fireChannelReadComplete()
        try Self.expect(self.upstream, bytes: Self.clientFrame.readableBytes, "client to backend")
        try self.upstream.writeInbound(Self.serverFrame)
        self.upstream.pipeline.fireChannelReadComplete()
        try Self.expect(self.client, bytes: Self.serverFrame.readableBytes, "backend to client")
    }
}

/// An h2c client (prior knowledge) on a plain listener with `http2: true`, played by the benchmark
/// frame by frame: its frames are built once (the header block with NIOHPACK, literal fields only,
/// so every request's block is the same bytes whatever the session's dynamic table holds).
final class HTTP2Exchange {
    let base: Exchange
    private var streamID: UInt32 = 1
    private let headerBlock: ByteBuffer

    init() throws {
        self.base = try Exchange(http2: true)
        var encoder = HPACKEncoder(allocator: ByteBufferAllocator(), useHuffmanEncoding: false)
        var block = ByteBuffer()
        var headers = HPACKHeaders()
        for (name, value, _) in HotPathFixtures.http2Headers {
            headers.add(name: name, value: value, indexing: .nonIndexable)
        }
        try encoder.encode(headers: headers, to: &block)
        self.headerBlock = block
        // The preface, the client's (empty) SETTINGS and its ACK of the server's.
        var start = ByteBuffer(string: "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        Self.frameHeader(length: 0, type: 0x4, flags: 0, stream: 0, into: &start)
        Self.frameHeader(length: 0, type: 0x4, flags: 0x1, stream: 0, into: &start)
        try self.base.client.writeInbound(start)
        self.base.client.pipeline.fireChannelReadComplete()
        self.base.client.embeddedEventLoop.run()
        guard try Exchange.drain(self.base.client) > 0 else {
            throw Exchange.Unexpected(description: "no SETTINGS from the server")
        }
    }

    private static func frameHeader(
        length: Int,
        type: UInt8,
        flags: UInt8,
        stream: UInt32,
        into buffer: inout ByteBuffer
    ) {
        buffer.writeInteger(UInt8(length >> 16))
        buffer.writeInteger(UInt16(length & 0xFFFF))
        buffer.writeInteger(type)
        buffer.writeInteger(flags)
        buffer.writeInteger(stream)
    }

    /// One GET on a new stream (HEADERS with END_STREAM), to the backend and its answer back as
    /// HEADERS and DATA.
    func roundTrip() throws {
        var frame = ByteBuffer()
        Self.frameHeader(
            length: self.headerBlock.readableBytes,
            type: 0x1,
            flags: 0x5,
            stream: self.streamID,
            into: &frame
        )
        frame.writeImmutableBuffer(self.headerBlock)
        self.streamID += 2
        try self.base.client.writeInbound(frame)
        self.base.client.pipeline.fireChannelReadComplete()
        guard try Exchange.drain(self.base.upstream) > 0 else {
            throw Exchange.Unexpected(description: "the request did not reach the backend")
        }
        try self.base.upstream.writeInbound(Exchange.response)
        self.base.upstream.pipeline.fireChannelReadComplete()
        self.base.client.embeddedEventLoop.run()
        guard try Exchange.drain(self.base.client) > 11 else {
            throw Exchange.Unexpected(description: "the response did not reach the client")
        }
    }
}

/// Inputs of the pure hot paths.
enum HotPathFixtures {
    /// The Rocket.Chat split's routes.
    static func routes() -> RouteTable {
        var config = JunctionConfig()
        var ddp = RouteConfig(name: "ddp", pool: "ddp")
        ddp.pathPrefixes = ["/sockjs", "/websocket"]
        config.routes = [ddp, RouteConfig(name: "monolith", pool: "monolith")]
        let pools = ["ddp", "monolith"].map { name in
            Pool(
                name: name,
                backends: [],
                balancer: LeastConnectionsBalancer(),
                timeouts: UpstreamTimeouts(),
                retries: 1,
                healthCheck: nil
            )
        }
        return RuntimeConfig(config: config, pools: Dictionary(uniqueKeysWithValues: pools.map { ($0.name, $0) }))
            .routes
    }

    static let http2Headers: HPACKHeaders = [
        ":method": "GET", ":scheme": "https", ":authority": "chat.example.com", ":path": "/api/v1/info?x=1",
        "user-agent": "bench", "accept": "*/*",
    ]

    /// An HTTP/2 request's header block as the stream handler converts it and the exchange rewrites
    /// it for upstream.
    static func convertHTTP2Head(route: RouteTable) -> Int {
        guard case .success(let request) = HTTP2HeadConverter.request(Self.http2Headers, endStream: true) else {
            fatalError("the fixture is a valid request")
        }
        let bytes = HeaderRewriter.upstreamRequestBytes(
            request.head,
            facts: request.facts,
            clientAddress: "203.0.113.7",
            scheme: "https",
            requestID: "0123456789abcdef",
            defaultHost: "chat.example.com:443",
            allocator: ByteBufferAllocator()
        )
        return bytes.readableBytes
    }
}
