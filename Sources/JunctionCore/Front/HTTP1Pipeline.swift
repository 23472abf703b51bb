import NIOCore
import NIOHTTP1

/// Sets up the HTTP/1.1 handlers of a client connection: NIO's request decoder with Junction's
/// header limits, then `HTTP1ServerHandler`. Responses are serialized by Junction
/// (`HTTP1HeadWriter`): there is no response encoder.
enum HTTP1Pipeline {
    /// Adds the handlers at the end of the pipeline; returns the front.
    static func configure(
        channel: Channel,
        loop: LoopContext,
        listener: ListenerIdentity,
        connection: ClientConnection
    ) throws -> HTTP1ServerHandler {
        var decoderLimits = NIOHTTPDecoderLimitConfiguration()
        decoderLimits.maxHeaderListSize = loop.runtime.limits.maxHeaderBytes
        decoderLimits.maxHeaderFieldSize = loop.runtime.limits.maxHeaderBytes
        let decoder = ByteToMessageHandler(
            HTTPRequestDecoder(
                leftOverBytesStrategy: .forwardBytes,
                informationalResponseStrategy: .drop,
                limitConfiguration: decoderLimits
            )
        )
        let front = HTTP1ServerHandler(
            loop: loop,
            listener: listener,
            codecs: HTTP1Codecs(decoder: decoder),
            connection: connection
        )
        let sync = channel.pipeline.syncOperations
        try sync.addHandler(decoder)
        try sync.addHandler(front)
        return front
    }
}
