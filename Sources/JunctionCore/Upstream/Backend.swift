import NIOCore
import Synchronization

/// One upstream address of a pool, with the only state shared across event loops: its active
/// count (in-flight requests plus open tunnels) and its availability.
///
/// Reads and writes are atomics so the balancer never takes a lock on the data path.
public final class Backend: Sendable {
    /// The resolved socket address connections go to.
    public let address: SocketAddress
    /// `host:port` of the resolved address, for logs, metrics and status.
    public let label: String
    /// Relative weight, 1...100.
    public let weight: Int
    /// The pool's name, for logs.
    public let poolName: String

    /// In-flight requests plus open tunnels.
    private let activeCount = Atomic<Int>(0)
    /// Consecutive failed connects; drives the passive back-off.
    private let consecutiveFailures = Atomic<Int>(0)
    /// Uptime in nanoseconds until which the backend is passively down (0: not down).
    private let downUntilNanos = Atomic<Int64>(0)

    /// The first passive back-off; it doubles on each further failure.
    static let initialBackoff = TimeAmount.seconds(1)
    /// The longest passive back-off.
    static let maximumBackoff = TimeAmount.seconds(30)

    public init(address: SocketAddress, label: String, weight: Int, poolName: String) {
        self.address = address
        self.label = label
        self.weight = weight
        self.poolName = poolName
    }

    /// In-flight requests plus open tunnels.
    public var active: Int { self.activeCount.load(ordering: .relaxed) }

    /// Counts a request or tunnel against this backend until `release()`.
    func retain() {
        self.activeCount.add(1, ordering: .relaxed)
    }

    /// Ends what `retain()` started.
    func release() {
        self.activeCount.subtract(1, ordering: .relaxed)
    }

    /// Whether new requests may go here at `now`.
    public func isAvailable(at now: NIODeadline) -> Bool {
        let until = self.downUntilNanos.load(ordering: .relaxed)
        return until == 0 || now.uptimeNanoseconds >= UInt64(until)
    }

    /// When a passively-down backend may be tried again; nil when it is up.
    public func retryAt(after now: NIODeadline) -> NIODeadline? {
        let until = self.downUntilNanos.load(ordering: .relaxed)
        guard until != 0, UInt64(until) > now.uptimeNanoseconds else { return nil }
        return NIODeadline.uptimeNanoseconds(UInt64(until))
    }

    /// A connection was refused or timed out: down at once, tried again after a doubling back-off.
    /// Returns the back-off applied.
    @discardableResult
    func recordConnectFailure(at now: NIODeadline) -> TimeAmount {
        let failures = self.consecutiveFailures.add(1, ordering: .relaxed).newValue
        let backoff = Self.backoff(afterFailures: failures)
        self.downUntilNanos.store(Int64(now.uptimeNanoseconds) + backoff.nanoseconds, ordering: .relaxed)
        return backoff
    }

    /// A connect succeeded: the back-off starts over.
    func recordConnectSuccess() {
        // Only write when there is something to reset: the shared cache line stays clean otherwise.
        if self.consecutiveFailures.load(ordering: .relaxed) != 0 {
            self.consecutiveFailures.store(0, ordering: .relaxed)
            self.downUntilNanos.store(0, ordering: .relaxed)
        }
    }

    /// 1 s, 2 s, 4 s ... capped at 30 s.
    static func backoff(afterFailures failures: Int) -> TimeAmount {
        let shift = min(max(failures - 1, 0), 5)
        return min(.nanoseconds(Self.initialBackoff.nanoseconds << shift), Self.maximumBackoff)
    }
}

extension Backend: CustomStringConvertible {
    public var description: String { self.label }
}
