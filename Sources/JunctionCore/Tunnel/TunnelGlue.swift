import NIOCore
import NIOSSL

#if canImport(Glibc)
    import Glibc
#endif

/// One socket end of a WebSocket tunnel: relays every byte read on its channel to its partner (the
/// other socket's glue, or an HTTP/2 stream's `NGHTTP2TunnelEnd`), with backpressure (it stops
/// reading while the partner cannot write), half-close and close, in the shape of swift-nio-ssh's
/// GlueHandler: a relayed message passes two objects, this one and its partner. On a plain
/// socket the partner's bytes go out with one `send(2)` while NIO's write queue is empty
/// (`DirectWrites` argues the ordering), and through NIO otherwise.
///
/// The upstream end owns the tunnel's `TunnelLedger` and keeps the tunnel's books inline as bytes
/// go by: the bytes each way, the frame boundaries each way (a drain's close frame must fall
/// between two frames, and the first close frame tells who ended the tunnel) and the idle clock.
/// It is what a drain reaches (`TunnelHandle`). The client end of an HTTP/1.1 tunnel only relays,
/// and gives the WebSocket the shutdown grace when the listener drains.
final class TunnelGlue: ChannelDuplexHandler, RemovableChannelHandler, DeadlineTracked, TunnelEnd {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    /// How long a client may take to read the close frame of a drain (and, on HTTP/2, to end its
    /// stream) before it is reset.
    static let closeFrameGrace = TimeAmount.seconds(5)

    private let loop: LoopContext
    /// The tunnel's ledger: the upstream end's; nil on a client end.
    private let ledger: TunnelLedger?
    private var partner: (any TunnelEnd)?
    private var context: ChannelHandlerContext?
    /// Where bytes are written: on an upstream channel the `UpstreamWriter` context at the head of
    /// the pipeline, so writes never pass the response decoder (which may still be on its way out).
    private var writeTarget: ChannelHandlerContext?
    private var readPending = false
    /// The channel's writability as its last `channelWritabilityChanged` left it (NIO reports every
    /// flip on the loop, and nothing in front of a glue swallows the event). The partner asks
    /// before every read, and `channel.isWritable` is two objects away: cache misses per message.
    private var writable = true
    /// Whether the partner's bytes may go straight to the socket. A stored property of this class,
    /// not a protocol requirement: mutating one through a protocol's accessors cost three
    /// allocations per relayed message (the accessor's coroutine frames).
    private var directWrites = DirectWrites()
    /// Bytes went into NIO's queue since its last flush.
    private var unflushed = false
    /// This end is being ended on purpose: the partner's bytes, EOF and close no longer reach it.
    private var isEnding = false
    private var isClosed = false
    /// The partner said it closed (or there never was one).
    private var partnerClosed = true
    /// When an ending's grace is over: a drain's close frame not taken in time (upstream end), or
    /// the shutdown grace (client end).
    private var endBy = NIODeadline.distantFuture

    // The upstream end's books; a client end leaves them untouched.
    private var bytesFromClient: Int64 = 0
    private var bytesFromUpstream: Int64 = 0
    private var framesToClient = WebSocketFrameTracker()
    private var framesFromClient = WebSocketFrameTracker()
    private var lastActivity = NIODeadline.now()

    var sweeperSlot = -1
    var deadline: NIODeadline {
        guard let ledger = self.ledger, !self.isClosed else { return self.endBy }
        return min(self.endBy, self.lastActivity + ledger.idleTimeout)
    }

    /// `ledger`: this is the tunnel's upstream end. `closeBy`: a drain reached the connection before
    /// it became a tunnel, whose shutdown grace ends then (a client end's).
    init(loop: LoopContext, ledger: TunnelLedger?, closeBy: NIODeadline = .distantFuture) {
        self.loop = loop
        self.ledger = ledger
        self.endBy = closeBy
    }

    /// Makes `end` this end's partner (each end of a pair is told of the other). No I/O here: a
    /// write that failed on the spot would close this end before its partner knew it, and the
    /// partner would never hear of the close. `TunnelSplicer` starts direct writes
    /// (`startDirectWrites`) once both ends are partnered.
    func partner(with end: any TunnelEnd) {
        self.partner = end
        self.partnerClosed = false
    }

