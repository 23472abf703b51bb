import NIOCore
import NIOTLS

/// Sits right behind the TLS handler while the handshake runs and tells the connection's owner the
/// negotiated protocol the moment the handshake completes; the owner installs HTTP/1.1 or HTTP/2
/// behind it and it leaves, in the same call, so the bytes decrypted right after the handshake
/// reach the new handlers.
final class TLSHandshakeObserver: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = Any

    private var connection: ClientConnection?

    init(connection: ClientConnection) {
        self.connection = connection
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        guard case TLSUserEvent.handshakeCompleted(let negotiated) = event, let connection = self.connection else {
            context.fireUserInboundEventTriggered(event)
            return
        }
        self.connection = nil
        connection.tlsHandshakeCompleted(alpn: negotiated)
        context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.connection = nil
    }
}
