import NIOCore
import NIOHTTP1

/// The handler at the end of an upstream channel: one HTTP/1.1 keep-alive connection to a backend.
///
/// It relays response parts to the `ProxyExchange` that currently owns it, and holds back reads
/// while that exchange's client cannot take more (backpressure from a slow reader). Between
/// exchanges it sits in its loop's `UpstreamConnectionPool`.
final class UpstreamConnection: ChannelDuplexHandler, RemovableChannelHandler, DeadlineTracked {
    typealias InboundIn = HTTPClientResponsePart
    typealias OutboundIn = HTTPClientRequestPart
    typealias OutboundOut = HTTPClientRequestPart

    /// The backend this connection goes to.
    let backend: Backend
    /// The exchange using the connection; nil while pooled.
    var exchange: ProxyExchange?
    /// True while the connection waits in the pool.
    var isPooled = false
    /// Deadline-sweeper bookkeeping: the idle expiry while pooled.
    var deadline: NIODeadline = .distantFuture
    var sweeperSlot = -1

    private var context: ChannelHandlerContext?
    private unowned let pool: UpstreamConnectionPool
    private var readPending = false
    private(set) var isActive = false

    init(backend: Backend, pool: UpstreamConnectionPool) {
        self.backend = backend
        self.pool = pool
    }

    var channel: Channel? { self.context?.channel }

    // MARK: used by the exchange

    func write(_ part: HTTPClientRequestPart) {
        self.context?.write(self.wrapOutboundOut(part), promise: nil)
    }

    func flush() {
        self.context?.flush()
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
        self.isActive = context.channel.isActive
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
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
            self.exchange = nil
            exchange.upstreamClosed(error: nil)
        }
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        if let exchange = self.exchange {
            self.exchange = nil
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
