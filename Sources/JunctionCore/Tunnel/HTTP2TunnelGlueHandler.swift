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

    /// The upstream side.
    var partner: (any TunnelEndpoint)?
    private var tunnel: Tunnel?
    private var context: ChannelHandlerContext?
    private var readPending = false
    private var sentEndStream = false

    init(tunnel: Tunnel) {
        self.tunnel = tunnel
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
        self.partner = nil
        self.tunnel = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch self.unwrapInboundIn(data) {
        case .data(let frame):
            if case .byteBuffer(let bytes) = frame.data, bytes.readableBytes > 0 {
                self.tunnel?.count(bytes: bytes.readableBytes, fromClient: true)
                self.partner?.partnerWrite(bytes)
            }
            if frame.endStream { self.partner?.partnerWriteEOF() }
        case .headers(let frame):
            // Trailers on a WebSocket stream carry nothing to relay; END_STREAM still half-closes.
            if frame.endStream { self.partner?.partnerWriteEOF() }
        default:
            break
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        self.tunnel?.touch()
        self.partner?.partnerFlush()
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.partner?.partnerCloseFull()
        self.tunnel?.sideClosed()
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

extension HTTP2TunnelGlueHandler: TunnelEndpoint {
    func partnerWrite(_ bytes: ByteBuffer) {
        self.context?.write(self.wrapOutboundOut(.data(.init(data: .byteBuffer(bytes)))), promise: nil)
    }

    func partnerFlush() {
        self.context?.flush()
    }

    func partnerWriteEOF() {
        guard !self.sentEndStream, let context = self.context else { return }
        self.sentEndStream = true
        context.writeAndFlush(
            self.wrapOutboundOut(.data(.init(data: .byteBuffer(ByteBuffer()), endStream: true))),
            promise: nil
        )
    }

    func partnerCloseFull() {
        // Closing a stream channel that has not ended sends RST_STREAM (CANCEL).
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
