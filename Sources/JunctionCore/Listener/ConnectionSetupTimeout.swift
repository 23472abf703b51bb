import NIOCore

/// Closes a client connection that has not got as far as HTTP within `client_header_timeout`: a
/// PROXY protocol header, a TLS handshake whose ALPN picks the protocol, or the h2c preface that
/// never arrives. Setting up HTTP/1.1 or HTTP/2 removes it (`remove(from:)`); from then on the HTTP
/// handlers own the timeouts. Plain and TLS HTTP/1.1 listeners without the PROXY protocol do not
/// get one: their `HTTP1ServerHandler` is there from the first byte.
final class ConnectionSetupTimeout: ChannelInboundHandler, RemovableChannelHandler, DeadlineTracked {
    typealias InboundIn = NIOAny

    private let sweeper: DeadlineSweeper
    private let timeout: TimeAmount
    private var context: ChannelHandlerContext?
    var deadline: NIODeadline = .distantFuture
    var sweeperSlot = -1

    init(sweeper: DeadlineSweeper, timeout: TimeAmount) {
        self.sweeper = sweeper
        self.timeout = timeout
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        self.deadline = .now() + self.timeout
        self.sweeper.register(self)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.sweeper.unregister(self)
        self.context = nil
    }

    func deadlinePassed(now: NIODeadline) {
        self.sweeper.unregister(self)
        self.context?.close(promise: nil)
    }

    /// HTTP is set up on this pipeline: the timeout, if there is one, is no longer needed.
    static func remove(from pipeline: ChannelPipeline.SynchronousOperations) {
        guard let context = try? pipeline.context(handlerType: ConnectionSetupTimeout.self) else { return }
        pipeline.removeHandler(context: context, promise: nil)
    }
}
