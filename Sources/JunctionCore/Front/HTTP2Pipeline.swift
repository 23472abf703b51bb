import NIOCore
import NIOHTTP2

/// Sets up an HTTP/2 client connection: NIOHTTP2's connection handler with Junction's limits, its
/// connection manager (idle timeout, graceful GOAWAY on shutdown), and an `HTTP2StreamHandler` on
/// every stream.
///
/// The limits, all deliberate:
/// - 100 concurrent streams per connection (SETTINGS_MAX_CONCURRENT_STREAMS);
/// - SETTINGS_MAX_HEADER_LIST_SIZE twice `limits.max_header_bytes`: a decoded header list over
///   `max_header_bytes` gets 431 on its stream, one over twice that ends the connection;
/// - 64 KiB initial stream window and 1 MiB connection window: what one connection can make
///   Junction buffer before backpressure stops the client;
/// - SETTINGS_ENABLE_CONNECT_PROTOCOL = 1 (RFC 8441 WebSockets);
/// - swift-nio-http2's abuse protections on, at their defaults: at most 200 RST_STREAM frames in 30 s
///   (rapid reset), 5 CONTINUATION frames in a row, a glitch budget, and a rate limit on control
///   frames. A client that trips one loses its connection, not the process.
enum HTTP2Pipeline {
    static let maxConcurrentStreams = 100
    static let initialStreamWindow = 65535
    static let connectionWindow = 1 << 20

    static func configure(channel: Channel, loop: LoopContext, listener: ListenerIdentity) throws {
        let limits = loop.runtime.limits
        var connection = NIOHTTP2Handler.ConnectionConfiguration()
        connection.initialSettings = [
            HTTP2Setting(parameter: .maxConcurrentStreams, value: Self.maxConcurrentStreams),
            HTTP2Setting(parameter: .maxHeaderListSize, value: limits.maxHeaderBytes * 2),
            HTTP2Setting(parameter: .initialWindowSize, value: Self.initialStreamWindow),
            HTTP2Setting(parameter: .enableConnectProtocol, value: 1),
        ]
        connection.targetWindowSize = Self.connectionWindow
        var stream = NIOHTTP2Handler.StreamConfiguration()
        stream.targetWindowSize = Self.initialStreamWindow
        let manager = NIOHTTP2ServerConnectionManagementHandler(
            eventLoop: channel.eventLoop,
            configuration: .init(
                maxIdleTime: limits.clientIdleTimeout,
                maxAge: nil,
                maxGraceTime: limits.shutdownGrace,
                keepalive: nil
            )
        )
        let sync = channel.pipeline.syncOperations
        try sync.addHandler(FlushCoalescer())
        _ = try sync.configureHTTP2Pipeline(
            mode: .server,
            connectionConfiguration: connection,
            streamConfiguration: stream,
            streamDelegate: manager.http2StreamDelegate
        ) { streamChannel in
            streamChannel.eventLoop.makeCompletedFuture {
                try streamChannel.pipeline.syncOperations.addHandler(
                    HTTP2StreamHandler(loop: loop, listener: listener)
                )
            }
        }
        try sync.addHandler(manager)
        ConnectionSetupTimeout.remove(from: sync)
    }
}
