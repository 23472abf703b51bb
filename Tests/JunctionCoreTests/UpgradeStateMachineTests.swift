import Testing

@testable import JunctionCore

/// The old process's side of an upgrade, without I/O: what a SIGUSR2 does in each state, what the
/// new process's outcome means, and what a shutdown does meanwhile.
@Suite("Upgrade state machine")
struct UpgradeStateMachineTests {
    typealias Machine = UpgradeStateMachine

    static func machine(_ state: String) -> Machine {
        var machine = Machine()
        if state != "booting" { machine.ready() }
        switch state {
        case "booting", "serving":
            break
        case "starting":
            _ = machine.upgradeRequested(pid: 100)
        case "spawned":
            _ = machine.upgradeRequested(pid: 100)
            _ = machine.spawned(pid: 200)
        case "handedOver":
            _ = machine.upgradeRequested(pid: 100)
            _ = machine.spawned(pid: 200)
            _ = machine.finished(.ready(pid: 200))
        case "stopping":
            _ = machine.shutdownStarted()
        default:
            Issue.record("unknown state \(state)")
        }
        return machine
    }

    @Test(
        "A SIGUSR2 in each state: start, or refuse saying why",
        arguments: [
            ("booting", Machine.SignalAction.refuse("still starting: the listeners are not all bound yet")),
            ("serving", .start),
            ("starting", .refuse("an upgrade is already under way")),
            ("spawned", .refuse("an upgrade is already under way (new process pid 200)")),
            ("handedOver", .refuse("this process already handed over to pid 200 and is draining")),
            ("stopping", .refuse("shutting down")),
        ] as [(String, Machine.SignalAction)]
    )
    func signal(state: String, action: Machine.SignalAction) {
        var machine = Self.machine(state)
        let before = machine.state
        #expect(machine.upgradeRequested(pid: 100) == action)
        if case .refuse = action { #expect(machine.state == before, "a refusal changes nothing") }
    }

    @Test("While the process this one replaced still drains, no second upgrade starts")
    func predecessorDraining() {
        var machine = Self.machine("serving")
        #expect(
            machine.upgradeRequested(pid: 100, predecessor: 50)
                == .refuse("the process this one replaced (pid 50) is still draining; upgrade again once it has exited")
        )
        #expect(machine.state == .serving)
        #expect(machine.upgradeRequested(pid: 100, predecessor: nil) == .start)
    }

    @Test("PID 1 cannot hand over: its exit would end the container")
    func processOne() {
        var machine = Self.machine("serving")
        guard case .refuse(let reason) = machine.upgradeRequested(pid: 1) else {
            Issue.record("PID 1 started an upgrade")
            return
        }
        #expect(reason.contains("PID 1") && reason.contains("replace the container"))
        #expect(machine.state == .serving)
    }

    @Test(
        "The new process's outcome in each state",
        arguments: [
            (
                "spawned", Machine.Outcome.ready(pid: 200), Machine.OutcomeAction.handOver(to: 200),
                Machine.State.handedOver(to: 200)
            ),
            ("spawned", .failed(pid: 200, reason: "exited with status 1"), .carryOn("exited with status 1"), .serving),
            ("starting", .failed(pid: nil, reason: "cannot start /x"), .carryOn("cannot start /x"), .serving),
            ("stopping", .ready(pid: 200), .stopChild(pid: 200), .stopping),
            ("stopping", .failed(pid: 200, reason: "killed"), .none, .stopping),
            ("serving", .ready(pid: 200), .none, .serving),
            ("booting", .failed(pid: nil, reason: "x"), .none, .booting),
            ("handedOver", .failed(pid: 300, reason: "late"), .none, .handedOver(to: 200)),
        ] as [(String, Machine.Outcome, Machine.OutcomeAction, Machine.State)]
    )
    func outcome(state: String, outcome: Machine.Outcome, action: Machine.OutcomeAction, after: Machine.State) {
        var machine = Self.machine(state)
        #expect(machine.finished(outcome) == action)
        #expect(machine.state == after)
    }

    @Test("After a failed start the next SIGUSR2 starts again")
    func retryAfterFailure() {
        var machine = Self.machine("spawned")
        _ = machine.finished(.failed(pid: 200, reason: "exited with status 3"))
        #expect(machine.upgradeRequested(pid: 100) == .start)
    }

    @Test(
        "A shutdown in each state: STOPPING=1 unless handed over; a new process still starting is stopped",
        arguments: [
            ("booting", Machine.ShutdownAction.notifyStopping),
            ("serving", .notifyStopping),
            ("starting", .notifyStopping),
            ("spawned", .notifyStoppingAndStopChild(pid: 200)),
            ("handedOver", .none),
            ("stopping", .none),
        ] as [(String, Machine.ShutdownAction)]
    )
    func shutdown(state: String, action: Machine.ShutdownAction) {
        var machine = Self.machine(state)
        #expect(machine.shutdownStarted() == action)
        #expect(machine.state == .stopping)
    }

    @Test("A hand-over systemd could not be told of is undone: this process serves on and may upgrade again")
    func handOverFailed() {
        var machine = Self.machine("handedOver")
        machine.handOverFailed()
        #expect(machine.state == .serving)
        #expect(machine.upgradeRequested(pid: 100) == .start)
        var stopping = Self.machine("stopping")
        stopping.handOverFailed()
        #expect(stopping.state == .stopping)
    }

    @Test("A process spawned after the shutdown began is stopped at once")
    func spawnedDuringShutdown() {
        var machine = Self.machine("starting")
        _ = machine.shutdownStarted()
        #expect(machine.spawned(pid: 200) == .stopChild(pid: 200))
    }
}
