import NIOCore
import Synchronization

import struct NIOConcurrencyHelpers.NIOLockedValueBox

/// The open client connections of one listener, and its `limits.max_connections` (0: none).
///
/// The listener's `ConnectionLimiter` counts a connection in when it is accepted (on the server
/// channel's loop, so the next accept already sees it) and the listener counts it out when its
/// channel closes. (A connection NIO fails to hand to its child initializer stays counted; that
/// takes an `epoll_ctl` failure.)
final class ConnectionCounter: Sendable {
    let open = Atomic<Int>(0)
    private let limitValue: Atomic<Int>
    /// Wakes the listener's held accept once a close brings the count back under the limit; set
    /// once by its `ConnectionLimiter`, read only when a close crosses the limit.
    private let underLimit = NIOLockedValueBox<(@Sendable () -> Void)?>(nil)
    /// Set once the listener drains: a connection set up after that is told at once.
    private let drainingFlag = Atomic<Bool>(false)
    /// Called once when the last connection of a draining listener goes.
    private let allClosed = NIOLockedValueBox<(@Sendable () -> Void)?>(nil)

    init(limit: Int = 0) {
        self.limitValue = Atomic(limit)
    }

    var value: Int { self.open.load(ordering: .relaxed) }
    var limit: Int { self.limitValue.load(ordering: .relaxed) }

    /// A reload may change the limit; it applies to the next accept.
    func setLimit(_ limit: Int) {
        self.limitValue.store(limit, ordering: .relaxed)
    }

    /// A connection of this listener was accepted.
    func connectionOpened() {
        self.open.add(1, ordering: .relaxed)
    }

    /// A connection of this listener went away: back under the limit, the held accept goes on.
    func connectionClosed() {
        let before = self.open.subtract(1, ordering: .relaxed).oldValue
        let limit = self.limit
        if limit > 0 && before >= limit {
            self.underLimit.withLockedValue { $0 }?()
        }
        if before == 1 && self.isDraining {
            self.takeAllClosed()?()
        }
    }

    /// Whether the listener is draining (its connections finish and close).
    var isDraining: Bool { self.drainingFlag.load(ordering: .sequentiallyConsistent) }

    /// The listener drains: from now on `whenAllClosed` can fire.
    func startDraining() {
        self.drainingFlag.store(true, ordering: .sequentiallyConsistent)
    }

    /// Calls `done` once no connection is left (at once if none is open now).
    func whenAllClosed(_ done: @escaping @Sendable () -> Void) {
        self.allClosed.withLockedValue { $0 = done }
        if self.value == 0 {
            self.takeAllClosed()?()
        }
    }

    private func takeAllClosed() -> (@Sendable () -> Void)? {
        self.allClosed.withLockedValue { callback in
            defer { callback = nil }
            return callback
        }
    }

    /// What to call when a close brings the count back under the limit.
    func whenUnderLimit(_ wake: @escaping @Sendable () -> Void) {
        self.underLimit.withLockedValue { $0 = wake }
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
        let state = self.state
        let serverLoop = context.eventLoop
        self.counter.whenUnderLimit {
            // On the server channel's loop: accept again if an accept was held.
            serverLoop.execute {
                let state = state.value
                if state.readPending, let context = state.context {
                    state.readPending = false
                    context.read()
                }
            }
        }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.state.value.context = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        self.counter.connectionOpened()
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
