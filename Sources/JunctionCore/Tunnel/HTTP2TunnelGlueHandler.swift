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
    private var side: TunnelSide
    private var sentEndStream = false

    init(tunnel: Tunnel) {
        self.side = TunnelSide(tunnel: tunnel)
    }

    /// The upstream side.
    var partner: (any TunnelEndpoint)? {
        get { self.side.partner }
        set { self.side.partner = newValue }
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

    func channelReadComplete(context: ChannelHandlerContext) {
        self.side.readBurstEnded()
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.side.closed()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        self.side.failed(context: context)
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        self.side.writabilityChanged(context: context)
    }

    func read(context: ChannelHandlerContext) {
        self.side.read(context: context)
    }
}

extension HTTP2TunnelGlueHandler: TunnelEndpoint {
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

    func partnerCloseFull() {
        // Closing a stream channel that has not ended sends RST_STREAM (CANCEL).
        self.side.close()
    }

    func partnerBecameWritable() {
        self.side.partnerBecameWritable()
    }

    var partnerIsWritable: Bool { self.side.isWritable }

    func closeChannel() {
        self.side.close()
    }
}
