import NIOCore
import NIOHTTP1

/// The handler at the end of an upstream channel: one HTTP/1.1 keep-alive connection to a backend.
///
/// It reports response parts to the request that currently uses it (its `ResponseSink`) and holds
/// reads back while that request's client cannot take more (backpressure from a slow reader).
/// Between requests it waits in its loop's `UpstreamConnectionPool`, and must stay silent.
final class UpstreamConnection: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPClientResponsePart
    typealias OutboundIn = Never
    typealias OutboundOut = ByteBuffer

    /// The backend this connection goes to.
    let backend: Backend
    /// The request using the connection; nil while pooled. Changed only by `attach` and `detach`.
    ///
    /// invariant: not retained, because the request holds this connection (a retain would make a
    /// cycle). A request detaches before it lets go of the connection (to the pool, to a tunnel,
    /// closed) and in its `deinit`, so the reference is never read after the request is gone.
    /// `ExchangeTests.requestGoneBeforeItsConnection` breaks this under AddressSanitizer if it fails.
    private unowned(unsafe) var sink: (any ResponseSink)?
    /// True while the connection waits in the pool.
    var isPooled = false
    /// When a pooled connection is closed for idleness.
    var idleUntil: NIODeadline = .distantFuture

    private var context: ChannelHandlerContext?
    /// The context of `UpstreamWriter`, at the head of the pipeline: request bytes written there
    /// skip the response decoder (which would expect `HTTPClientRequestPart`s).
    private var writerContext: ChannelHandlerContext?
    /// The response decoder, told each request's method so it knows a HEAD response has no body.
    private let decoder: HTTPResponseDecoder
    /// The client cannot take more of the response: reads wait for `resumeReads`.
    private var readsPaused = false
    private var readPending = false
    private(set) var isActive = false

    init(backend: Backend, decoder: HTTPResponseDecoder) {
        self.backend = backend
        self.decoder = decoder
    }

    var channel: Channel? { self.context?.channel }

    // MARK: used by the request

    /// Reports to `sink` from now on.
    func attach(_ sink: any ResponseSink) {
        assert(self.sink == nil, "a connection serves one request at a time")
        self.sink = sink
        self.readsPaused = false
    }

    /// Stops reporting: the request finished, gave up, or handed the connection on.
    func detach() {
        self.sink = nil
        self.resumeReads()
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

    /// The client cannot take more: hold reads back.
    func pauseReads() {
        self.readsPaused = true
    }

    /// The client can take more again: pass on a read held back.
    func resumeReads() {
        self.readsPaused = false
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
        guard let sink = self.sink else {
            // A pooled connection must be silent; anything else means it cannot be reused.
            context.close(promise: nil)
            return
        }
        sink.upstreamReceived(self.unwrapInboundIn(data))
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        if let sink = self.sink { sink.upstreamReadComplete() }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable, let sink = self.sink {
            sink.upstreamWritable()
        }
        context.fireChannelWritabilityChanged()
    }

    func channelInactive(context: ChannelHandlerContext) {
        // A pooled connection leaves the pool when it is next looked at.
        self.isActive = false
        if let sink = self.sink {
            self.sink = nil
            sink.upstreamClosed(error: nil)
        }
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        if let sink = self.sink {
            self.sink = nil
            sink.upstreamClosed(error: error)
        }
        context.close(promise: nil)
    }

    func read(context: ChannelHandlerContext) {
        if self.readsPaused && self.sink != nil {
            self.readPending = true
        } else {
            context.read()
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
