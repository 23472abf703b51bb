import NIOCore
import NIOHTTP2

/// Closes a client connection that has not got as far as HTTP within `client_header_timeout`: a
/// PROXY protocol header, a TLS handshake whose ALPN picks the protocol, or the h2c preface that
/// never arrives. Once HTTP is set up the HTTP handlers own the timeouts (header, idle), so at the
/// deadline this handler only looks whether that happened and steps aside; it costs nothing per
/// request. Plain and TLS HTTP/1.1 listeners without the PROXY protocol do not need it: their
/// `HTTP1ServerHandler` is there from the first byte.
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
        guard let context = self.context else { return }
        let pipeline = context.pipeline.syncOperations
        let isHTTP =
            (try? pipeline.context(handlerType: HTTP1ServerHandler.self)) != nil
            || (try? pipeline.context(handlerType: NIOHTTP2Handler.self)) != nil
        if isHTTP {
            pipeline.removeHandler(context: context, promise: nil)
        } else {
            context.close(promise: nil)
        }
    }
}
