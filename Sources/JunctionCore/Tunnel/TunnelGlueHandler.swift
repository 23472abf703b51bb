import NIOCore

/// One side of a WebSocket tunnel: relays every byte read on its channel to the partner side's
/// channel, with backpressure (it stops reading while the partner cannot write), half-close and
/// close propagation. The pattern of swift-nio-examples' connect-proxy `GlueHandler`.
final class TunnelGlueHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    /// The other side; nil once this side is removed.
    var partner: (any TunnelEndpoint)?
    /// The tunnel both sides belong to (idle timeout, counters, teardown); nil once removed.
    private var tunnel: Tunnel?
    /// True on the client side, false on the upstream side.
    let isClientSide: Bool

    private var context: ChannelHandlerContext?
    /// Where bytes are written: on an upstream channel the `UpstreamWriter` context at the head of
    /// the pipeline, so writes never pass the response decoder (which may still be on its way out).
    private var writeContext: ChannelHandlerContext?
    private var readPending = false

    init(tunnel: Tunnel, isClientSide: Bool) {
        self.tunnel = tunnel
        self.isClientSide = isClientSide
    }

    // MARK: ChannelHandler

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        self.writeContext = (try? context.pipeline.syncOperations.context(handlerType: UpstreamWriter.self)) ?? context
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
        self.writeContext = nil
        self.partner = nil
        self.tunnel = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let bytes = self.unwrapInboundIn(data)
        self.tunnel?.count(bytes: bytes.readableBytes, fromClient: self.isClientSide)
        self.partner?.partnerWrite(bytes)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        self.tunnel?.touch()
        self.partner?.partnerFlush()
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.partner?.partnerCloseFull()
        self.tunnel?.sideClosed()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? ChannelEvent, case .inputClosed = event {
            self.partner?.partnerWriteEOF()
        } else {
            context.fireUserInboundEventTriggered(event)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        self.partner?.partnerCloseFull()
        context.close(promise: nil)
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable {
            self.partner?.partnerBecameWritable()
        }
    }

    func read(context: ChannelHandlerContext) {
        if let partner = self.partner, partner.partnerIsWritable {
            context.read()
        } else {
            self.readPending = true
        }
    }
}

// MARK: - TunnelEndpoint

extension TunnelGlueHandler: TunnelEndpoint {
    func partnerWrite(_ bytes: ByteBuffer) {
        self.writeContext?.write(self.wrapOutboundOut(bytes), promise: nil)
    }

    func partnerFlush() {
        self.writeContext?.flush()
    }

    func partnerWriteEOF() {
        self.context?.close(mode: .output, promise: nil)
    }

    func partnerCloseFull() {
        self.context?.close(promise: nil)
    }

    func partnerBecameWritable() {
        if self.readPending, let context = self.context {
            self.readPending = false
            context.read()
        }
    }

    var partnerIsWritable: Bool {
        self.context?.channel.isWritable ?? false
    }

    func closeChannel() {
        self.context?.close(promise: nil)
    }
}
