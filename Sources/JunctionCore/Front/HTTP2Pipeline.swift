import NIOCore
import NIOHTTP2

/// Sets up an HTTP/2 client connection: swift-nio-http2's codec with Junction's limits, its stream
/// multiplexer with an `HTTP2StreamHandler` on every stream, and `HTTP2ConnectionHandler`, which
/// reports stream counts, PING acks and connection errors to the connection's owner
/// (`ClientConnection`, which keeps the idle, GOAWAY and shutdown deadlines).
///
/// The limits, all deliberate:
/// - 100 concurrent streams per connection (SETTINGS_MAX_CONCURRENT_STREAMS);
/// - SETTINGS_MAX_HEADER_LIST_SIZE twice `limits.max_header_bytes`: a decoded header list over
///   `max_header_bytes` gets 431 on its stream, one over twice that ends the connection;
/// - 64 KiB stream and connection windows: a stream's window opens as its handler reads, so one
///   connection makes Junction hold at most 100 × 64 KiB before backpressure stops the client;
/// - SETTINGS_ENABLE_CONNECT_PROTOCOL = 1 (RFC 8441 WebSockets);
/// - swift-nio-http2's abuse protections on, at their defaults: at most 200 RST_STREAM frames in 30 s
///   (rapid reset), 5 CONTINUATION frames in a row, a glitch budget, and a rate limit on control
///   frames. A client that trips one gets GOAWAY and loses its connection, not the process.
enum HTTP2Pipeline {
    static let maxConcurrentStreams = 100
    static let windowSize = 65535

    /// Adds the handlers at the end of the pipeline; returns the connection-level one.
    static func configure(
        channel: Channel,
        loop: LoopContext,
        listener: ListenerIdentity,
        connection: ClientConnection
    ) throws -> HTTP2ConnectionHandler {
        let limits = loop.runtime.limits
        var configuration = NIOHTTP2Handler.ConnectionConfiguration()
        configuration.initialSettings = [
            HTTP2Setting(parameter: .maxConcurrentStreams, value: Self.maxConcurrentStreams),
            HTTP2Setting(parameter: .maxHeaderListSize, value: limits.maxHeaderBytes * 2),
            HTTP2Setting(parameter: .initialWindowSize, value: Self.windowSize),
            HTTP2Setting(parameter: .enableConnectProtocol, value: 1),
        ]
        let connectionHandler = HTTP2ConnectionHandler(connection: connection)
        // The frame delegate is what tells a connection error (GOAWAY with an error code) from a
        // stream error: both reach the pipeline as the same errors.
        let codec = NIOHTTP2Handler(
            mode: .server,
            frameDelegate: connectionHandler,
            connectionConfiguration: configuration,
            streamConfiguration: NIOHTTP2Handler.StreamConfiguration()
        )
        let multiplexer = HTTP2StreamMultiplexer(
            mode: .server,
            channel: channel,
            targetWindowSize: Self.windowSize,
            inboundStreamInitializer: { streamChannel in
                streamChannel.eventLoop.makeCompletedFuture {
                    try streamChannel.pipeline.syncOperations.addHandler(
                        HTTP2StreamHandler(loop: loop, listener: listener)
                    )
                }
            }
        )
        let sync = channel.pipeline.syncOperations
        try sync.addHandler(FlushCoalescer())
        try sync.addHandler(codec)
        try sync.addHandler(multiplexer)
        try sync.addHandler(connectionHandler)
        return connectionHandler
    }
}
