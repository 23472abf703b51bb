import NIOCore
import NIOHTTP1

/// The HTTP/1.1 codec of a client connection, kept so an upgrade can take it out of the pipeline.
struct HTTP1Codecs {
    /// The request decoder; removed last so bytes it buffered after the upgrade request flow on.
    let decoder: ByteToMessageHandler<HTTPRequestDecoder>
}

/// Turns a client connection (or HTTP/2 stream) and an upstream connection that just agreed on a
/// WebSocket upgrade into a byte-for-byte tunnel: glue handlers go in, HTTP handlers and decoders
/// come out.
enum TunnelSplicer {
    /// An HTTP/1.1 client. Must run on the shared event loop, after the 101 was written to the client
    /// and after the upstream decoder delivered the 101's end (so no HTTP part can reach a glue).
    static func splice(
        tunnel: Tunnel,
        client: (channel: Channel, codecs: HTTP1Codecs, handler: HTTP1ServerHandler),
        upstream: (channel: Channel, handler: UpstreamConnection)
    ) {
        let clientSide = TunnelGlueHandler(tunnel: tunnel, isClientSide: true)
        let upstreamSide = TunnelGlueHandler(tunnel: tunnel, isClientSide: false)
        tunnel.pair(client: clientSide, upstream: upstreamSide)
        let clientPipeline = client.channel.pipeline.syncOperations
        do {
            try clientPipeline.addHandler(clientSide)
            clientPipeline.removeHandler(client.handler, promise: nil)
            try self.spliceUpstream(upstream, glue: upstreamSide)
            // The client's decoder last: bytes it holds (a frame sent right behind the handshake)
            // go to the glue, then out upstream.
            let decoderRemoved = client.channel.eventLoop.makePromise(of: Void.self)
            clientPipeline.removeHandler(client.codecs.decoder, promise: decoderRemoved)
            decoderRemoved.futureResult.assumeIsolated().whenComplete { _ in upstream.channel.flush() }
        } catch {
            client.channel.close(promise: nil)
            upstream.channel.close(promise: nil)
            return
        }
        // A WebSocket closes each direction on its own: let EOF through as a half-close.
        client.channel.setOption(ChannelOptions.allowRemoteHalfClosure, value: true).whenComplete { _ in }
        ReadBuffers.useTunnelBuffers(on: client.channel)
        // Reads may have been held back by the HTTP handler; the glue decides from now on.
        client.channel.read()
        upstream.channel.read()
    }

    /// An HTTP/2 stream (RFC 8441), after its `:status 200` was submitted:
    /// the stream has no pipeline, so only the upstream changes.
    static func splice(
        tunnel: Tunnel,
        stream: NGHTTP2TunnelEndpoint,
        upstream: (channel: Channel, handler: UpstreamConnection)
    ) {
        let upstreamSide = TunnelGlueHandler(tunnel: tunnel, isClientSide: false)
        tunnel.pair(client: stream, upstream: upstreamSide)
        do {
            try self.spliceUpstream(upstream, glue: upstreamSide)
        } catch {
            stream.closeChannel()
            upstream.channel.close(promise: nil)
            return
        }
        upstream.channel.read()
    }

    /// The upstream half: glue in, `UpstreamConnection` out, then the response decoder, whose
    /// leftover bytes (a frame right behind the 101) flow into the glue and out to the client.
    private static func spliceUpstream(
        _ upstream: (channel: Channel, handler: UpstreamConnection),
        glue: TunnelGlueHandler
    ) throws {
        let pipeline = upstream.channel.pipeline.syncOperations
        try pipeline.addHandler(glue)
        pipeline.removeHandler(upstream.handler, promise: nil)
        // The decoder's read is still on the stack (the 101 arrived through it), so it leaves once
        // that read returns, after its readComplete went by: flush what its leftovers wrote.
        let decoderRemoved = upstream.channel.eventLoop.makePromise(of: Void.self)
        pipeline.removeHandler(
            try pipeline.handler(type: ByteToMessageHandler<HTTPResponseDecoder>.self),
            promise: decoderRemoved
        )
        decoderRemoved.futureResult.assumeIsolated().whenComplete { _ in glue.partner?.partnerFlush() }
        upstream.channel.setOption(ChannelOptions.allowRemoteHalfClosure, value: true).whenComplete { _ in }
        ReadBuffers.useTunnelBuffers(on: upstream.channel)
    }
}
