import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization

/// A real HTTP/1.1 backend on 127.0.0.1 for the proxy to talk to, with endpoints that let tests
/// see what arrived and make the proxy stream:
///
/// - `GET /echo` (and any unknown path): JSON with the backend's name, method, target, headers and
///   the body's length and first 64 KiB.
/// - `POST|PUT /sink`: reads the body, answers `{"bytes": N}`.
/// - `GET /source?bytes=N`: streams N bytes as fast as the proxy takes them (with backpressure).
/// - `GET /slow?ms=N`: answers after N milliseconds.
/// - `GET /health`: `ok`, or the status a test set in `stats.healthStatus`.
/// - `GET /trailers`: a chunked body followed by an `X-Checksum` trailer field.
/// - `GET /page`: an HTML page that opens a WebSocket to `/websocket` and runs the DDP handshake.
/// - `GET /json?items=N[&chunked=1]`: `jsonBody(items:)` with an ETag and Accept-Ranges, with a
///   Content-Length or in 3000-byte parts without one.
/// - `GET /precompressed`: `precompressedBody` labelled `Content-Encoding: gzip`.
/// - `GET /events`: a `text/event-stream` body.
///
/// Any of those answered with `send` (the JSON ones, `/health`, `/events`) given `?powered=1` also
/// carries `X-Powered-By: Express` twice and `Strict-Transport-Security: max-age=1`, as a Node.js
/// backend would, for the `response_headers` tests.
final class HTTPTestBackend: Sendable {
    let name: String
    let host: String
    let port: Int
    private let channel: Channel
    private let group: MultiThreadedEventLoopGroup
    let stats: Stats

    /// Counters the tests read.
    final class Stats: Sendable {
        let connections = Atomic<Int>(0)
        let requests = Atomic<Int>(0)
        let sourceBytesWritten = Atomic<Int>(0)
        /// `/headfirst` bodies sent (each after its head and a pause).
        let headFirstBodies = Atomic<Int>(0)
        let openConnections = Atomic<Int>(0)
        /// What `/health` answers (tests flip it to make the backend fail its checks).
        let healthStatus = Atomic<Int>(200)
        /// Requests to anything but `/health`.
        let proxiedRequests = Atomic<Int>(0)
        /// The bytes received on every connection, as they came (the first 1 MiB).
        let received = Mutex<[UInt8]>([])

        /// What arrived so far, as text.
        var receivedText: String { String(decoding: self.received.withLock { $0 }, as: UTF8.self) }
    }

    /// Listens on `host` (127.0.0.1, or another loopback address) and `port` (0: any free one).
    init(name: String, host: String = "127.0.0.1", port: Int = 0) throws {
        self.name = name
        let stats = Stats()
        self.stats = stats
        self.group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let name = self.name
        self.channel = try ServerBootstrap(group: self.group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                stats.connections.add(1, ordering: .relaxed)
                stats.openConnections.add(1, ordering: .relaxed)
                channel.closeFuture.whenComplete { _ in stats.openConnections.subtract(1, ordering: .relaxed) }
                return channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(RawTap(stats: stats))
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    try channel.pipeline.syncOperations.addHandler(BackendHandler(name: name, stats: stats))
                }
            }
            .bind(host: host, port: port).wait()
        self.port = self.channel.localAddress!.port!
        self.host = host
    }

    var address: String { "\(self.host):\(self.port)" }

    /// What `/json?items=N` serves: deterministic JSON of `items` records (about 60 bytes each).
    static func jsonBody(items: Int) -> String {
        "[" + (0..<items).map { #"{"id":\#($0),"msg":"hello from the monolith","ok":true}"# }.joined(separator: ",")
            + "]"
    }

    /// What `/precompressed` serves: 4 KiB that stand for an already gzipped body.
    static let precompressedBody: [UInt8] = (0..<4096).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) }

    /// Stops listening and closes every connection (a killed backend).
    func stop() {
        try? self.channel.close().wait()
        try? self.group.syncShutdownGracefully()
    }
}