    // MARK: ChannelHandler

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        self.writable = context.channel.isWritable
        self.writeTarget = (try? context.pipeline.syncOperations.context(handlerType: UpstreamWriter.self)) ?? context
        if let ledger = self.ledger {
            ledger.opened(TunnelHandle.Target(glue: NIOLoopBound(self, eventLoop: context.eventLoop)))
            self.lastActivity = .now()
            self.loop.sweeper.register(self)
        } else if self.endBy != .distantFuture {
            self.loop.sweeper.register(self)
        }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.closed()
        self.context = nil
        self.writeTarget = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let bytes = self.unwrapInboundIn(data)
        if let ledger = self.ledger {
            self.bytesFromUpstream += Int64(bytes.readableBytes)
            self.framesToClient.observe(bytes)
            if self.framesToClient.sawClose { ledger.note(.backend) }
        }
        self.partner?.partnerWrite(bytes)
    }

    /// Bytes reached this end outside a read burst (a removed decoder's leftovers): the partner
    /// flushes them.
    func leftoversRelayed() {
        self.partner?.partnerFlush()
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        if self.ledger != nil { self.lastActivity = .now() }
        self.partner?.partnerFlush()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        switch event {
        case ChannelEvent.inputClosed:
            self.ledger?.note(.backend)
            self.partner?.partnerWriteEOF()
        case is ChannelShouldQuiesceEvent:
            // The listener drains or Junction shuts down: the WebSocket gets the shutdown grace.
            guard !self.isClosed else { return }
            self.endBy = min(self.endBy, .now() + self.loop.runtime.limits.shutdownGrace)
            self.loop.sweeper.register(self)
        case is HandoverEvent:
            // An upgrade: the tunnel stays until the drainer closes it at its pool's pace.
            break
        default:
            context.fireUserInboundEventTriggered(event)
        }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        self.writable = context.channel.isWritable
        if self.writable {
            self.partner?.partnerBecameWritable()
        }
        context.fireChannelWritabilityChanged()
    }

    func read(context: ChannelHandlerContext) {
        if let partner = self.partner, partner.partnerIsWritable {
            context.read()
        } else {
            self.readPending = true
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        // A reset or a failed read: on the upstream end the backend ended the tunnel, whatever
        // the client end does next.
        self.ledger?.note(.backend)
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.closed()
    }

    /// This end's channel closed: the partner hears it (once), and the books close when both did.
    private func closed() {
        guard !self.isClosed else { return }
        self.isClosed = true
        self.directWrites.stop()
        // Nothing noted yet: the backend ended the tunnel first.
        self.ledger?.note(.backend)
        let partner = self.partner
        if self.partnerClosed { self.partner = nil }
        partner?.partnerClose(.partnerClosed)
        self.finishIfDone()
    }

    /// Both ends closed: the links and the timer go, the ledger reports.
    private func finishIfDone() {
        guard self.isClosed, self.partnerClosed else { return }
        self.partner = nil
        self.loop.sweeper.unregister(self)
        self.ledger?.closed(bytesFromClient: self.bytesFromClient, bytesFromUpstream: self.bytesFromUpstream)
    }

    // MARK: a drain

    /// Ends the tunnel on purpose (a drain or a rebalance, on the tunnel's loop; the upstream end
    /// only): the backend's side closes at once; the client's gets a WebSocket close 1001 when the
    /// backend's stream to it is between frames, else a reset (the connection on HTTP/1.1, the
    /// stream on HTTP/2).
    func close(reason: TunnelLedger.CloseReason) {
        guard let ledger = self.ledger, !self.isClosed, !self.isEnding else { return }
        ledger.note(reason)
        self.isEnding = true
        self.endBy = .now() + Self.closeFrameGrace
        let ending: TunnelClose
        if self.framesToClient.sawClose {
            // The backend already began the closing handshake: one close frame is all there may be.
            ending = .graceful(last: ByteBuffer())
        } else if self.framesToClient.isBetweenFrames {
            let text = reason == .rebalance ? "rebalancing" : "backend draining"
            ending = .graceful(
                last: self.loop.allocator.buffer(bytes: WebSocketFrameTracker.closeFrame(code: 1001, reason: text))
            )
        } else {
            ending = .reset
        }
        self.partner?.partnerClose(ending)
        self.context?.close(promise: nil)
    }

    // MARK: DeadlineTracked

    func deadlinePassed(now: NIODeadline) {
        if self.endBy <= now {
            self.endBy = .distantFuture
            if self.ledger != nil {
                // The client did not take its close frame in time.
                self.partner?.partnerClose(.reset)
            } else {
                // The shutdown grace is over.
                self.context?.close(promise: nil)
            }
            return
        }
        // Idle for tunnel_idle: closing this end closes the partner.
        self.ledger?.note(.idle)
        self.context?.close(promise: nil)
    }

    // MARK: TunnelEnd

    func partnerWrite(_ bytes: ByteBuffer) {
        guard !self.isEnding else { return }
        if let ledger = self.ledger {
            self.bytesFromClient += Int64(bytes.readableBytes)
            self.framesFromClient.observe(bytes)
            if self.framesFromClient.sawClose { ledger.note(.client) }
        }
        self.writeOut(bytes)
    }

    /// On a plain socket, direct writes start once an empty write behind whatever HTTP wrote here
    /// (the 101, a request head) is out. `TunnelSplicer` calls this once both ends are partnered:
    /// a barrier that fails on the spot closes this end, and the partner must hear of it. A TLS
    /// handler is the only outbound handler in front of a glue that changes bytes; with one,
    /// every byte goes through it.
    func startDirectWrites() {
        guard let target = self.writeTarget else { return }
        let pipeline = target.pipeline.syncOperations
        guard (try? pipeline.handler(type: NIOSSLServerHandler.self)) == nil,
            let socket = try? pipeline.withUnsafeTransportIfAvailable(of: NIOBSDSocket.Handle.self, { $0 })
        else { return }
        self.directWrites.enable(socket: socket)
        self.enqueue(ByteBuffer(), tracked: true)
        self.flushOut()
    }

    /// Writes `bytes`: with `send(2)` when it may, else into NIO's queue (flushed by `flushOut`).
    private func writeOut(_ bytes: ByteBuffer) {
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
    private func flushOut() {
        guard self.unflushed else { return }
        self.unflushed = false
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
        self.unflushed = true
        guard tracked else {
            target.write(self.wrapOutboundOut(bytes), promise: nil)
            return
        }
        let written = target.eventLoop.makePromise(of: Void.self)
        written.futureResult.assumeIsolated().whenComplete { _ in self.directWrites.completed() }
        target.write(self.wrapOutboundOut(bytes), promise: written)
    }

    func partnerFlush() {
        if self.ledger != nil { self.lastActivity = .now() }
        guard !self.isEnding else { return }
        self.flushOut()
    }

    func partnerWriteEOF() {
        self.ledger?.note(.client)
        guard !self.isEnding else { return }
        self.context?.close(mode: .output, promise: nil)
    }

    func partnerClose(_ close: TunnelClose) {
        switch close {
        case .partnerClosed:
            guard !self.partnerClosed else { return }
            self.partnerClosed = true
            // The client's end closed first.
            self.ledger?.note(.client)
            if self.isClosed {
                self.finishIfDone()
            } else if !self.isEnding {
                self.context?.close(promise: nil)
            }
        case .graceful(let last):
            guard let context = self.beginEnding() else { return }
            // The channel closes once `last`, and everything queued before it, is out (a close on
            // the spot would drop queued writes); a client that reads nothing is reset when the
            // close grace runs out.
            context.writeAndFlush(self.wrapOutboundOut(last)).assumeIsolated().whenComplete { _ in
                context.close(promise: nil)
            }
        case .reset:
            guard let context = self.beginEnding() else { return }
            // SO_LINGER 0: close sends RST instead of FIN. On the channel's own loop the option is
            // set at once, before the close below.
            let provider = context.channel as? SocketOptionProvider
            _ = provider?.setSoLinger(linger(l_onoff: 1, l_linger: 0))
            context.close(promise: nil)
        }
    }

    /// Starts ending this end on purpose; its context, or nil when it is closed already. A second
    /// ending (the close grace ran out) is always a reset.
    private func beginEnding() -> ChannelHandlerContext? {
        self.isEnding = true
        self.directWrites.stop()
        return self.isClosed ? nil : self.context
    }

    func partnerBecameWritable() {
        if self.readPending, let context = self.context {
            self.readPending = false
            context.read()
        }
    }

    var partnerIsWritable: Bool { self.context != nil && self.writable }
}
