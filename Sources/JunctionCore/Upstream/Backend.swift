import NIOCore
import Synchronization

import struct NIOConcurrencyHelpers.NIOLockedValueBox

#if canImport(Glibc)
    import Glibc
#endif

/// One upstream address of a pool, with the only state shared across event loops: its active
/// count (in-flight requests plus open tunnels), its weight and its health.
///
/// Long-lived: the pool's `Backends` registry keeps the same object across reloads and DNS
/// refreshes for as long as the address stays, so counts and health carry over. The data path
/// reads and writes atomics only; the health state machine and the last check result sit behind a
/// mutex that only checks and failures touch.
public final class Backend: Sendable {
    /// The resolved socket address connections go to.
    public let address: SocketAddress
    /// `host:port` of the resolved address, for logs, metrics and status.
    public let label: String
    /// The configured `host:port` (a name for DNS backends), sent as Host by health checks.
    public let configuredAddress: String
    /// The pool's name, for logs.
    public let poolName: String
    /// The opaque `junction_<pool>` cookie value that names this backend (cookie affinity): a hash
    /// of pool and address, the same on every Junction with the same config.
    public let affinityToken: String

    /// In-flight requests plus open tunnels.
    private let activeCount = Atomic<Int>(0)
    /// Open tunnels alone.
    private let tunnelCount = Atomic<Int>(0)
    /// Relative weight, 1...100, as the config gives it (changed in place by a reload).
    private let configuredWeightValue: Atomic<Int>
    /// A weight set through the admin API (0: none); it wins over the config's and outlives reloads.
    private let weightOverride = Atomic<Int>(0)
    /// Why the backend takes no new work, if it does not (`DrainState`).
    private let drainValue = Atomic<UInt8>(DrainState.none.rawValue)
    /// Open tunnels by opening order, so a drain can close the oldest first.
    private let openTunnels = NIOLockedValueBox(OpenTunnels<TunnelHandle.Target>())
    /// Whether the pool runs active health checks (then passive failures wait for a check to pass,
    /// else they wait out a back-off).
    private let activelyChecked: Atomic<Bool>
    /// What the balancer reads: false while the backend is down.
    private let healthyFlag = Atomic<Bool>(true)
    /// Consecutive failed connects; drives the passive back-off of pools without health checks.
    private let consecutiveFailures = Atomic<Int>(0)
    /// Uptime in nanoseconds until which the backend is backing off (0: not).
    private let downUntilNanos = Atomic<Int64>(0)
    /// The flip-rule state and the last check, for pools with health checks.
    private let health: NIOLockedValueBox<HealthRecord>

    /// The first passive back-off; it doubles on each further failure.
    static let initialBackoff = TimeAmount.seconds(1)
    /// The longest passive back-off.
    static let maximumBackoff = TimeAmount.seconds(30)

    /// What the last active check found.
    public struct CheckResult: Sendable, Equatable {
        /// Whether it passed.
        public var passed: Bool
        /// The status, or why there was none ("connection refused", "timed out").
        public var detail: String
        /// When it finished (seconds since the epoch).
        public var time: Double
    }

    private struct HealthRecord {
        var machine: HealthStateMachine
        var lastCheck: CheckResult?
    }

    public init(
        address: SocketAddress,
        label: String,
        weight: Int,
        poolName: String,
        configuredAddress: String? = nil,
        healthCheck: HealthCheckConfig? = nil
    ) {
        self.address = address
        self.label = label
        self.configuredWeightValue = Atomic(weight)
        self.poolName = poolName
        self.configuredAddress = configuredAddress ?? label
        self.activelyChecked = Atomic(healthCheck != nil)
        self.affinityToken = AffinityToken.make(pool: poolName, backend: label)
        self.health = NIOLockedValueBox(HealthRecord(machine: HealthStateMachine(check: healthCheck), lastCheck: nil))
    }

    /// Relative weight, 1...100: the admin API's if one was set, else the config's.
    public var weight: Int {
        let override = self.weightOverride.load(ordering: .relaxed)
        return override != 0 ? override : self.configuredWeightValue.load(ordering: .relaxed)
    }

    /// The weight the config gives.
    public var configuredWeight: Int { self.configuredWeightValue.load(ordering: .relaxed) }

    /// Sets the weight at run time (admin API); it holds across reloads until the process ends.
    public func setRuntimeWeight(_ weight: Int) {
        precondition((1...100).contains(weight), "weight out of range")
        self.weightOverride.store(weight, ordering: .relaxed)
    }

