import Logging
import NIOCore

/// Everything one event loop owns for the data path: idle upstream connections, the request-id
/// generator and the access-log buffer.
///
/// Only touched on its own event loop, which is what makes it lock-free; `@unchecked Sendable` only
/// so that channel initializers (which are `@Sendable`) can hand it to the handlers they create.
final class LoopContext: @unchecked Sendable {
    /// The loop this context belongs to.
    let eventLoop: EventLoop
    /// The loop's position in the group (per-loop copies in pools are indexed by it).
    let index: Int
    /// For the rare events the data path reports (a backend going down).
    let logger: Logger
    /// Idle keep-alive upstream connections of this loop.
    let connections: UpstreamConnectionPool
    /// Access-log lines waiting for the end of the tick; nil when the access log is off.
    private(set) var accessLog: AccessLogBuffer?
    /// Request counters and durations; nil when metrics are off (unit tests).
    let metrics: LoopMetrics?
    /// Every timeout of this loop: one repeating task instead of a timer per request.
    let sweeper: DeadlineSweeper
    /// Allocator for the buffers Junction itself writes (heads, chunk framing).
    let allocator = ByteBufferAllocator()
    /// Caps the gzip streams alive on this loop.
    let gzipBudget = GzipBudget()
    /// The configuration generation new requests on this loop use.
    var runtime: RuntimeConfig
    /// Set once the process's shutdown started (not a single listener's drain): tunnels closed
    /// from now on are counted as closed by it.
    var isShuttingDown = false
    private var requestIDs = RequestID()

    init(
        eventLoop: EventLoop,
        index: Int = 0,
        runtime: RuntimeConfig,
        accessLogSink: AccessLogSink?,
        metrics: JunctionMetrics? = nil,
        logger: Logger = Logger(label: "junction"),
        connector: any UpstreamConnector = SocketConnector()
    ) {
        self.eventLoop = eventLoop
        self.metrics = metrics.map(LoopMetrics.init)
        self.index = index
        self.logger = logger
        self.runtime = runtime
        self.sweeper = DeadlineSweeper(eventLoop: eventLoop)
        self.connections = UpstreamConnectionPool(eventLoop: eventLoop, connector: connector)
        self.connections.sweeper = self.sweeper
        self.accessLog = accessLogSink.map { AccessLogBuffer(sink: $0, eventLoop: eventLoop) }
    }

    /// Switches the access log (reload, SIGUSR1), flushing what the old one holds.
    func replaceAccessLog(with sink: AccessLogSink?) {
        self.accessLog?.flush()
        self.accessLog = sink.map { AccessLogBuffer(sink: $0, eventLoop: self.eventLoop) }
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

    init(
        group: EventLoopGroup,
        runtime: RuntimeConfig,
        accessLogSink: AccessLogSink?,
        metrics: JunctionMetrics?,
        logger: Logger
    ) {
        var contexts: [ObjectIdentifier: LoopContext] = [:]
        for (index, loop) in group.makeIterator().enumerated() {
            contexts[ObjectIdentifier(loop)] = LoopContext(
                eventLoop: loop,
                index: index,
                runtime: runtime,
                accessLogSink: accessLogSink,
                metrics: metrics,
                logger: logger
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

    /// Every context, in loop order.
    var all: [LoopContext] { self.contexts.values.sorted { $0.index < $1.index } }
}

extension LoopContext {
    /// A request (or tunnel) is over: its access-log line and its metrics.
    func requestFinished(_ record: AccessRecord) {
        let now = NIODeadline.now()
        self.accessLog?.log(record, now: now)
        self.requestFinished(
            route: record.route,
            pool: record.pool,
            status: record.status,
            start: record.start,
            now: now
        )
    }

    /// A request (or tunnel) whose access-log line was not kept is over: its metrics alone.
    func requestFinished(
        route: String?,
        pool: String?,
        status: UInt,
        start: NIODeadline,
        now: NIODeadline = .now()
    ) {
        self.metrics?.requestFinished(
            route: route,
            pool: pool,
            status: status,
            durationNanoseconds: (now - start).nanoseconds
        )
    }

    /// Logs a backend's health transition once, where it happened.
    func logHealth(_ backend: Backend, _ transition: HealthStateMachine.Transition?, reason: String) {
        self.logger.healthTransition(transition, of: backend, reason: reason)
    }
}
