/// A backend's health by pingora's flip rule: it starts healthy, goes down after
/// `unhealthyThreshold` consecutive failed checks and comes back after `healthyThreshold`
/// consecutive passes. A passive failure (refused or timed-out connect) takes it down at once;
/// only active passes bring it back.
///
/// Pure: `HealthChecker` and the data path feed it observations and act on the transitions.
struct HealthStateMachine: Equatable {
    /// A change of state worth logging.
    enum Transition: Equatable {
        case becameHealthy
        case becameUnhealthy
    }

    let healthyThreshold: Int
    let unhealthyThreshold: Int
    private(set) var isHealthy = true
    private(set) var consecutivePasses = 0
    private(set) var consecutiveFailures = 0

    init(healthyThreshold: Int, unhealthyThreshold: Int, isHealthy: Bool = true) {
        self.healthyThreshold = max(1, healthyThreshold)
        self.unhealthyThreshold = max(1, unhealthyThreshold)
        self.isHealthy = isHealthy
    }

    /// The machine for a pool's health check (thresholds of 1 when there is none).
    init(check: HealthCheckConfig?, isHealthy: Bool = true) {
        self.init(
            healthyThreshold: check?.healthyThreshold ?? 1,
            unhealthyThreshold: check?.unhealthyThreshold ?? 1,
            isHealthy: isHealthy
        )
    }

    /// An active check passed.
    mutating func checkPassed() -> Transition? {
        self.consecutiveFailures = 0
        self.consecutivePasses += 1
        if !self.isHealthy && self.consecutivePasses >= self.healthyThreshold {
            self.isHealthy = true
            return .becameHealthy
        }
        return nil
    }

    /// An active check failed, or a request saw the connection reset before any response.
    mutating func checkFailed() -> Transition? {
        self.consecutivePasses = 0
        self.consecutiveFailures += 1
        if self.isHealthy && self.consecutiveFailures >= self.unhealthyThreshold {
            self.isHealthy = false
            return .becameUnhealthy
        }
        return nil
    }

    /// A connection to the backend was refused or timed out: down now.
    mutating func connectFailed() -> Transition? {
        self.consecutivePasses = 0
        self.consecutiveFailures += 1
        if self.isHealthy {
            self.isHealthy = false
            return .becameUnhealthy
        }
        return nil
    }
}
