import NIOCore
import Testing

@testable import JunctionCore

/// An HTTP/2 connection after its setup, driven without a channel: streams, the idle GOAWAY, the
/// graceful GOAWAY and its PING, the client's GOAWAY, connection errors, every state's deadline.
@Suite("HTTP/2 connection state machine")
struct HTTP2ConnectionStateMachineTests {
    typealias Machine = HTTP2ConnectionStateMachine

    static func at(_ seconds: Double) -> NIODeadline {
        ClientConnectionStateMachineTests.at(seconds)
    }

    /// A connection accepted at 0 whose setup handed it over (the header deadline from accept).
    static func machine() -> Machine {
        Machine(timeouts: .init(idle: .seconds(75), shutdownGrace: .seconds(30)), headerDeadline: Self.at(10))
    }

    @Test("Without a stream: GOAWAY naming none and close at the header deadline from accept")
    func noStream() {
        var machine = Self.machine()
        #expect(machine.deadline == Self.at(10))
        let due = machine.deadlinePassed(now: Self.at(10))
        #expect(due == .sendGoAway(lastStreamID: 0, thenClose: true))
        #expect(machine.state == .closed)
    }

    @Test("Idle: GOAWAY and PING after client_idle_timeout with no open stream; the ack brings the final GOAWAY")
    func idle() {
        var machine = Self.machine()
        machine.streamOpened(1)
        machine.streamOpened(3)
        #expect(machine.deadline == .distantFuture, "streams open: no idle deadline")
        let afterClose = machine.streamClosed(now: Self.at(2))
        #expect(afterClose == .none)
        #expect(machine.deadline == .distantFuture, "one still open")
        let afterClose2 = machine.streamClosed(now: Self.at(3))
        #expect(afterClose2 == .none)
        #expect(machine.deadline == Self.at(78), "no open stream: client_idle_timeout")
        machine.streamOpened(5)
        #expect(machine.deadline == .distantFuture)
        _ = machine.streamClosed(now: Self.at(10))
        let due = machine.deadlinePassed(now: Self.at(85))
        #expect(due == .sendGoAwayAndPing)
        #expect(machine.deadline == Self.at(115), "shutdown_grace from the GOAWAY")
        let afterAck = machine.pingAcked(1234)
        #expect(afterAck == .none, "someone else's PING")
        let afterAck2 = machine.pingAcked(Machine.goAwayPingData)
        #expect(afterAck2 == .sendGoAway(lastStreamID: 5, thenClose: true))
        #expect(machine.state == .closed)
    }

    @Test("A GOAWAY whose PING is never acknowledged is closed when the grace is over")
    func pingNeverAcked() {
        var machine = Self.machine()
        machine.streamOpened(1)
        _ = machine.streamClosed(now: Self.at(0))
        let due = machine.deadlinePassed(now: Self.at(75))
        #expect(due == .sendGoAwayAndPing)
        let due2 = machine.deadlinePassed(now: Self.at(104))
        #expect(due2 == .none)
        let due3 = machine.deadlinePassed(now: Self.at(105))
        #expect(due3 == .close)
    }

    @Test("Shutdown: streams in flight finish after the final GOAWAY; the last one closes the connection")
    func shutdown() {
        var machine = Self.machine()
        machine.streamOpened(1)
        machine.streamOpened(3)
        let quiesced = machine.quiesce(now: Self.at(5))
        #expect(quiesced == .sendGoAwayAndPing)
        machine.streamOpened(5)  // sent before the client saw the GOAWAY: served
        let afterAck = machine.pingAcked(Machine.goAwayPingData)
        #expect(afterAck == .sendGoAway(lastStreamID: 5, thenClose: false))
        let afterClose = machine.streamClosed(now: Self.at(6))
        #expect(afterClose == .none)
        let afterClose2 = machine.streamClosed(now: Self.at(7))
        #expect(afterClose2 == .none)
        let afterClose3 = machine.streamClosed(now: Self.at(8))
        #expect(afterClose3 == .close)
        #expect(machine.state == .closed)

        var idle = Self.machine()
        idle.streamOpened(1)
        _ = idle.streamClosed(now: Self.at(1))
        let quiescedIdle = idle.quiesce(now: Self.at(2))
        #expect(
            quiescedIdle == .sendGoAway(lastStreamID: 1, thenClose: true),
            "no stream open: the final GOAWAY at once"
        )

