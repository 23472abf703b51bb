import NIOCore
import NIOSSL

#if canImport(Glibc)
    import Glibc
#endif

/// A handler that writes its channel's bytes through `DirectWrites`: straight to the socket while
/// NIO's queue is empty, through the queue otherwise (a tunnel end; an upstream connection's
/// request writes were tried too and not kept, see docs/performance.md).
protocol DirectWriter: AnyObject {
    /// Where the writer stands, its socket and whether NIO holds unflushed bytes.
    var directWrites: DirectWrites { get set }
    /// Where bytes enter NIO's queue (the head's context on an upstream channel); nil once the
    /// handler left its pipeline.
    var writeTarget: ChannelHandlerContext? { get }
}

extension DirectWriter {
    /// Turns direct writes on where the channel is a plain socket. `barrier`: the channel may have
    /// bytes queued already (HTTP wrote on it before): direct writes wait for an empty write
    /// behind them. A TLS handler is the only outbound handler in front of a tunnel's glue that
    /// changes bytes; with one, every byte goes through it.
    func startDirectWrites(barrier: Bool) {
        guard let target = self.writeTarget else { return }
        let pipeline = target.pipeline.syncOperations
        guard (try? pipeline.handler(type: NIOSSLServerHandler.self)) == nil,
            let socket = try? pipeline.withUnsafeTransportIfAvailable(of: NIOBSDSocket.Handle.self, { $0 })
        else { return }
        self.directWrites.enable(socket: socket, barrier: barrier)
        if barrier {
            self.enqueue(ByteBuffer(), tracked: true)
            self.flushOut()
        }
    }

    /// Writes `bytes`: with `send(2)` when it may, else into NIO's queue (flushed by `flushOut`).
    func writeOut(_ bytes: ByteBuffer) {
        switch self.directWrites.route() {
        case .socket:
            if let rest = self.send(bytes) {
                self.directWrites.fellBack()
                self.enqueue(rest, tracked: true)
            }
        case .queue(let tracked):
            self.enqueue(bytes, tracked: tracked)
        }
    }

    /// Flushes what went into NIO's queue, if anything did.
    func flushOut() {
        guard self.directWrites.unflushed else { return }
        self.directWrites.unflushed = false
        self.writeTarget?.flush()
    }

    /// Writes what the kernel takes of `bytes` now; returns what it did not take (all of it on
    /// EAGAIN, or on an error, which NIO then meets on its own write and handles as always).
    private func send(_ bytes: ByteBuffer) -> ByteBuffer? {
        guard bytes.readableBytes > 0 else { return nil }
        // Active: the descriptor is still this channel's (NIO closes it and marks the channel
        // inactive in one step, on this loop).
        guard let channel = self.writeTarget?.channel, channel.isActive else { return bytes }
        let socket = self.directWrites.socket
        let sent = bytes.withUnsafeReadableBytes { raw in
            Glibc.send(socket, raw.baseAddress, raw.count, Int32(MSG_NOSIGNAL) | Int32(MSG_DONTWAIT))
        }
        if sent == bytes.readableBytes { return nil }
        guard sent > 0 else {
            // The descriptor must still be this channel's socket (see `DirectWrites`); debug builds,
            // which the tests run, stop here if that ever stops holding.
            assert(sent == 0 || (errno != EBADF && errno != ENOTSOCK), "a direct write to a stale descriptor")
            return bytes
        }
        var rest = bytes
        rest.moveReaderIndex(forwardBy: sent)
        return rest
    }

    /// Into NIO's queue; `tracked`: `directWrites` hears when it is out.
    private func enqueue(_ bytes: ByteBuffer, tracked: Bool) {
        guard let target = self.writeTarget else { return }
        self.directWrites.unflushed = true
        guard tracked else {
            target.write(NIOAny(bytes), promise: nil)
            return
        }
        let written = target.eventLoop.makePromise(of: Void.self)
        written.futureResult.assumeIsolated().whenComplete { _ in self.directWrites.completed() }
        target.write(NIOAny(bytes), promise: written)
    }
}
