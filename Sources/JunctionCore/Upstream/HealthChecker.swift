import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import ServiceLifecycle

#if canImport(Glibc)
    import Glibc
#endif

/// Active health checks of every pool that has `health_check`: each backend gets an HTTP/1.1 GET
/// of the check path every `interval` (with a little jitter so backends are not hit in lockstep),
/// on the event loops but off the data path; results feed each backend's flip-rule state machine
/// and transitions are logged once.
final class HealthChecker: Service {
    private let registry: BackendRegistry
    private let group: EventLoopGroup
    private let logger: Logger

    init(registry: BackendRegistry, group: EventLoopGroup, logger: Logger) {
        self.registry = registry
        self.group = group
        self.logger = logger
    }

    /// A pool's checking task and the check it runs.
    private struct Checking {
        let check: HealthCheckConfig
        let task: Task<Void, Never>
    }

    func run() async throws {
        // One task per checked pool; the registry says when pools or their checks change.
        var running: [ObjectIdentifier: Checking] = [:]
        self.reconcile(&running)
        for await _ in self.registry.changes.cancelOnGracefulShutdown() {
            self.reconcile(&running)
        }
        for checking in running.values { checking.task.cancel() }
    }

    /// Starts checking pools that have a check and no task (or a task for another check), stops
    /// tasks of pools that are gone or no longer checked.
    private func reconcile(_ running: inout [ObjectIdentifier: Checking]) {
        var wanted: [ObjectIdentifier: (Backends, HealthCheckConfig)] = [:]
        for pool in self.registry.pools.values {
            if let check = pool.healthCheck { wanted[ObjectIdentifier(pool)] = (pool, check) }
        }
        for (id, checking) in running where wanted[id]?.1 != checking.check {
            checking.task.cancel()
            running[id] = nil
        }
        for (id, (pool, check)) in wanted where running[id] == nil {
            running[id] = Checking(check: check, task: Task { await self.checkForever(pool, check: check) })
        }
    }

    private func checkForever(_ pool: Backends, check: HealthCheckConfig) async {
        while !Task.isCancelled {
            let started = ContinuousClock.now
            await withTaskGroup(of: Void.self) { round in
                for backend in pool.all {
                    round.addTask {
                        // Up to a tenth of the interval, so a pool's backends are not probed in lockstep.
                        let jitter = Int64.random(in: 0...max(check.interval.nanoseconds / 10, 1))
                        try? await Task.sleep(nanoseconds: UInt64(jitter))
                        guard !Task.isCancelled else { return }
                        let result = await HealthProbe.run(backend: backend, check: check, eventLoop: self.group.next())
                        guard !Task.isCancelled else { return }
                        self.record(result, for: backend)
                    }
                }
            }
            let elapsed = ContinuousClock.now - started
            let interval = Duration.nanoseconds(check.interval.nanoseconds)
            if elapsed < interval {
                try? await Task.sleep(for: interval - elapsed)
            }
        }
    }

    private func record(_ result: Backend.CheckResult, for backend: Backend) {
        self.logger.healthTransition(backend.recordCheck(result), of: backend, reason: "check: \(result.detail)")
    }
}

/// One health check: connect, `GET <path>` with the backend's configured host as Host, read the
/// status line, close. Anything but an expected status within the timeout is a failure.
enum HealthProbe {
    static func run(backend: Backend, check: HealthCheckConfig, eventLoop: EventLoop) async -> Backend.CheckResult {
        let outcome: Result<HTTPResponseStatus, Error>
        do {
            outcome = .success(try await self.status(backend: backend, check: check, eventLoop: eventLoop))
        } catch {
            outcome = .failure(error)
        }
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        let time = Double(now.tv_sec) + Double(now.tv_nsec) / 1e9
        switch outcome {
        case .success(let status):
            return Backend.CheckResult(
                passed: check.expectStatus.contains(Int(status.code)),
                detail: "status \(status.code)",
                time: time
            )
        case .failure(let error):
            return Backend.CheckResult(passed: false, detail: Self.describe(error), time: time)
        }
    }

    private static func status(
        backend: Backend,
        check: HealthCheckConfig,
        eventLoop: EventLoop
    ) async throws
        -> HTTPResponseStatus
    {
        let promise = eventLoop.makePromise(of: HTTPResponseStatus.self)
        let timeout = eventLoop.scheduleTask(in: check.timeout) {
            promise.fail(ProbeError.timedOut)
        }
        var head = HTTPRequestHead(version: .http1_1, method: .GET, uri: check.path)
        head.headers.add(name: "Host", value: backend.configuredAddress)
        head.headers.add(name: "User-Agent", value: "junction-health-check")
        head.headers.add(name: "Connection", value: "close")
        let request = head
        let connect = ClientBootstrap(group: eventLoop)
            .connectTimeout(check.timeout)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    try channel.pipeline.syncOperations.addHandler(ProbeHandler(request: request, promise: promise))
                }
            }
            .connect(to: backend.address)
        connect.whenFailure { promise.fail($0) }
        defer { timeout.cancel() }
        do {
            let status = try await promise.futureResult.get()
            if let channel = try? await connect.get() { channel.close(promise: nil) }
            return status
        } catch {
            if let channel = try? await connect.get() { channel.close(promise: nil) }
            throw error
        }
    }

    enum ProbeError: Error, CustomStringConvertible {
        case timedOut
        case closedWithoutResponse

        var description: String {
            switch self {
            case .timedOut: return "timed out"
            case .closedWithoutResponse: return "closed without a response"
            }
        }
    }

    static func describe(_ error: Error) -> String {
        if let error = error as? ProbeError { return error.description }
        return ConnectionFailure.describe(error)
    }
}

/// Sends the check request and reports the response status.
private final class ProbeHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPClientResponsePart
    typealias OutboundOut = HTTPClientRequestPart

    private let request: HTTPRequestHead
    private let promise: EventLoopPromise<HTTPResponseStatus>

    init(request: HTTPRequestHead, promise: EventLoopPromise<HTTPResponseStatus>) {
        self.request = request
        self.promise = promise
    }

    func channelActive(context: ChannelHandlerContext) {
        context.write(self.wrapOutboundOut(.head(self.request)), promise: nil)
        context.writeAndFlush(self.wrapOutboundOut(.end(nil)), promise: nil)
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if case .head(let head) = self.unwrapInboundIn(data) {
            self.promise.succeed(head.status)
            context.close(promise: nil)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.promise.fail(HealthProbe.ProbeError.closedWithoutResponse)
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        self.promise.fail(error)
        context.close(promise: nil)
    }
}

extension Logger {
    /// Logs a backend's health transition, once, where it happened (active check or live traffic).
    func healthTransition(_ transition: HealthStateMachine.Transition?, of backend: Backend, reason: String) {
        let metadata: Logger.Metadata = [
            "pool": "\(backend.poolName)", "backend": "\(backend.label)", "reason": "\(reason)",
        ]
        switch transition {
        case .becameUnhealthy: self.warning("backend down", metadata: metadata)
        case .becameHealthy: self.info("backend up", metadata: metadata)
        case nil: break
        }
    }
}
