import NIOCore
import NIOHTTP1

/// Serves small, complete answers computed from the request head alone: the admin endpoints and
/// the demo backends. Request bodies are ignored; HEAD gets the head only; `Connection: close` is
/// honoured. Not for proxied traffic, which never goes through NIO's response encoder.
package final class SimpleHTTPResponder: ChannelInboundHandler, RemovableChannelHandler {
    package typealias InboundIn = HTTPServerRequestPart
    package typealias OutboundOut = HTTPServerResponsePart

    /// One answer.
    package struct Answer {
        package var status: HTTPResponseStatus = .ok
        package var contentType: String
        package var body: [UInt8]

        package init(status: HTTPResponseStatus = .ok, contentType: String, body: [UInt8]) {
            self.status = status
            self.contentType = contentType
            self.body = body
        }

        package init(
            status: HTTPResponseStatus = .ok,
            contentType: String = "text/plain; charset=utf-8",
            _ text: String
        ) {
            self.init(status: status, contentType: contentType, body: Array(text.utf8))
        }
    }

    private let answer: (HTTPRequestHead) -> Answer
    private var head: HTTPRequestHead?

    package init(answer: @escaping (HTTPRequestHead) -> Answer) {
        self.answer = answer
    }

    package func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch self.unwrapInboundIn(data) {
        case .head(let head):
            self.head = head
        case .body:
            break
        case .end:
            guard let head = self.head else { return }
            self.head = nil
            let answer = self.answer(head)
            var headers = HTTPHeaders()
            headers.add(name: "Content-Type", value: answer.contentType)
            headers.add(name: "Content-Length", value: String(answer.body.count))
            headers.add(name: "Cache-Control", value: "no-store")
            if !head.isKeepAlive { headers.add(name: "Connection", value: "close") }
            context.write(
                self.wrapOutboundOut(
                    .head(HTTPResponseHead(version: head.version, status: answer.status, headers: headers))
                ),
                promise: nil
            )
            if head.method != .HEAD {
                context.write(self.wrapOutboundOut(.body(.byteBuffer(ByteBuffer(bytes: answer.body)))), promise: nil)
            }
            let written = context.writeAndFlush(self.wrapOutboundOut(.end(nil)))
            if !head.isKeepAlive {
                written.assumeIsolated().whenComplete { _ in context.close(promise: nil) }
            }
        }
    }
}

extension HTTPRequestHead {
    /// The path of the request target, without the query.
    package var pathWithoutQuery: String {
        self.uri.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init)
            ?? self.uri
    }
}
