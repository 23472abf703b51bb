import JunctionACME
import JunctionCore
import NIOHTTP1

/// What the demo backends answer to plain HTTP requests.
enum DemoAnswers {
    /// The monolith: the page at `/`, `/api/info` (what arrived through Junction) and the health
    /// paths Rocket.Chat's monolith has (`/health`, `/livez`, `/readyz`).
    static func monolith(_ head: HTTPRequestHead, page: String) -> SimpleHTTPResponder.Answer {
        switch head.pathWithoutQuery {
        case "/", "/index.html":
            return .init(contentType: "text/html; charset=utf-8", page)
        case "/api/info":
            // What Junction forwarded: the client's Host and the X-Forwarded-* it added.
            let fields = ["host", "x-forwarded-for", "x-forwarded-proto", "x-real-ip", "x-request-id"].map { name in
                "\"\(name)\":\((head.headers.first(name: name) ?? "").jsonLiteral)"
            }
            return .init(
                contentType: "application/json",
                "{\"backend\":\"monolith\",\"target\":\(head.uri.jsonLiteral)," + fields.joined(separator: ",") + "}"
            )
        case "/health", "/livez", "/readyz":
            return .init("ok")
        default:
            return .init(status: .notFound, "not found\n")
        }
    }

    /// A ddp-streamer's plain-HTTP side (requests that are not WebSocket upgrades): `/health` and
    /// SockJS's `/sockjs/info`, as ddp-streamer answers them; anything else needs a WebSocket.
    static func ddpStreamer(_ head: HTTPRequestHead) -> SimpleHTTPResponder.Answer {
        let path = head.pathWithoutQuery
        if path == "/health" { return .init("ok") }
        if path.hasSuffix("/info") {
            return .init(
                contentType: "application/json",
                #"{"websocket":true,"origins":["*:*"],"cookie_needed":false,"entropy":42}"#
            )
        }
        return .init(status: .upgradeRequired, "this ddp-streamer speaks WebSocket only\n")
    }
}
