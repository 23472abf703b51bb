import NIOCore
import NIOHTTP1

/// Turns a client connection (or HTTP/2 stream) and an upstream connection that just agreed on a
/// WebSocket upgrade into a byte-for-byte tunnel: glue goes in, the HTTP handlers and decoders come
/// out, so nothing of HTTP stays in the tunnel's path.
enum TunnelSplicer {
    /// An HTTP/1.1 client whose 101 was written. Runs on the shared event loop after the upstream
    /// decoder delivered the 101's end (so no HTTP part can reach a glue). `front` leaves the
    /// pipeline; the request `decoder` leaves last, so bytes it holds (a frame sent right behind
    /// the handshake) go to the glue, then out upstream. `closeBy`: the shutdown grace of a drain
    /// that reached the connection before the 101, which the tunnel keeps.
    static func splice(
        client channel: Channel,
        front: any RemovableChannelHandler,
        decoder: ByteToMessageHandler<HTTPRequestDecoder>,
        handover: TunnelHandover,
        closeBy: NIODeadline,
        loop: LoopContext
    ) {
        guard let upstreamChannel = handover.upstream.channel else {
            // The backend went while the 101 was on its way (the ledger ends with the lease).
            channel.close(promise: nil)
            return
        }
        let clientEnd = TunnelGlue(loop: loop, ledger: nil, closeBy: closeBy)
        let upstreamEnd = TunnelGlue(loop: loop, ledger: handover.ledger)
        let pipeline = channel.pipeline.syncOperations
        do {
            try pipeline.addHandler(clientEnd)
            pipeline.removeHandler(front, promise: nil)
            try self.spliceUpstream(handover.upstream, channel: upstreamChannel, glue: upstreamEnd)
            // Partnered once both are in place: an end that failed to go in holds nobody.
            clientEnd.partner(with: upstreamEnd)
            upstreamEnd.partner(with: clientEnd)
            // Behind what HTTP wrote on each socket (the 101, the request head). Both are partnered
            // first: a barrier write that fails closes its end at once, and the other must hear it.
            clientEnd.startDirectWrites()
            upstreamEnd.startDirectWrites()
            let decoderRemoved = channel.eventLoop.makePromise(of: Void.self)
            pipeline.removeHandler(decoder, promise: decoderRemoved)
            decoderRemoved.futureResult.assumeIsolated().whenComplete { _ in upstreamChannel.flush() }
        } catch {
            channel.close(promise: nil)
            upstreamChannel.close(promise: nil)
            return
        }
        // A WebSocket closes each direction on its own: let EOF through as a half-close.
        channel.setOption(ChannelOptions.allowRemoteHalfClosure, value: true).whenComplete { _ in }
        ReadBuffers.useTunnelBuffers(on: channel)
        // Reads may have been held back by the HTTP front; the glue decides from now on.
        channel.read()
        upstreamChannel.read()
    }

    /// An HTTP/2 stream (RFC 8441) whose 200 was submitted: the stream has no pipeline of its own,
    /// so only the upstream changes; its glue becomes `stream`'s partner. False when the upstream
    /// is gone (the caller resets the stream).
    static func splice(stream: NGHTTP2TunnelEnd, handover: TunnelHandover, loop: LoopContext) -> Bool {
        guard let upstreamChannel = handover.upstream.channel else { return false }
        let upstreamEnd = TunnelGlue(loop: loop, ledger: handover.ledger)
        do {
            try self.spliceUpstream(handover.upstream, channel: upstreamChannel, glue: upstreamEnd)
        } catch {
            upstreamChannel.close(promise: nil)
            return false
        }
        stream.partner(with: upstreamEnd)
        upstreamEnd.partner(with: stream)
        // No direct writes here: an HTTP/2 stream hands its partner one write per DATA frame and
        // flushes once per read burst, which NIO sends as one writev; a send(2) per frame would be
        // more system calls, not fewer.
        upstreamChannel.read()
        return true
    }

    /// The upstream half: glue in, `UpstreamConnection` out, then the response decoder, whose
    /// leftover bytes (a frame right behind the 101) flow into the glue and out to the client.
    private static func spliceUpstream(_ upstream: UpstreamConnection, channel: Channel, glue: TunnelGlue) throws {
        let pipeline = channel.pipeline.syncOperations
        try pipeline.addHandler(glue)
        pipeline.removeHandler(upstream, promise: nil)
        // The decoder's read is still on the stack (the 101 arrived through it), so it leaves once
        // that read returns, after its readComplete went by: flush what its leftovers wrote.
        let decoderRemoved = channel.eventLoop.makePromise(of: Void.self)
        pipeline.removeHandler(
            try pipeline.handler(type: ByteToMessageHandler<HTTPResponseDecoder>.self),
            promise: decoderRemoved
        )
        decoderRemoved.futureResult.assumeIsolated().whenComplete { _ in glue.leftoversRelayed() }
        channel.setOption(ChannelOptions.allowRemoteHalfClosure, value: true).whenComplete { _ in }
        ReadBuffers.useTunnelBuffers(on: channel)
    }
}