    /// Whether the pool runs active health checks.
    public var isActivelyChecked: Bool { self.activelyChecked.load(ordering: .relaxed) }

    /// A reload changed the configured weight (a runtime weight, if set, still wins).
    func setConfiguredWeight(_ weight: Int) {
        self.configuredWeightValue.store(weight, ordering: .relaxed)
    }

    /// A reload changed the pool's health check. The counts stay; so does the health while the
    /// backend stays checked (with the new thresholds from now on). Adding or removing the check
    /// starts the backend healthy with a clean record, as a new backend would.
    func setHealthCheck(_ check: HealthCheckConfig?) {
        let wasChecked = self.activelyChecked.exchange(check != nil, ordering: .relaxed)
        self.consecutiveFailures.store(0, ordering: .relaxed)
        self.downUntilNanos.store(0, ordering: .relaxed)
        self.health.withLockedValue { record in
            let keepsHealth = wasChecked && check != nil
            record.machine = HealthStateMachine(
                check: check,
                isHealthy: keepsHealth ? record.machine.isHealthy : true
            )
            if !keepsHealth { record.lastCheck = nil }
            self.healthyFlag.store(record.machine.isHealthy, ordering: .relaxed)
        }
    }

    /// In-flight requests plus open tunnels.
    public var active: Int { self.activeCount.load(ordering: .relaxed) }

    /// Open WebSocket tunnels.
    public var tunnels: Int { self.tunnelCount.load(ordering: .relaxed) }

    /// A tunnel to this backend opened: counted, and listed for drains. Returns its place in the
    /// list (for `tunnelClosed`).
    func tunnelOpened(_ handle: TunnelHandle.Target) -> UInt64 {
        self.tunnelCount.add(1, ordering: .relaxed)
        let id = tunnelSequence.add(1, ordering: .relaxed).newValue
        self.openTunnels.withLockedValue { $0.add(handle, id: id) }
        return id
    }

    /// The tunnel `id` closed.
    func tunnelClosed(_ id: UInt64) {
        self.tunnelCount.subtract(1, ordering: .relaxed)
        self.openTunnels.withLockedValue { $0.remove(id) }
    }

    /// The opening order of the oldest open tunnel not yet taken by a drain.
    var oldestTunnelID: UInt64? { self.openTunnels.withLockedValue { $0.oldestID() } }

    /// The oldest open tunnel, taken off the list for a drain to close.
    func takeOldestTunnel() -> TunnelHandle? {
        self.openTunnels.withLockedValue { $0.takeOldest() }.map { TunnelHandle(id: $0.id, target: $0.target) }
    }

    /// Why the backend takes no new requests or tunnels, if it does not.
    public enum DrainState: UInt8, Sendable {
        /// It takes traffic.
        case none
        /// Drained through the admin API, until enabled.
        case admin
        /// Gone from the config or DNS; it leaves once its tunnels are closed.
        case removed
    }

    /// Whether, and why, the backend is draining.
    public var drainState: DrainState {
        DrainState(rawValue: self.drainValue.load(ordering: .relaxed)) ?? .none
    }

    /// Whether a reload or DNS removed it: it drains, stays listed (`/status`, `/metrics`) while it
    /// has requests or tunnels open, then leaves.
    public var isRemoved: Bool { self.drainState == .removed }

    /// Whether it is draining (no new work) for any reason.
    public var isDraining: Bool { self.drainValue.load(ordering: .relaxed) != DrainState.none.rawValue }

    /// Starts a drain (`admin` or `removed`) or ends one (`none`).
    func setDrain(_ state: DrainState) {
        self.drainValue.store(state.rawValue, ordering: .relaxed)
    }

    /// `active`, `draining` (tunnels still open) or `drained`, as `/status` shows it; the same for
    /// an admin drain and a removal (a removed backend is `draining` until its last tunnel closes).
    public var stateDescription: String {
        guard self.isDraining else { return "active" }
        return self.tunnels > 0 ? "draining" : "drained"
    }

    /// Whether the backend is up: not failed its checks, not passively marked down.
    public var isHealthy: Bool { self.healthyFlag.load(ordering: .relaxed) }

    /// The last active check, if any ran.
    public var lastCheck: CheckResult? { self.health.withLockedValue { $0.lastCheck } }

    /// Counts a request or tunnel against this backend until `release()` (through `BackendLease`).
    func retain() {
        self.activeCount.add(1, ordering: .relaxed)
    }

    /// Ends what `retain()` started.
    func release() {
        self.activeCount.subtract(1, ordering: .relaxed)
    }

