import NIOCore
import NIOHTTP1

/// The handler at the end of an upstream channel: one HTTP/1.1 keep-alive connection to a backend.
///
/// It relays response parts to the `ProxyExchange` that currently owns it, and holds back reads
/// while that exchange's client cannot take more (backpressure from a slow reader). Between
/// exchanges it sits in its loop's `UpstreamConnectionPool`.
final class UpstreamConnection: ChannelDuplexHandler, RemovableChannelHandler, DeadlineTracked {
    typealias InboundIn = HTTPClientResponsePart
    typealias OutboundIn = Never
    typealias OutboundOut = ByteBuffer

    /// The backend this connection goes to.
    let backend: Backend
    /// The exchange using the connection; nil while pooled. Changed only by `attach` and `detach`.
    private(set) var exchange: ProxyExchange?
    /// True while the connection waits in the pool.
    var isPooled = false
    /// Deadline-sweeper bookkeeping: the idle expiry while pooled.
    var deadline: NIODeadline = .distantFuture
    var sweeperSlot = -1

    private var context: ChannelHandlerContext?
    /// The context of `UpstreamWriter`, at the head of the pipeline: request bytes written there
    /// skip the response decoder (which would expect `HTTPClientRequestPart`s).
    private var writerContext: ChannelHandlerContext?
    /// The response decoder, told each request's method so it knows a HEAD response has no body.
    private let decoder: HTTPResponseDecoder
    private unowned let pool: UpstreamConnectionPool
    private var readPending = false
    private(set) var isActive = false

    init(backend: Backend, pool: UpstreamConnectionPool, decoder: HTTPResponseDecoder) {
        self.backend = backend
        self.pool = pool
        self.decoder = decoder
    }

    var channel: Channel? { self.context?.channel }

    // MARK: used by the exchange

    /// Links `exchange` to this connection: the response's parts go to it from now on.
    func attach(_ exchange: ProxyExchange) {
        assert(self.exchange == nil, "a connection serves one exchange at a time")
        self.exchange = exchange
    }

    /// Unlinks the exchange: it finished, gave up, or handed the connection to a tunnel or the pool.
    func detach() {
        self.exchange = nil
    }

    /// Writes a serialized request head (`HTTP1HeadWriter`) for a request with `method`.
    func writeHead(_ bytes: ByteBuffer, method: HTTPMethod) {
        self.decoder.write(data: .head(RequestMethodHead.head(for: method)))
        self.writerContext?.write(NIOAny(bytes), promise: nil)
    }

    /// Writes body bytes (already framed).
    func writeBytes(_ bytes: ByteBuffer) {
        self.writerContext?.write(NIOAny(bytes), promise: nil)
    }

    func flush() {
        self.writerContext?.flush()
    }

    var isWritable: Bool { self.context?.channel.isWritable ?? false }

    /// The client side can take data again: pass on a read we held back.
    func resumeReading() {
        if self.readPending, let context = self.context {
            self.readPending = false
            context.read()
        }
    }

    func close() {
        self.context?.close(promise: nil)
    }

    // MARK: ChannelHandler

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        self.writerContext = try? context.pipeline.syncOperations.context(handlerType: UpstreamWriter.self)
        self.isActive = context.channel.isActive
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
        self.writerContext = nil
    }

    func channelActive(context: ChannelHandlerContext) {
        self.isActive = true
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let part = self.unwrapInboundIn(data)
        guard let exchange = self.exchange else {
            // A pooled connection must be silent; anything else means it cannot be reused.
            context.close(promise: nil)
            return
        }
        switch part {
        case .head(let head): exchange.upstreamReceivedHead(head)
        case .body(let body): exchange.upstreamReceivedBody(body)
        case .end(let trailers): exchange.upstreamReceivedEnd(trailers)
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        self.exchange?.upstreamReadComplete()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable {
            self.exchange?.upstreamBecameWritable()
        }
        context.fireChannelWritabilityChanged()
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.isActive = false
        if self.isPooled {
            self.pool.remove(self)
        } else if let exchange = self.exchange {
            self.detach()
            exchange.upstreamClosed(error: nil)
        }
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        if let exchange = self.exchange {
            self.detach()
            exchange.upstreamClosed(error: error)
        }
        context.close(promise: nil)
    }

    func read(context: ChannelHandlerContext) {
        if let exchange = self.exchange, !exchange.downstreamCanTakeResponse {
            self.readPending = true
        } else {
            context.read()
        }
    }

    // MARK: DeadlineTracked

    func deadlinePassed(now: NIODeadline) {
        // Only pooled connections have a deadline: their idle timeout.
        if self.isPooled {
            self.pool.remove(self)
            self.context?.close(promise: nil)
        }
    }
}

/// Marks the head end of an upstream pipeline: `UpstreamConnection` writes request bytes through
/// this handler's context so they go straight to the socket.
final class UpstreamWriter: ChannelOutboundHandler, RemovableChannelHandler {
    typealias OutboundIn = ByteBuffer
}

/// One request head per method, shared, for telling the response decoder what was asked.
enum RequestMethodHead {
    private static let get = HTTPRequestHead(version: .http1_1, method: .GET, uri: "")
    private static let post = HTTPRequestHead(version: .http1_1, method: .POST, uri: "")

    static func head(for method: HTTPMethod) -> HTTPRequestHead {
        switch method {
        case .GET: return self.get
        case .POST: return self.post
        default: return HTTPRequestHead(version: .http1_1, method: method, uri: "")
        }
    }
}
