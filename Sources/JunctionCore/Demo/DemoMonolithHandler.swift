import NIOCore
import NIOHTTP1

/// The demo's monolith: the page at `/`, `/api/info` (what arrived through Junction) and the health
/// paths Rocket.Chat's monolith has (`/health`, `/livez`, `/readyz`).
final class DemoMonolithHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let page: String
    private var head: HTTPRequestHead?

    init(page: String) {
        self.page = page
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch self.unwrapInboundIn(data) {
        case .head(let head):
            self.head = head
        case .body:
            break
        case .end:
            guard let head = self.head else { return }
            self.head = nil
            self.respond(to: head, context: context)
        }
    }

    private func respond(to head: HTTPRequestHead, context: ChannelHandlerContext) {
        let path = head.uri.split(separator: "?", maxSplits: 1).first.map(String.init) ?? head.uri
        switch path {
        case "/", "/index.html":
            DemoResponse.write(
                self.page,
                contentType: "text/html; charset=utf-8",
                keepAlive: head.isKeepAlive,
                context: context
            )
        case "/api/info":
            // What Junction forwarded: the client's Host and the X-Forwarded-* it added.
            let fields = ["host", "x-forwarded-for", "x-forwarded-proto", "x-real-ip", "x-request-id"].map {
                name in
                "\"\(name)\":\"\(head.headers.first(name: name).map(DemoDDPSession.jsonEscaped) ?? "")\""
            }
            DemoResponse.write(
                "{\"backend\":\"monolith\",\"target\":\"\(DemoDDPSession.jsonEscaped(head.uri))\","
                    + fields.joined(separator: ",") + "}",
                contentType: "application/json",
                keepAlive: head.isKeepAlive,
                context: context
            )
        case "/health", "/livez", "/readyz":
            DemoResponse.write("ok", contentType: "text/plain", keepAlive: head.isKeepAlive, context: context)
        default:
            DemoResponse.write(
                "not found\n",
                status: .notFound,
                contentType: "text/plain",
                keepAlive: head.isKeepAlive,
                context: context
            )
        }
    }
}
