import NIOCore
import NIOHTTP2

/// The connection-level end of an HTTP/2 client connection, behind swift-nio-http2's codec and
/// stream multiplexer: it tells the connection's owner (`ClientConnection`) when streams open and
/// close, when a PING is acknowledged, when the client sends GOAWAY and when the codec sent a
/// GOAWAY for a connection error, and it writes the GOAWAY and PING frames the owner decides on.
final class HTTP2ConnectionHandler: ChannelInboundHandler, NIOHTTP2FrameDelegate {
    typealias InboundIn = HTTP2Frame
    typealias OutboundOut = HTTP2Frame

    private var connection: ClientConnection?
    private var context: ChannelHandlerContext?

    init(connection: ClientConnection) {
        self.connection = connection
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
        self.connection = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        // Stream 0's frames: the codec answered PINGs and SETTINGS already.
        let frame = self.unwrapInboundIn(data)
        switch frame.payload {
        case .ping(let data, ack: true):
            self.connection?.http2PingAcked(data.integer)
        case .goAway:
            self.connection?.http2GoAwayReceived()
        default:
            break
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        switch event {
        case let created as NIOHTTP2StreamCreatedEvent:
            self.connection?.http2StreamOpened(Int(created.streamID))
        case is StreamClosedEvent:
            self.connection?.http2StreamClosed()
        default:
            context.fireUserInboundEventTriggered(event)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        // Stream errors were answered with RST_STREAM and connection errors with GOAWAY (seen in
        // `wroteFrame`); neither needs more here.
    }

    /// Writes a GOAWAY (`lastStreamID` nil: the highest id, the graceful first step) and, when
    /// `ping` is given, a PING whose ack tells that the client has seen it.
    func sendGoAway(lastStreamID: Int?, ping: UInt64?) {
        guard let context = self.context else { return }
        let last = lastStreamID.map { HTTP2StreamID($0) } ?? .maxID
        context.write(
            self.wrapOutboundOut(
                HTTP2Frame(
                    streamID: .rootStream,
                    payload: .goAway(lastStreamID: last, errorCode: .noError, opaqueData: nil)
                )
            ),
            promise: nil
        )
        if let ping {
            context.write(
                self.wrapOutboundOut(
                    HTTP2Frame(streamID: .rootStream, payload: .ping(HTTP2PingData(withInteger: ping), ack: false))
                ),
                promise: nil
            )
        }
        context.flush()
    }

    // MARK: NIOHTTP2FrameDelegate

    /// Called by the codec for every frame it writes, in the middle of writing it: what follows
    /// waits for the end of the call.
    func wroteFrame(_ frame: HTTP2Frame) {
        guard case .goAway(_, let code, _) = frame.payload, code != .noError, let context = self.context else { return }
        let connection = self.connection
        context.eventLoop.assumeIsolated().execute { connection?.http2ConnectionErrorSent() }
    }
}
