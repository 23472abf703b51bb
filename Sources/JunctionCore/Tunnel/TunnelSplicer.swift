import NIOCore
import NIOHTTP1

/// The HTTP/1.1 codecs of a client connection, kept so an upgrade can take them out of the pipeline.
struct HTTP1Codecs {
    /// The request decoder; removed last so bytes it buffered after the upgrade request flow on.
    let decoder: ByteToMessageHandler<HTTPRequestDecoder>
}

/// Turns a client connection and an upstream connection that just agreed on a WebSocket upgrade
/// into a byte-for-byte tunnel: the glue pair goes in, the HTTP handlers and codecs come out.
enum TunnelSplicer {
    /// Must run on the shared event loop, after the 101 was written to the client and after the
    /// upstream decoder delivered the 101's end (so no HTTP part can reach a glue handler).
    static func splice(
        tunnel: Tunnel,
        client: (channel: Channel, codecs: HTTP1Codecs, handler: HTTP1ServerHandler),
        upstream: (channel: Channel, handler: UpstreamConnection)
    ) {
        let clientPipeline = client.channel.pipeline.syncOperations
        let upstreamPipeline = upstream.channel.pipeline.syncOperations
        do {
            try clientPipeline.addHandler(tunnel.clientSide)
            try upstreamPipeline.addHandler(tunnel.upstreamSide)
            // The HTTP handlers first (heads are serialized by Junction, there are no encoders).
            clientPipeline.removeHandler(client.handler, promise: nil)
            upstreamPipeline.removeHandler(upstream.handler, promise: nil)
            // Decoders last: bytes they hold (a frame sent right behind the handshake) go to the glue.
            // A decoder whose read is still on the stack is removed once that read returns, after its
            // readComplete went by: flush what its leftovers made the partner write.
            let clientDecoderRemoved = client.channel.eventLoop.makePromise(of: Void.self)
            clientPipeline.removeHandler(client.codecs.decoder, promise: clientDecoderRemoved)
            clientDecoderRemoved.futureResult.assumeIsolated().whenComplete { _ in upstream.channel.flush() }
            let upstreamDecoderRemoved = upstream.channel.eventLoop.makePromise(of: Void.self)
            upstreamPipeline.removeHandler(
                try upstreamPipeline.handler(type: ByteToMessageHandler<HTTPResponseDecoder>.self),
                promise: upstreamDecoderRemoved
            )
            upstreamDecoderRemoved.futureResult.assumeIsolated().whenComplete { _ in client.channel.flush() }
        } catch {
            client.channel.close(promise: nil)
            upstream.channel.close(promise: nil)
            return
        }
        // A WebSocket closes each direction on its own: let EOF through as a half-close.
        client.channel.setOption(ChannelOptions.allowRemoteHalfClosure, value: true).whenComplete { _ in }
        upstream.channel.setOption(ChannelOptions.allowRemoteHalfClosure, value: true).whenComplete { _ in }
        // Reads may have been held back by the HTTP handlers; the glue decides from now on.
        client.channel.read()
        upstream.channel.read()

    }
}
