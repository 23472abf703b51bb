import NIOCore
import NIOHTTP1
import NIOTLS

/// Chooses HTTP/1.1 or HTTP/2 for a new client connection and installs that pipeline.
enum ProtocolSelector {
    /// After TLS: ALPN decides (`h2` or `http/1.1`; no ALPN at all means HTTP/1.1).
    static func addALPN(to channel: Channel, loop: LoopContext, listener: ListenerIdentity) throws {
        let handler = ApplicationProtocolNegotiationHandler { result, channel in
            channel.eventLoop.makeCompletedFuture {
                if case .negotiated("h2") = result {
                    try HTTP2Pipeline.configure(channel: channel, loop: loop, listener: listener)
                } else {
                    try HTTP1Pipeline.configure(channel: channel, loop: loop, listener: listener)
                }
            }
        }
        try channel.pipeline.syncOperations.addHandler(handler)
    }

    /// Plain listener with `http2: true`: a client that opens with the HTTP/2 connection preface
    /// (prior knowledge, h2c) gets HTTP/2, any other gets HTTP/1.1.
    static func addPrefaceSniffer(to channel: Channel, loop: LoopContext, listener: ListenerIdentity) throws {
        try channel.pipeline.syncOperations.addHandler(
            ByteToMessageHandler(HTTP2PrefaceSniffer(loop: loop, listener: listener))
        )
    }
}

/// Looks at the first bytes of a plain connection for the HTTP/2 preface, installs the matching
/// pipeline behind itself and steps aside, handing over the bytes it held.
final class HTTP2PrefaceSniffer: ByteToMessageDecoder {
    typealias InboundOut = ByteBuffer

    /// RFC 9113 3.4.
    static let preface = Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8)

    private let loop: LoopContext
    private let listener: ListenerIdentity
    private var decided = false

    init(loop: LoopContext, listener: ListenerIdentity) {
        self.loop = loop
        self.listener = listener
    }

    func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        guard !self.decided else { return .needMoreData }
        let available = min(buffer.readableBytes, Self.preface.count)
        let matches = buffer.readableBytesView.prefix(available).elementsEqual(Self.preface.prefix(available))
        guard !matches || available == Self.preface.count else { return .needMoreData }
        self.decided = true
        let channel = context.channel
        if matches {
            try HTTP2Pipeline.configure(channel: channel, loop: self.loop, listener: self.listener)
        } else {
            try HTTP1Pipeline.configure(channel: channel, loop: self.loop, listener: self.listener)
        }
        // Leaving forwards the bytes held so far to the pipeline just installed.
        context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
        return .needMoreData
    }

    /// Called on removal (and at EOF): the bytes held go to the pipeline installed behind.
    func decodeLast(context: ChannelHandlerContext, buffer: inout ByteBuffer, seenEOF: Bool) throws -> DecodingState {
        if self.decided, buffer.readableBytes > 0 {
            context.fireChannelRead(self.wrapInboundOut(buffer))
            buffer.clear()
        } else if seenEOF {
            context.close(promise: nil)
        }
        return .needMoreData
    }
}
