import NIOCore
import ServiceLifecycle

/// Frees the request-rate entries of clients gone quiet (their bucket full again) every
/// `period`, so the tables show who is active and idle entries expire even where no newcomer
/// needs their slot. Counts need no sweep: their last release frees them.
final class ClientExpiry: Service {
    private let runtime: RuntimeBox
    private let period: Duration

    init(runtime: RuntimeBox, period: Duration = .seconds(10)) {
        self.runtime = runtime
        self.period = period
    }

    func run() async throws {
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                try? await Task.sleep(for: self.period)
                guard !Task.isCancelled else { return }
                self.runtime.current.limiter.sweep(now: NIODeadline.now().uptimeNanoseconds)
            }
        }
    }
}
