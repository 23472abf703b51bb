import NIOCore

/// Everything one event loop owns for the data path: idle upstream connections, the request-id
/// generator and the access-log buffer.
///
/// Only touched on its own event loop, which is what makes it lock-free; `@unchecked Sendable` only
/// so that channel initializers (which are `@Sendable`) can hand it to the handlers they create.
final class LoopContext: @unchecked Sendable {
    /// The loop this context belongs to.
    let eventLoop: EventLoop
    /// Idle keep-alive upstream connections of this loop.
    let connections: UpstreamConnectionPool
    /// Access-log lines waiting for the end of the tick; nil when the access log is off.
    let accessLog: AccessLogBuffer?
    /// Every timeout of this loop: one repeating task instead of a timer per request.
    let sweeper: DeadlineSweeper
    /// Allocator for the buffers Junction itself writes (heads, chunk framing).
    let allocator = ByteBufferAllocator()
    /// The configuration generation new requests on this loop use.
    var runtime: RuntimeConfig
    private var requestIDs = RequestID()

    init(eventLoop: EventLoop, runtime: RuntimeConfig, accessLogSink: AccessLogSink?) {
        self.eventLoop = eventLoop
        self.runtime = runtime
        self.sweeper = DeadlineSweeper(eventLoop: eventLoop)
        self.connections = UpstreamConnectionPool(eventLoop: eventLoop)
        self.connections.sweeper = self.sweeper
        self.accessLog = accessLogSink.map { AccessLogBuffer(sink: $0, eventLoop: eventLoop) }
    }

    /// A fresh request id.
    func nextRequestID() -> String {
        self.eventLoop.assertInEventLoop()
        return self.requestIDs.next()
    }
}

/// The `LoopContext` of every event loop of the group, found by loop identity.
struct LoopContexts: Sendable {
    private let contexts: [ObjectIdentifier: LoopContext]

    init(group: EventLoopGroup, runtime: RuntimeConfig, accessLogSink: AccessLogSink?) {
        var contexts: [ObjectIdentifier: LoopContext] = [:]
        for loop in group.makeIterator() {
            contexts[ObjectIdentifier(loop)] = LoopContext(
                eventLoop: loop,
                runtime: runtime,
                accessLogSink: accessLogSink
            )
        }
        self.contexts = contexts
    }

    /// The context of `eventLoop`, which must belong to the group.
    func context(for eventLoop: EventLoop) -> LoopContext {
        guard let context = self.contexts[ObjectIdentifier(eventLoop)] else {
            preconditionFailure("event loop \(eventLoop) is not part of Junction's group")
        }
        return context
    }

    /// Every context, for shutdown.
    var all: [LoopContext] { Array(self.contexts.values) }
}
