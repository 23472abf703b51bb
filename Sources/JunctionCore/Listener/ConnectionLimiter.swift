import NIOCore
import Synchronization

/// The open client connections of one listener, and its `limits.max_connections` (0: none).
final class ConnectionCounter: Sendable {
    let open = Atomic<Int>(0)
    private let limitValue: Atomic<Int>

    init(limit: Int = 0) {
        self.limitValue = Atomic(limit)
    }

    var value: Int { self.open.load(ordering: .relaxed) }
    var limit: Int { self.limitValue.load(ordering: .relaxed) }

    /// A reload may change the limit; it applies to the next accept.
    func setLimit(_ limit: Int) {
        self.limitValue.store(limit, ordering: .relaxed)
    }
}

/// `limits.max_connections` on a listening socket: while the limit is reached the server channel
/// stops accepting, so new connections wait in the kernel's backlog instead of being refused.
///
/// Sits on the server channel, where every inbound read is one accepted child channel.
final class ConnectionLimiter: ChannelDuplexHandler {
    typealias InboundIn = Channel
    typealias InboundOut = Channel
    typealias OutboundIn = Never

    /// Open connections of this listener; written from child event loops.
    let counter: ConnectionCounter
    private let state: NIOLoopBound<State>

    /// Server-loop state: whether a read was held back because the limit was reached.
    private final class State {
        var readPending = false
        var context: ChannelHandlerContext?
    }

    init(counter: ConnectionCounter, eventLoop: EventLoop) {
        self.counter = counter
        self.state = NIOLoopBound(State(), eventLoop: eventLoop)
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.state.value.context = context
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.state.value.context = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let child = self.unwrapInboundIn(data)
        let counter = self.counter
        counter.open.add(1, ordering: .relaxed)
        let state = self.state
        let serverLoop = context.eventLoop
        child.closeFuture.whenComplete { _ in
            let before = counter.open.subtract(1, ordering: .relaxed).oldValue
            let limit = counter.limit
            if limit > 0 && before >= limit {
                // Back under the limit: accept again (on the server channel's loop).
                serverLoop.execute {
                    let state = state.value
                    if state.readPending, let context = state.context {
                        state.readPending = false
                        context.read()
                    }
                }
            }
        }
        context.fireChannelRead(data)
    }

    func read(context: ChannelHandlerContext) {
        let limit = self.counter.limit
        if limit > 0 && self.counter.value >= limit {
            self.state.value.readPending = true
        } else {
            context.read()
        }
    }
}
