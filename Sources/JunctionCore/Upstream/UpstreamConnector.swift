import NIOCore
import NIOPosix

/// How the data path opens a channel to a backend: a TCP connection in production, an in-memory
/// channel in unit tests of whole exchanges. The channel must be on `eventLoop` (the client's), and
/// `initializer` must have run on it before it becomes active.
protocol UpstreamConnector: Sendable {
    func connect(
        to address: SocketAddress,
        on eventLoop: EventLoop,
        timeout: TimeAmount,
        initializer: @escaping @Sendable (Channel) -> EventLoopFuture<Void>
    ) -> EventLoopFuture<Channel>
}

/// TCP to the backend's address, Nagle off, with the connect timeout.
struct SocketConnector: UpstreamConnector {
    func connect(
        to address: SocketAddress,
        on eventLoop: EventLoop,
        timeout: TimeAmount,
        initializer: @escaping @Sendable (Channel) -> EventLoopFuture<Void>
    ) -> EventLoopFuture<Channel> {
        ClientBootstrap(group: eventLoop)
            .connectTimeout(timeout)
            .channelOption(.tcpOption(.tcp_nodelay), value: 1)
            .channelOption(.recvAllocator, value: ReadBuffers.connection)
            .channelInitializer(initializer)
            .connect(to: address)
    }
}
