import JunctionCore
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOWebSocket

/// The backends of `junction demo`, on loopback ports the system picks: a monolith that serves the
/// demo page and `/api/info`, and two ddp-streamers that speak DDP over WebSocket the way
/// Rocket.Chat's do (raw DDP on exactly `/websocket`, SockJS framing on other paths, `/health`).
public final class DemoBackends: Sendable {
    /// A running demo backend.
    public struct Server: Sendable {
        public let name: String
        public let port: Int
        let channel: Channel
    }

    public let monolith: Server
    public let ddpStreamers: [Server]
    /// The port of Junction's admin listener (the page links to it).
    public let adminPort: Int
    private let group: MultiThreadedEventLoopGroup

    private init(monolith: Server, ddpStreamers: [Server], adminPort: Int, group: MultiThreadedEventLoopGroup) {
        self.monolith = monolith
        self.ddpStreamers = ddpStreamers
        self.adminPort = adminPort
        self.group = group
    }

    /// Binds the monolith and `ddpStreamerCount` ddp-streamers on 127.0.0.1.
    public static func start(adminPort: Int, ddpStreamerCount: Int = 2) async throws -> DemoBackends {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let page = DemoPage.html(adminPort: adminPort)
        do {
            let monolith = try await self.bind(name: "monolith", group: group) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    try channel.pipeline.syncOperations.addHandler(
                        SimpleHTTPResponder { head in DemoAnswers.monolith(head, page: page) }
                    )
                }
            }
            var ddpStreamers: [Server] = []
            for index in 1...max(1, ddpStreamerCount) {
                let name = "ddp-streamer-\(index)"
                ddpStreamers.append(
                    try await self.bind(name: name, group: group) { channel in
                        Self.configureDDPStreamer(channel, name: name)
                    }
                )
            }
            return DemoBackends(monolith: monolith, ddpStreamers: ddpStreamers, adminPort: adminPort, group: group)
        } catch {
            try? await group.shutdownGracefully()
            throw error
        }
    }

    /// Closes the listeners and every connection.
    public func stop() async {
        for server in [self.monolith] + self.ddpStreamers {
            try? await server.channel.close()
        }
        try? await self.group.shutdownGracefully()
    }

    /// The config file `junction demo` runs: the Rocket.Chat split over these backends.
    public func config(port: Int) -> String {
        """
        # Written by `junction demo`: the Rocket.Chat split of conf/junction.yaml over demo backends.
        threads: 2
        listeners:
          - name: demo
            address: 127.0.0.1:\(port)
        admin:
          address: 127.0.0.1:\(self.adminPort)
        routes:
          - name: ddp
            match:
              path_prefix: [/sockjs, /websocket]
            pool: ddp-streamer
          - name: monolith
            pool: monolith
            compress: true
        pools:
          ddp-streamer:
            balance: least_conn
            health_check:
              path: /health
              interval: 2s
            backends:
        \(self.ddpStreamers.map { "      - address: 127.0.0.1:\($0.port)" }.joined(separator: "\n"))
          monolith:
            health_check:
              path: /health
              interval: 2s
            backends:
              - address: 127.0.0.1:\(self.monolith.port)
        limits:
          shutdown_grace: 5s
        logging:
          level: info
          access_log: stdout

        """
    }

    private static func bind(
        name: String,
        group: EventLoopGroup,
        initializer: @escaping @Sendable (Channel) -> EventLoopFuture<Void>
    ) async throws -> Server {
        let channel = try await ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer(initializer)
            .bind(host: "127.0.0.1", port: 0)
            .get()
        return Server(name: name, port: channel.localAddress?.port ?? 0, channel: channel)
    }

    /// HTTP for `/health` and `/sockjs/info`; a WebSocket upgrade on any other path becomes a DDP session.
    private static func configureDDPStreamer(_ channel: Channel, name: String) -> EventLoopFuture<Void> {
        let upgrader = NIOWebSocketServerUpgrader(
            maxFrameSize: 1 << 20,
            shouldUpgrade: { channel, _ in channel.eventLoop.makeSucceededFuture(HTTPHeaders()) },
            upgradePipelineHandler: { channel, head in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandlers(
                        NIOWebSocketFrameAggregator(
                            minNonFinalFragmentSize: 1,
                            maxAccumulatedFrameCount: 64,
                            maxAccumulatedFrameSize: 1 << 20
                        ),
                        DemoDDPSession(backend: name, sockJS: head.uri != "/websocket")
                    )
                }
            }
        )
        return channel.eventLoop.makeCompletedFuture {
            try channel.pipeline.syncOperations.configureHTTPServerPipeline(
                withServerUpgrade: (
                    upgraders: [upgrader],
                    completionHandler: { context in
                        // The WebSocket handlers take over; the HTTP one would see frames.
                        context.pipeline.removeHandler(name: "demo-http", promise: nil)
                    }
                )
            )
            try channel.pipeline.syncOperations.addHandler(
                SimpleHTTPResponder(answer: DemoAnswers.ddpStreamer),
                name: "demo-http"
            )
        }
    }
}