/// Serves the endpoints of `HTTPTestBackend` on one connection.
private final class BackendHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let name: String
    private let stats: HTTPTestBackend.Stats
    private var head: HTTPRequestHead?
    private var bodyBytes = 0
    /// The first 64 KiB of the request body, which `/echo` sends back.
    private var bodyPrefix = ByteBuffer()
    private var sourceRemaining = 0
    /// `?powered=1` on the request being answered.
    private var powered = false
    private static let chunk = ByteBuffer(repeating: UInt8(ascii: "x"), count: 64 * 1024)

    /// A page that opens a raw-DDP WebSocket to the same origin and puts the outcome in its title.
    static let page = """
        <!doctype html><html><head><title>loading</title></head><body><script>
        const ws = new WebSocket(`wss://${location.host}/websocket`);
        ws.onmessage = (event) => {
          const message = JSON.parse(event.data);
          if (message.msg === "server_id") ws.send(JSON.stringify({msg: "connect", version: "1", support: ["1"]}));
          if (message.msg === "connected") document.title = "DDP connected " + message.session;
        };
        ws.onerror = () => { document.title = "DDP error"; };
        </script></body></html>
        """

    static let precompressed = ByteBuffer(bytes: HTTPTestBackend.precompressedBody)

    init(name: String, stats: HTTPTestBackend.Stats) {
        self.name = name
        self.stats = stats
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch self.unwrapInboundIn(data) {
        case .head(let head):
            self.head = head
            self.bodyBytes = 0
            self.bodyPrefix.clear()
            self.stats.requests.add(1, ordering: .relaxed)
        case .body(var body):
            self.bodyBytes += body.readableBytes
            if let kept = body.readSlice(length: min(body.readableBytes, 65536 - self.bodyPrefix.readableBytes)) {
                self.bodyPrefix.writeImmutableBuffer(kept)
            }
        case .end:
            guard let head = self.head else { return }
            self.respond(to: head, context: context)
        }
    }

    private func respond(to head: HTTPRequestHead, context: ChannelHandlerContext) {
        let components = URLComponents(string: head.uri)
        let path = components?.path ?? head.uri
        if path != "/health" { self.stats.proxiedRequests.add(1, ordering: .relaxed) }
        let query = Dictionary(
            (components?.queryItems ?? []).map { ($0.name, $0.value ?? "") },
            uniquingKeysWith: { $1 }
        )
        self.powered = query["powered"] == "1"
        switch path {
        case "/sink":
            self.sendJSON(["backend": self.name, "bytes": self.bodyBytes], context: context)
        case "/source":
            self.sourceRemaining = Int(query["bytes"] ?? "0") ?? 0
            var headers = HTTPHeaders()
            headers.add(name: "Content-Length", value: String(self.sourceRemaining))
            headers.add(name: "X-Backend", value: self.name)
            context.write(
                self.wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: .ok, headers: headers))),
                promise: nil
            )
            self.pump(context: context)
        case "/slow":
            let delay = Int64(query["ms"] ?? "0") ?? 0
            let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
            context.eventLoop.scheduleTask(in: .milliseconds(delay)) {
                let (handler, context) = loopBound.value
                handler.sendJSON(["backend": handler.name, "slept_ms": delay], context: context)
            }
        case "/headfirst":
            // The head alone, flushed; the body `ms` later (a response that starts before its body
            // exists, as a long poll or an event stream does).
            let delay = Int64(query["ms"] ?? "0") ?? 0
            var headers = HTTPHeaders()
            headers.add(name: "Content-Length", value: "5")
            context.writeAndFlush(
                self.wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: .ok, headers: headers))),
                promise: nil
            )
            let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
            context.eventLoop.scheduleTask(in: .milliseconds(delay)) {
                let (handler, context) = loopBound.value
                handler.stats.headFirstBodies.add(1, ordering: .relaxed)
                context.write(handler.wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: "later")))), promise: nil)
                context.writeAndFlush(handler.wrapOutboundOut(.end(nil)), promise: nil)
            }
        case "/health":
            let code = self.stats.healthStatus.load(ordering: .relaxed)
            self.send(
                status: HTTPResponseStatus(statusCode: code),
                body: code == 200 ? "ok" : "not healthy",
                contentType: "text/plain",
                context: context
            )
        case "/trailers":
            // A chunked body with trailer fields (NIO frames it chunked: no Content-Length).
            var headers = HTTPHeaders()
            headers.add(name: "Trailer", value: "X-Checksum")
            context.write(
                self.wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: .ok, headers: headers))),
                promise: nil
            )
            context.write(self.wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: "hello trailers")))), promise: nil)
            context.writeAndFlush(self.wrapOutboundOut(.end(HTTPHeaders([("X-Checksum", "abc123")]))), promise: nil)
        case "/page":
            self.send(status: .ok, body: Self.page, contentType: "text/html; charset=utf-8", context: context)
        case "/json":
            // `items` records of JSON; `chunked=1` sends it in parts without a Content-Length.
            let body = HTTPTestBackend.jsonBody(items: Int(query["items"] ?? "1") ?? 1)
            var headers = HTTPHeaders()
            headers.add(name: "Content-Type", value: "application/json; charset=utf-8")
            headers.add(name: "ETag", value: "\"v1\"")
            headers.add(name: "Accept-Ranges", value: "bytes")
            if query["chunked"] != "1" { headers.add(name: "Content-Length", value: String(body.utf8.count)) }
            context.write(
                self.wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: .ok, headers: headers))),
                promise: nil
            )
            var buffer = ByteBuffer(string: body)
            while buffer.readableBytes > 0 {
                let part = buffer.readSlice(length: min(buffer.readableBytes, 3000))!
                context.writeAndFlush(self.wrapOutboundOut(.body(.byteBuffer(part))), promise: nil)
            }
            context.writeAndFlush(self.wrapOutboundOut(.end(nil)), promise: nil)
        case "/precompressed":
            // Bytes the backend says are gzip already: they must pass through untouched.
            var headers = HTTPHeaders()
            headers.add(name: "Content-Type", value: "application/json")
            headers.add(name: "Content-Encoding", value: "gzip")
            headers.add(name: "Content-Length", value: String(Self.precompressed.readableBytes))
            context.write(
                self.wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: .ok, headers: headers))),
                promise: nil
            )
            context.write(self.wrapOutboundOut(.body(.byteBuffer(Self.precompressed))), promise: nil)
            context.writeAndFlush(self.wrapOutboundOut(.end(nil)), promise: nil)
        case "/events":
            self.send(
                status: .ok,
                body: String(repeating: "data: tick\n\n", count: 400),
                contentType: "text/event-stream",
                context: context
            )
        default:
            let headers = head.headers.map { [$0.name, $0.value] }
            self.sendJSON(
                [
                    "backend": self.name, "method": head.method.rawValue, "target": head.uri, "headers": headers,
                    "body_bytes": self.bodyBytes, "body": String(buffer: self.bodyPrefix),
                ],
                context: context
            )
        }
    }

    /// Writes source bytes while the channel is writable; resumes on writability.
    private func pump(context: ChannelHandlerContext) {
        while self.sourceRemaining > 0 && context.channel.isWritable {
            let size = min(self.sourceRemaining, Self.chunk.readableBytes)
            self.sourceRemaining -= size
            self.stats.sourceBytesWritten.add(size, ordering: .relaxed)
            context.write(
                self.wrapOutboundOut(.body(.byteBuffer(Self.chunk.getSlice(at: 0, length: size)!))),
                promise: nil
            )
            if self.sourceRemaining == 0 {
                context.writeAndFlush(self.wrapOutboundOut(.end(nil)), promise: nil)
                return
            }
        }
        context.flush()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable && self.sourceRemaining > 0 {
            self.pump(context: context)
        }
        context.fireChannelWritabilityChanged()
    }

    private func sendJSON(_ object: [String: Any], context: ChannelHandlerContext) {
        let data = (try? JSONSerialization.data(withJSONObject: object)) ?? Data()
        self.send(
            status: .ok,
            body: String(decoding: data, as: UTF8.self),
            contentType: "application/json",
            context: context
        )
    }

    private func send(status: HTTPResponseStatus, body: String, contentType: String, context: ChannelHandlerContext) {
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: contentType)
        headers.add(name: "Content-Length", value: String(body.utf8.count))
        headers.add(name: "X-Backend", value: self.name)
        if self.powered {
            headers.add(name: "X-Powered-By", value: "Express")
            headers.add(name: "strict-transport-security", value: "max-age=1")
            headers.add(name: "x-powered-by", value: "Express again")
        }
        context.write(
            self.wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: status, headers: headers))),
            promise: nil
        )
        context.write(self.wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: body)))), promise: nil)
        context.writeAndFlush(self.wrapOutboundOut(.end(nil)), promise: nil)
    }
}

/// Keeps the bytes a backend connection receives, before any parsing, for tests that check what
/// the proxy sent byte for byte.
private final class RawTap: ChannelInboundHandler, Sendable {
    typealias InboundIn = ByteBuffer

    private let stats: HTTPTestBackend.Stats

    init(stats: HTTPTestBackend.Stats) {
        self.stats = stats
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let bytes = self.unwrapInboundIn(data)
        self.stats.received.withLock { received in
            received += bytes.readableBytesView.prefix(max(0, (1 << 20) - received.count))
        }
        context.fireChannelRead(data)
    }
}
