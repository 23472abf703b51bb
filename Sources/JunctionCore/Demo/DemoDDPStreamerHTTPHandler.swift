import NIOCore
import NIOHTTP1

/// The plain-HTTP side of a demo ddp-streamer (requests that are not WebSocket upgrades): `/health`
/// and SockJS's `/sockjs/info`, as ddp-streamer answers them; anything else needs a WebSocket.
final class DemoDDPStreamerHTTPHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private var head: HTTPRequestHead?

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch self.unwrapInboundIn(data) {
        case .head(let head):
            self.head = head
        case .body:
            break
        case .end:
            guard let head = self.head else { return }
            self.head = nil
            let keepAlive = head.isKeepAlive
            let path = head.uri.split(separator: "?", maxSplits: 1).first.map(String.init) ?? head.uri
            if path == "/health" {
                DemoResponse.write("ok", contentType: "text/plain", keepAlive: keepAlive, context: context)
            } else if path.hasSuffix("/info") {
                DemoResponse.write(
                    #"{"websocket":true,"origins":["*:*"],"cookie_needed":false,"entropy":42}"#,
                    contentType: "application/json",
                    keepAlive: keepAlive,
                    context: context
                )
            } else {
                DemoResponse.write(
                    "this ddp-streamer speaks WebSocket only\n",
                    status: .upgradeRequired,
                    contentType: "text/plain",
                    keepAlive: keepAlive,
                    context: context
                )
            }
        }
    }
}
