import NIOCore

#if canImport(Glibc)
    import Glibc
#endif

/// One side of a WebSocket tunnel: relays every byte read on its channel to the partner side's
/// channel, with backpressure (it stops reading while the partner cannot write), half-close and
/// close propagation. The pattern of swift-nio-examples' connect-proxy `GlueHandler`.
final class TunnelGlueHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    /// The partner, the tunnel and backpressure, as every tunnel side has them.
    let side: TunnelSide
    /// True on the client side, false on the upstream side.
    let isClientSide: Bool
    /// Where bytes are written: on an upstream channel the `UpstreamWriter` context at the head of
    /// the pipeline, so writes never pass the response decoder (which may still be on its way out).
    private var writeContext: ChannelHandlerContext?

    init(tunnel: Tunnel, isClientSide: Bool) {
        self.side = TunnelSide(tunnel: tunnel, isClientSide: isClientSide)
        self.isClientSide = isClientSide
    }

    // MARK: ChannelHandler

    func handlerAdded(context: ChannelHandlerContext) {
        self.side.context = context
        self.writeContext = (try? context.pipeline.syncOperations.context(handlerType: UpstreamWriter.self)) ?? context
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.side.removed()
        self.writeContext = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let bytes = self.unwrapInboundIn(data)
        if self.isClientSide {
            self.side.tunnel?.relayedFromClient(bytes)
        } else {
            self.side.tunnel?.relayedFromUpstream(bytes)
        }
        self.side.partner?.partnerWrite(bytes)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? ChannelEvent, case .inputClosed = event {
            self.side.tunnel?.inputEnded(fromClient: self.isClientSide)
            self.side.partner?.partnerWriteEOF()
        } else {
            context.fireUserInboundEventTriggered(event)
        }
    }
}

// MARK: - TunnelSideHandler

extension TunnelGlueHandler: TunnelSideHandler {
    func partnerWrite(_ bytes: ByteBuffer) {
        guard !self.side.isEnding else { return }
        self.writeContext?.write(self.wrapOutboundOut(bytes), promise: nil)
    }

    func partnerFlush() {
        guard !self.side.isEnding else { return }
        self.writeContext?.flush()
    }

    func partnerWriteEOF() {
        guard !self.side.isEnding else { return }
        self.side.context?.close(mode: .output, promise: nil)
    }

    func end(_ ending: TunnelEnding) {
        guard let context = self.side.beginEnding() else { return }
        switch ending {
        case .graceful(let last):
            // The channel closes once `last`, and everything queued before it, is out (a close on
            // the spot would drop queued writes); a client that reads nothing is reset when the
            // tunnel's close grace runs out.
            context.writeAndFlush(self.wrapOutboundOut(last)).assumeIsolated().whenComplete { _ in
                context.close(promise: nil)
            }
        case .reset:
            // SO_LINGER 0: close sends RST instead of FIN. On the channel's own loop the option is
            // set at once, before the close below.
            let provider = context.channel as? SocketOptionProvider
            _ = provider?.setSoLinger(linger(l_onoff: 1, l_linger: 0))
            context.close(promise: nil)
        }
    }
}
