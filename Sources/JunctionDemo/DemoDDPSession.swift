import Foundation
import JunctionACME
import JunctionCore
import NIOCore
import NIOWebSocket

/// One DDP session on a demo ddp-streamer: enough of the protocol for the demo page and for a
/// Meteor-style client to connect (`connect` → `connected`, `ping` → `pong`, `sub` → `ready`, any
/// `method` → a `result` naming the backend). With `sockJS` the messages are framed as SockJS does
/// (`o`, then `a[...]` arrays), as ddp-streamer does on every path but `/websocket`.
final class DemoDDPSession: ChannelInboundHandler {
    typealias InboundIn = WebSocketFrame
    typealias OutboundOut = WebSocketFrame

    private let backend: String
    private let sockJS: Bool
    private var closing = false

    init(backend: String, sockJS: Bool) {
        self.backend = backend
        self.sockJS = sockJS
    }

    func handlerAdded(context: ChannelHandlerContext) {
        if self.sockJS { self.sendText("o", context: context) }
        self.send(#"{"server_id":"0"}"#, context: context)
        context.flush()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = self.unwrapInboundIn(data)
        switch frame.opcode {
        case .text:
            let text = String(buffer: frame.unmaskedData)
            for message in self.messages(in: text) {
                self.handle(message, context: context)
            }
            context.flush()
        case .ping:
            let pong = WebSocketFrame(fin: true, opcode: .pong, data: frame.unmaskedData)
            context.writeAndFlush(self.wrapOutboundOut(pong), promise: nil)
        case .connectionClose:
            guard !self.closing else {
                context.close(promise: nil)
                return
            }
            self.closing = true
            // Echo the status code back, then close (RFC 6455 5.5.1).
            var code = frame.unmaskedData
            let echo = code.readSlice(length: min(2, code.readableBytes)) ?? ByteBuffer()
            let close = WebSocketFrame(fin: true, opcode: .connectionClose, data: echo)
            context.writeAndFlush(self.wrapOutboundOut(close)).assumeIsolated().whenComplete { _ in
                context.close(promise: nil)
            }
        default:
            break
        }
    }

    /// The DDP messages in one text frame: the frame itself, or a SockJS array of them.
    private func messages(in text: String) -> [[String: Any]] {
        let payloads: [String]
        if self.sockJS {
            payloads = (try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [String] ?? []
        } else {
            payloads = [text]
        }
        return payloads.compactMap { (try? JSONSerialization.jsonObject(with: Data($0.utf8))) as? [String: Any] }
    }

    private func handle(_ message: [String: Any], context: ChannelHandlerContext) {
        let id = (message["id"] as? String)?.jsonLiteral
        switch message["msg"] as? String {
        case "connect":
            let session = "\(self.backend)-\(UInt32.random(in: 0...UInt32.max))"
            self.send(#"{"msg":"connected","session":"\#(session)"}"#, context: context)
        case "ping":
            self.send(id.map { #"{"msg":"pong","id":\#($0)}"# } ?? #"{"msg":"pong"}"#, context: context)
        case "sub":
            guard let id else { return }
            self.send(#"{"msg":"ready","subs":[\#(id)]}"#, context: context)
        case "method":
            guard let id else { return }
            let method = (message["method"] as? String ?? "").jsonLiteral
            self.send(
                #"{"msg":"result","id":\#(id),"result":{"backend":\#(self.backend.jsonLiteral),"method":\#(method)}}"#,
                context: context
            )
            self.send(#"{"msg":"updated","methods":[\#(id)]}"#, context: context)
        default:
            break
        }
    }

    private func send(_ json: String, context: ChannelHandlerContext) {
        // SockJS wraps each message in a JSON array of strings: a["<escaped json>"].
        self.sendText(self.sockJS ? "a[\(json.jsonLiteral)]" : json, context: context)
    }

    private func sendText(_ text: String, context: ChannelHandlerContext) {
        let frame = WebSocketFrame(fin: true, opcode: .text, data: ByteBuffer(string: text))
        context.write(self.wrapOutboundOut(frame), promise: nil)
    }
}
