import NIOCore
import NIOHTTP2

/// The HTTP/2 side of an RFC 8441 WebSocket tunnel: DATA frames of one stream to and from the
/// bytes of the upstream socket. Flow control is the backpressure: reads on the stream are held
/// while the upstream cannot write, and the stream channel's writability follows the peer's window.
/// END_STREAM is a half-close; RST_STREAM closes.
final class HTTP2TunnelGlueHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTP2Frame.FramePayload
    typealias OutboundIn = HTTP2Frame.FramePayload
    typealias OutboundOut = HTTP2Frame.FramePayload

    /// The partner, the tunnel and backpressure, as every tunnel side has them.
    let side: TunnelSide
    private var sentEndStream = false

    init(tunnel: Tunnel) {
        self.side = TunnelSide(tunnel: tunnel, isClientSide: true)
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.side.context = context
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.side.removed()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch self.unwrapInboundIn(data) {
        case .data(let frame):
            if case .byteBuffer(let bytes) = frame.data, bytes.readableBytes > 0 {
                self.side.tunnel?.relayedFromClient(bytes)
                self.side.partner?.partnerWrite(bytes)
            }
            if frame.endStream { self.inputEnded() }
        case .headers(let frame):
            // Trailers on a WebSocket stream carry nothing to relay; END_STREAM still half-closes.
            if frame.endStream { self.inputEnded() }
        default:
            break
        }
    }
}

extension HTTP2TunnelGlueHandler {
    /// The client ended its half of the stream.
    private func inputEnded() {
        self.side.tunnel?.inputEnded(fromClient: true)
        self.side.partner?.partnerWriteEOF()
    }
}

extension HTTP2TunnelGlueHandler: TunnelSideHandler {
    func partnerWrite(_ bytes: ByteBuffer) {
        guard !self.side.isEnding else { return }
        self.side.context?.write(self.wrapOutboundOut(.data(.init(data: .byteBuffer(bytes)))), promise: nil)
    }

    func partnerFlush() {
        guard !self.side.isEnding else { return }
        self.side.context?.flush()
    }

    func end(_ ending: TunnelEnding) {
        let wasEnding = self.side.isEnding
        guard let context = self.side.beginEnding() else { return }
        switch ending {
        case .graceful(let last) where !self.sentEndStream && !wasEnding:
            // `last` ends our half of the stream; the stream closes when the client ends its half
            // (its own close frame), or is reset when the tunnel's close grace runs out.
            self.endStream(context: context, with: last)
        default:
            // Closing a stream that has not ended both ways is RST_STREAM (CANCEL).
            context.close(promise: nil)
        }
    }

    func partnerWriteEOF() {
        guard !self.side.isEnding, !self.sentEndStream, let context = self.side.context else { return }
        self.endStream(context: context, with: ByteBuffer())
    }

    /// A last DATA frame carrying `bytes` and END_STREAM.
    private func endStream(context: ChannelHandlerContext, with bytes: ByteBuffer) {
        self.sentEndStream = true
        context.writeAndFlush(
            self.wrapOutboundOut(.data(.init(data: .byteBuffer(bytes), endStream: true))),
            promise: nil
        )
    }
}