        var stuck = Self.machine()
        stuck.streamOpened(1)
        _ = stuck.quiesce(now: Self.at(5))
        _ = stuck.pingAcked(Machine.goAwayPingData)
        let due = stuck.deadlinePassed(now: Self.at(35))
        #expect(due == .close, "a stream still open when the grace ends")
    }

    @Test("A connection error closes; the client's GOAWAY closes with its last stream")
    func errors() {
        var failed = Self.machine()
        failed.streamOpened(1)
        let afterError = failed.connectionErrorSent()
        #expect(afterError == .close)
        #expect(failed.state == .closed)

        var leaving = Self.machine()
        leaving.streamOpened(1)
        let afterGoAway = leaving.goAwayReceived()
        #expect(afterGoAway == .none)
        let afterClose = leaving.streamClosed(now: Self.at(1))
        #expect(afterClose == .close)

        var idleLeaving = Self.machine()
        let afterGoAway2 = idleLeaving.goAwayReceived()
        #expect(afterGoAway2 == .close)
    }

    @Test("Once closed, events change nothing and nothing is timed")
    func closedIgnoresEverything() {
        var machine = Self.machine()
        machine.closed()
        machine.streamOpened(1)
        let afterClose = machine.streamClosed(now: Self.at(1))
        #expect(afterClose == .none)
        let afterAck = machine.pingAcked(Machine.goAwayPingData)
        #expect(afterAck == .none)
        let afterGoAway = machine.goAwayReceived()
        #expect(afterGoAway == .none)
        let afterError = machine.connectionErrorSent()
        #expect(afterError == .none)
        let quiesced = machine.quiesce(now: Self.at(2))
        #expect(quiesced == .none)
        #expect(machine.state == .closed)
        expectNothingTimed(machine, nothing: .none)
    }

    /// A machine in each state, built by driving it there.
    static func inState(_ name: String) -> Machine {
        var machine = Self.machine()
        switch name {
        case "awaitingFirstStream":
            break
        case "serving", "servingIdle", "goingAwayPing", "goingAwayFinal":
            machine.streamOpened(1)
            if name == "servingIdle" { _ = machine.streamClosed(now: Self.at(1)) }
            if name.hasPrefix("goingAway") { _ = machine.quiesce(now: Self.at(1)) }
            if name == "goingAwayFinal" { _ = machine.pingAcked(Machine.goAwayPingData) }
        default:
            machine.closed()
        }
        return machine
    }

    @Test(
        "Every state: its deadline, what the deadline does, what a graceful shutdown does",
        arguments: [
            (
                "awaitingFirstStream", Self.at(10), Machine.Action.sendGoAway(lastStreamID: 0, thenClose: true),
                Machine.Action.sendGoAway(lastStreamID: 0, thenClose: true)
            ),
            ("serving", .distantFuture, .none, .sendGoAwayAndPing),
            ("servingIdle", Self.at(76), .sendGoAwayAndPing, .sendGoAway(lastStreamID: 1, thenClose: true)),
            ("goingAwayPing", Self.at(31), .close, .none),
            ("goingAwayFinal", Self.at(31), .close, .none),
            ("closed", .distantFuture, .none, .none),
        ] as [(String, NIODeadline, Machine.Action, Machine.Action)]
    )
    func everyState(name: String, deadline: NIODeadline, onDeadline: Machine.Action, onQuiesce: Machine.Action) {
        expectDeadline(Self.inState(name), name, at: deadline, does: onDeadline, nothing: .none)

        var quiescing = Self.inState(name)
        let quiesced = quiescing.quiesce(now: Self.at(50))
        #expect(quiesced == onQuiesce, "\(name)")
        if quiescing.state != .closed {
            #expect(quiescing.deadline <= Self.at(80), "\(name): closed within the grace at the latest")
        }
    }

    @Test("An upgrade's hand-over: the graceful GOAWAY even without a stream; no grace while tunnels run")
    func handOver() {
        var fresh = Self.machine()
        #expect(fresh.handOver(now: Self.at(1), holdsTunnels: false) == .sendGoAwayAndPing)
        #expect(fresh.state == .goingAway(openStreams: 0, pingOutstanding: true))
        #expect(fresh.deadline == Self.at(31))
        fresh.streamOpened(1)
        #expect(fresh.state == .goingAway(openStreams: 1, pingOutstanding: true), "the first request is served")

        var tunnels = Self.machine()
        tunnels.streamOpened(1)
        tunnels.streamOpened(3)
        #expect(tunnels.handOver(now: Self.at(1), holdsTunnels: true) == .sendGoAwayAndPing)
        #expect(tunnels.deadline == .distantFuture, "the drainer closes the tunnels at its pace")
        #expect(tunnels.deadlinePassed(now: Self.at(1000)) == .none)
        #expect(tunnels.handOver(now: Self.at(2), holdsTunnels: true) == .none)
        #expect(tunnels.streamClosed(now: Self.at(5)) == .none)
        #expect(tunnels.deadline == .distantFuture, "a tunnel still runs")
        #expect(tunnels.streamClosed(now: Self.at(6)) == .none, "the PING is not acknowledged yet")
        #expect(tunnels.deadline == Self.at(36), "the last one gone: the grace from now")
        #expect(tunnels.deadlinePassed(now: Self.at(36)) == .close)

        var closed = Self.machine()
        closed.closed()
        #expect(closed.handOver(now: Self.at(1), holdsTunnels: false) == .none)

        // An extended CONNECT answered after the hand-over: the grace stops while the tunnel runs,
        // and starts again when the last tunnel ends (a request stream may outlive it).
        var pending = Self.machine()
        pending.streamOpened(1)
        pending.streamOpened(3)
        _ = pending.handOver(now: Self.at(1), holdsTunnels: false)
        #expect(pending.deadline == Self.at(31))
        pending.tunnelOpened()
        #expect(pending.deadline == .distantFuture)
        pending.tunnelsGone(now: Self.at(50))
        #expect(pending.deadline == Self.at(80), "a request stream is still open: the grace from now")

        // A shutdown after the hand-over: tunnels get the grace like everything else.
        var stopping = Self.machine()
        stopping.streamOpened(1)
        _ = stopping.handOver(now: Self.at(1), holdsTunnels: true)
        _ = stopping.quiesce(now: Self.at(10))
        #expect(stopping.deadline == Self.at(40))
        stopping.tunnelOpened()
        #expect(stopping.deadline == Self.at(40), "no hand-over any more: the grace holds")
    }
}
