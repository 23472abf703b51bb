/// The old process's side of an upgrade (SIGUSR2), without I/O: whether a signal starts one, what
/// the new process's outcome means, and what a shutdown does to an upgrade under way.
/// `UpgradeCoordinator` carries out the actions.
struct UpgradeStateMachine: Equatable {
    enum State: Equatable {
        /// Still binding its listeners: nothing to hand over yet.
        case booting
        /// Serving, no upgrade under way.
        case serving
        /// A new process is starting (`pid` once spawned) and has not said it is ready.
        case starting(pid: Int32?)
        /// The new process serves; this one drains and exits.
        case handedOver(to: Int32)
        /// Shutting down (SIGTERM/SIGINT, or the end of the drain after a hand-over).
        case stopping
    }

    /// What to do with a SIGUSR2.
    enum SignalAction: Equatable {
        /// Start the new process.
        case start
        /// Refuse, saying why in one line.
        case refuse(String)
    }

    /// How the new process's start ended.
    enum Outcome: Equatable {
        /// It wrote `ready` on its pipe.
        case ready(pid: Int32)
        /// It could not be spawned, exited, or was not ready in time; `reason` says which, with
        /// the exit status.
        case failed(pid: Int32?, reason: String)
    }

    /// What an outcome means.
    enum OutcomeAction: Equatable {
        /// Tell systemd the new main pid, stop accepting, drain, exit.
        case handOver(to: Int32)
        /// Log why and go on serving as if nothing happened.
        case carryOn(String)
        /// Shutting down meanwhile: stop the new process too (it would serve alone, unasked).
        case stopChild(pid: Int32)
        case none
    }

    /// What a shutdown does.
    enum ShutdownAction: Equatable {
        /// Say `STOPPING=1` to systemd.
        case notifyStopping
        /// Say `STOPPING=1`, and stop the new process still starting.
        case notifyStoppingAndStopChild(pid: Int32)
        /// Nothing: this process handed over (systemd's main process is the new one).
        case none
    }

    private(set) var state = State.booting

    /// Every listener is bound and accepting.
    mutating func ready() {
        if self.state == .booting { self.state = .serving }
    }

    /// A SIGUSR2 arrived; `pid` is this process's (PID 1 cannot hand over: its exit would end the
    /// container or the system with the new process), `predecessor` the process this one replaced
    /// while it still drains (one upgrade at a time: a signal sent to every process of the service
    /// must not start a second).
    mutating func upgradeRequested(pid: Int32, predecessor: Int32? = nil) -> SignalAction {
        switch self.state {
        case .booting:
            return .refuse("still starting: the listeners are not all bound yet")
        case .serving where pid == 1:
            return .refuse(
                "running as PID 1 (a container's init): the new process would end with this one; replace the container instead"
            )
        case .serving where predecessor != nil:
            return .refuse(
                "the process this one replaced (pid \(predecessor!)) is still draining; upgrade again once it has exited"
            )
        case .serving:
            self.state = .starting(pid: nil)
            return .start
        case .starting(let child):
            return .refuse("an upgrade is already under way" + (child.map { " (new process pid \($0))" } ?? ""))
        case .handedOver(let child):
            return .refuse("this process already handed over to pid \(child) and is draining")
        case .stopping:
            return .refuse("shutting down")
        }
    }

    /// The new process was spawned: `.stopChild` when a shutdown began meanwhile.
    mutating func spawned(pid: Int32) -> OutcomeAction {
        switch self.state {
        case .starting:
            self.state = .starting(pid: pid)
            return .none
        case .stopping:
            return .stopChild(pid: pid)
        case .booting, .serving, .handedOver:
            return .none
        }
    }

    /// The new process's start ended.
    mutating func finished(_ outcome: Outcome) -> OutcomeAction {
        switch (self.state, outcome) {
        case (.starting, .ready(let pid)):
            self.state = .handedOver(to: pid)
            return .handOver(to: pid)
        case (.starting, .failed(_, let reason)):
            self.state = .serving
            return .carryOn(reason)
        case (.stopping, .ready(let pid)):
            return .stopChild(pid: pid)
        case (.booting, _), (.serving, _), (.handedOver, _), (.stopping, .failed):
            return .none
        }
    }

    /// The hand-over could not be completed (systemd could not be told the new main pid): the new
    /// process is stopped and this one serves on.
    mutating func handOverFailed() {
        if case .handedOver = self.state { self.state = .serving }
    }

    /// SIGTERM/SIGINT, or the drain after a hand-over ended.
    mutating func shutdownStarted() -> ShutdownAction {
        defer { self.state = .stopping }
        switch self.state {
        case .booting, .serving, .starting(pid: nil):
            return .notifyStopping
        case .starting(let pid?):
            return .notifyStoppingAndStopChild(pid: pid)
        case .handedOver, .stopping:
            return .none
        }
    }
}
