import Logging
import NIOCore

/// Everything one event loop owns for the data path: the config generation its requests use, each
/// pool's members as it sees them, idle upstream connections, the deadline sweeper, the request-id
/// generator, the access-log buffer and the metrics.
///
/// Only touched on its own event loop, which is what makes it lock-free: other threads reach it
/// through `LoopContexts.Loop`, which runs what they ask on the loop.
final class LoopContext {
    /// The loop this context belongs to.
    let eventLoop: EventLoop
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
    /// Each pool's members as this loop sees them: a copy per loop, so requests on different cores
    /// never share a reference count; a reload or DNS change reaches it through `setMembers`.
    private var members: [ObjectIdentifier: [Backend]] = [:]

    init(
        eventLoop: EventLoop,
        runtime: RuntimeConfig,
        accessLogSink: AccessLogSink?,
        metrics: JunctionMetrics? = nil,
        logger: Logger = Logger(label: "junction"),
        connector: any UpstreamConnector = SocketConnector()
    ) {
        self.eventLoop = eventLoop
        self.metrics = metrics.map(LoopMetrics.init)
        self.logger = logger
        self.runtime = runtime
        self.sweeper = DeadlineSweeper(eventLoop: eventLoop)
        self.connections = UpstreamConnectionPool(eventLoop: eventLoop, connector: connector)
        self.connections.sweeper = self.sweeper
        self.accessLog = accessLogSink.map { AccessLogBuffer(sink: $0, eventLoop: eventLoop) }
        for pool in runtime.pools.values {
            self.setMembers(pool.members.all, of: pool.members)
        }
    }

    /// `pool`'s members as this loop sees them (data path).
    func members(of pool: Backends) -> [Backend] {
        self.members[ObjectIdentifier(pool)] ?? []
    }

    /// `pool`'s members changed (a reload, DNS): requests on this loop pick from `backends` now.
    func setMembers(_ backends: [Backend], of pool: Backends) {
        // A buffer of this loop's own: the list handed over is shared with every other loop.
        var copy: [Backend] = []
        copy.reserveCapacity(backends.count)
        copy.append(contentsOf: backends)
        self.members[ObjectIdentifier(pool)] = copy
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

/// The `LoopContext` of every event loop of the group, found by loop identity. Each is bound to its
/// loop: the data path takes its own (`context(for:)`), the control plane asks a `Loop` to run
/// something there.
struct LoopContexts: Sendable {
    /// One event loop's context as any thread reaches it.
    struct Loop: Sendable {
        let eventLoop: EventLoop
        private let context: NIOLoopBoundBox<LoopContext>

        fileprivate init(eventLoop: EventLoop, context: NIOLoopBoundBox<LoopContext>) {
            self.eventLoop = eventLoop
            self.context = context
        }

        /// Runs `body` with the context on its loop, on the loop's next turn.
        func execute(_ body: @escaping @Sendable (LoopContext) -> Void) {
            let context = self.context
            self.eventLoop.execute { body(context.value) }
        }

        /// Runs `body` with the context on its loop; its result when done.
        func submit<Result: Sendable>(_ body: @escaping @Sendable (LoopContext) -> Result) -> EventLoopFuture<Result> {
            let context = self.context
            return self.eventLoop.submit { body(context.value) }
        }

        /// The context, on its own loop.
        fileprivate var value: LoopContext { self.context.value }
    }

    private let loops: [ObjectIdentifier: Loop]
    /// Every loop, in the group's order.
    let all: [Loop]

    init(
        group: EventLoopGroup,
        runtime: RuntimeConfig,
        accessLogSink: AccessLogSink?,
        metrics: JunctionMetrics?,
        logger: Logger
    ) {
        var all: [Loop] = []
        for eventLoop in group.makeIterator() {
            let context = LoopContext(
                eventLoop: eventLoop,
                runtime: runtime,
                accessLogSink: accessLogSink,
                metrics: metrics,
                logger: logger
            )
            all.append(Loop(eventLoop: eventLoop, context: .makeBoxSendingValue(context, eventLoop: eventLoop)))
        }
        self.all = all
        self.loops = Dictionary(uniqueKeysWithValues: all.map { (ObjectIdentifier($0.eventLoop), $0) })
    }

    /// The context of `eventLoop`, which must belong to the group; on that loop.
    func context(for eventLoop: EventLoop) -> LoopContext {
        guard let loop = self.loops[ObjectIdentifier(eventLoop)] else {
            preconditionFailure("event loop \(eventLoop) is not part of Junction's group")
        }
        return loop.value
    }
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
