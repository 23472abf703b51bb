import NIOCore
import NIOHTTP1

/// Serves small, complete answers computed from the request head and a small body: the admin
/// endpoints and the demo backends. A body over `maxBodyBytes` gets 413 and the connection closes;
/// HEAD gets the head only; `Connection: close` is honoured; an `IdleStateHandler` read timeout
/// ahead of it closes the connection. Not for proxied traffic, which never goes through NIO's
/// response encoder.
package final class SimpleHTTPResponder: ChannelInboundHandler, RemovableChannelHandler {
    package typealias InboundIn = HTTPServerRequestPart
    package typealias OutboundOut = HTTPServerResponsePart

    /// One answer.
    package struct Answer {
        package var status: HTTPResponseStatus = .ok
        package var contentType: String
        package var body: [UInt8]
        /// Further response headers (`WWW-Authenticate`...).
        package var headers: [(String, String)] = []

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

    /// The largest request body read; a larger one is refused.
    package static let maxBodyBytes = 16 * 1024

    private let answer: (HTTPRequestHead, ByteBuffer) -> Answer
    /// Whether the body is kept for the answer (else read and dropped, whatever its size).
    private let readsBody: Bool
    private var head: HTTPRequestHead?
    private var body = ByteBuffer()
    private var refused = false

    /// Answers from the head and the body.
    package init(answerWithBody answer: @escaping (HTTPRequestHead, ByteBuffer) -> Answer) {
        self.answer = answer
        self.readsBody = true
    }

    /// Answers from the head alone (a body is read and ignored).
    package init(answer: @escaping (HTTPRequestHead) -> Answer) {
        self.answer = { head, _ in answer(head) }
        self.readsBody = false
    }

    package func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !self.refused else { return }
        switch self.unwrapInboundIn(data) {
        case .head(let head):
            self.head = head
            self.body.clear()
        case .body(let chunk):
            guard self.readsBody else { return }
            guard self.body.readableBytes + chunk.readableBytes <= Self.maxBodyBytes else {
                self.refused = true
                let text = "413 Content Too Large: bodies here are at most \(Self.maxBodyBytes) bytes\n"
                self.respond(
                    context: context,
                    head: HTTPRequestHead(version: .http1_1, method: .POST, uri: "/", headers: ["connection": "close"]),
                    answer: Answer(status: .payloadTooLarge, text)
                )
                return
            }
            var chunk = chunk
            self.body.writeBuffer(&chunk)
        case .end:
            guard let head = self.head else { return }
            self.head = nil
            self.respond(context: context, head: head, answer: self.answer(head, self.body))
        }
    }

    package func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is IdleStateHandler.IdleStateEvent {
            context.close(promise: nil)
        } else {
            context.fireUserInboundEventTriggered(event)
        }
    }

    private func respond(context: ChannelHandlerContext, head: HTTPRequestHead, answer: Answer) {
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: answer.contentType)
        headers.add(name: "Content-Length", value: String(answer.body.count))
        headers.add(name: "Cache-Control", value: "no-store")
        for (name, value) in answer.headers { headers.add(name: name, value: value) }
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

extension HTTPRequestHead {
    /// The path of the request target, without the query.
    package var pathWithoutQuery: String {
        self.uri.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init)
            ?? self.uri
    }
}