    /// Whether new requests may go here at `now`: healthy and not draining.
    public func isAvailable(at now: NIODeadline) -> Bool {
        !self.isDraining && self.isHealthy(at: now)
    }

    /// Whether the backend is up at `now`: its checks pass and it is not backing off (draining or
    /// not).
    public func isHealthy(at now: NIODeadline) -> Bool {
        guard self.healthyFlag.load(ordering: .relaxed) else { return false }
        if self.isActivelyChecked { return true }
        let until = self.downUntilNanos.load(ordering: .relaxed)
        return until == 0 || now.uptimeNanoseconds >= UInt64(until)
    }

    /// When a backing-off backend may be tried again; nil when it is not backing off.
    public func retryAt(after now: NIODeadline) -> NIODeadline? {
        let until = self.downUntilNanos.load(ordering: .relaxed)
        guard until != 0, UInt64(until) > now.uptimeNanoseconds else { return nil }
        return NIODeadline.uptimeNanoseconds(UInt64(until))
    }

    /// A connection was refused or timed out: down at once. With health checks it stays down until
    /// they pass; without, it is tried again after a doubling back-off. Returns a transition to log.
    @discardableResult
    func recordConnectFailure(at now: NIODeadline) -> HealthStateMachine.Transition? {
        if self.isActivelyChecked {
            return self.updateMachine { $0.connectFailed() }
        }
        let failures = self.consecutiveFailures.add(1, ordering: .relaxed).newValue
        let backoff = Self.backoff(afterFailures: failures)
        self.downUntilNanos.store(Int64(now.uptimeNanoseconds) + backoff.nanoseconds, ordering: .relaxed)
        return failures == 1 ? .becameUnhealthy : nil
    }

    /// A connect succeeded: a passive back-off starts over.
    @discardableResult
    func recordConnectSuccess() -> HealthStateMachine.Transition? {
        // Only write when there is something to reset: the shared cache line stays clean otherwise.
        guard !self.isActivelyChecked, self.consecutiveFailures.load(ordering: .relaxed) != 0 else { return nil }
        self.consecutiveFailures.store(0, ordering: .relaxed)
        self.downUntilNanos.store(0, ordering: .relaxed)
        return .becameHealthy
    }

    /// A request saw the connection reset before any response: one failure by the flip rule.
    @discardableResult
    func recordResetBeforeResponse() -> HealthStateMachine.Transition? {
        guard self.isActivelyChecked else { return nil }
        return self.updateMachine { $0.checkFailed() }
    }

    /// An active check finished.
    @discardableResult
    func recordCheck(_ result: CheckResult) -> HealthStateMachine.Transition? {
        self.updateRecord { record in
            record.lastCheck = result
            return result.passed ? record.machine.checkPassed() : record.machine.checkFailed()
        }
    }

    private func updateMachine(
        _ change: (inout HealthStateMachine) -> HealthStateMachine.Transition?
    ) -> HealthStateMachine.Transition? {
        self.updateRecord { record in change(&record.machine) }
    }

    private func updateRecord(
        _ change: (inout HealthRecord) -> HealthStateMachine.Transition?
    ) -> HealthStateMachine.Transition? {
        self.health.withLockedValue { record in
            let transition = change(&record)
            self.healthyFlag.store(record.machine.isHealthy, ordering: .relaxed)
            return transition
        }
    }

    /// 1 s, 2 s, 4 s ... capped at 30 s.
    static func backoff(afterFailures failures: Int) -> TimeAmount {
        let shift = min(max(failures - 1, 0), 5)
        return min(.nanoseconds(Self.initialBackoff.nanoseconds << shift), Self.maximumBackoff)
    }
}

/// Opening order of every tunnel in the process, so a drain can tell which is oldest.
private let tunnelSequence = Atomic<UInt64>(0)

extension Backend: CustomStringConvertible {
    public var description: String { self.label }
}

/// The opaque, deterministic token that names a backend in an affinity cookie.
enum AffinityToken {
    /// 16 hex digits of FNV-1a over pool and address: stable across restarts and instances with the
    /// same config, and not the address itself.
    static func make(pool: String, backend: String) -> String {
        let hash = Self.fnv1a64(pool + "\u{1F}" + backend)
        let hex = String(hash, radix: 16)
        return String(repeating: "0", count: 16 - hex.count) + hex
    }

    /// FNV-1a, 64 bits: deterministic (unlike `Hasher`, which is seeded per process).
    static func fnv1a64(_ text: String) -> UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in text.utf8 {
            hash ^= UInt64(byte)
            hash = hash &* 0x0000_0100_0000_01B3
        }
        return hash
    }
}
