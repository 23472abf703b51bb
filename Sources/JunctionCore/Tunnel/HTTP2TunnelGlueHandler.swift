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
                self.side.tunnel?.count(bytes: bytes.readableBytes, fromClient: true)
                self.side.partner?.partnerWrite(bytes)
            }
            if frame.endStream { self.side.partner?.partnerWriteEOF() }
        case .headers(let frame):
            // Trailers on a WebSocket stream carry nothing to relay; END_STREAM still half-closes.
            if frame.endStream { self.side.partner?.partnerWriteEOF() }
        default:
            break
        }
    }
}

extension HTTP2TunnelGlueHandler: TunnelSideHandler {
    func partnerWrite(_ bytes: ByteBuffer) {
        self.side.context?.write(self.wrapOutboundOut(.data(.init(data: .byteBuffer(bytes)))), promise: nil)
    }

    func partnerFlush() {
        self.side.context?.flush()
    }

    func partnerWriteEOF() {
        guard !self.sentEndStream, let context = self.side.context else { return }
        self.sentEndStream = true
        context.writeAndFlush(
            self.wrapOutboundOut(.data(.init(data: .byteBuffer(ByteBuffer()), endStream: true))),
            promise: nil
        )
    }
}
