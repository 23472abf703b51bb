import NIOCore
import Testing

@testable import JunctionCore

/// An HTTP/1.1 connection after its setup, driven without a channel: requests, keep-alive,
/// pipelining, linger, the upgrade, a graceful shutdown, and every state's deadline.
@Suite("HTTP/1.1 front state machine")
struct HTTP1FrontStateMachineTests {
    typealias Machine = HTTP1FrontStateMachine

    static func at(_ seconds: Double) -> NIODeadline {
        ClientConnectionStateMachineTests.at(seconds)
    }

    static let timeouts = Machine.Timeouts(
        header: .seconds(10),
        idle: .seconds(75),
        shutdownGrace: .seconds(30),
        linger: .seconds(2)
    )

    /// A connection accepted at 0 whose setup handed it over (the header deadline from accept).
    static func machine() -> Machine {
        Machine(timeouts: Self.timeouts, headerDeadline: Self.at(10))
    }

    @Test("408 at the first request's header deadline from accept; keep-alive idle; a later head's own deadline")
    func deadlines() {
        var first = Self.machine()
        #expect(first.deadline == Self.at(10), "the setup's deadline goes on")
        let due0 = first.deadlinePassed(now: Self.at(10))
        #expect(due0 == .requestTimeout)

        var machine = Self.machine()
        let head = machine.headArrived()
        #expect(head == .process)
        #expect(machine.deadline == .distantFuture, "the request times its exchange")
        machine.requestEnded()
        let keepsAlive = machine.responseStarting(requestWantsClose: false)
        #expect(keepsAlive)
        let ended = machine.responseEnded(now: Self.at(20))
        #expect(ended == .keepAlive)
        #expect(machine.deadline == Self.at(95), "client_idle_timeout between requests")
        machine.bytesArrived(now: Self.at(30))
        #expect(machine.deadline == Self.at(40), "part of a head: client_header_timeout from its first byte")
        machine.bytesArrived(now: Self.at(35))
        #expect(machine.deadline == Self.at(40), "more of the same head does not move it")
        let due = machine.deadlinePassed(now: Self.at(40))
        #expect(due == .requestTimeout)

        var idle = Self.machine()
        _ = idle.headArrived()
        idle.requestEnded()
        _ = idle.responseStarting(requestWantsClose: false)
        _ = idle.responseEnded(now: Self.at(1))
        let due2 = idle.deadlinePassed(now: Self.at(76))
        #expect(due2 == .close, "idle: closed without an answer")
    }

    @Test("Keep-alive, pipelining, close when asked, when quiescing or when the body was not read")
    func responses() {
        var machine = Self.machine()
        let head = machine.headArrived()
        #expect(head == .process)
        let head2 = machine.headArrived()
        #expect(head2 == .queue, "a pipelined request waits")
        machine.requestEnded()
        let keepsAlive = machine.responseStarting(requestWantsClose: false)
        #expect(keepsAlive)
        let ended = machine.responseEnded(now: Self.at(1))
        #expect(ended == .keepAlive)

        var asked = Self.machine()
        _ = asked.headArrived()
        asked.requestEnded()
        let keepsAlive2 = asked.responseStarting(requestWantsClose: true)
        #expect(!keepsAlive2)
        let ended2 = asked.responseEnded(now: Self.at(1))
        #expect(ended2 == .close)

        var early = Self.machine()
        _ = early.headArrived()
        let keepsAlive3 = early.responseStarting(requestWantsClose: false)
        #expect(!keepsAlive3, "answered before the body ended")
        let ended3 = early.responseEnded(now: Self.at(1))
        #expect(ended3 == .linger)
        #expect(early.deadline == Self.at(3), "lingers for 2 s")
        #expect(early.isLingering)
        let head3 = early.headArrived()
        #expect(head3 == .drop)
        let lingerDone = early.lingerDone()
        #expect(lingerDone)
        #expect(early.state == .closed)

        var lingerTimeout = Self.machine()
        _ = lingerTimeout.headArrived()
        _ = lingerTimeout.responseStarting(requestWantsClose: false)
        _ = lingerTimeout.responseEnded(now: Self.at(1))
        let due = lingerTimeout.deadlinePassed(now: Self.at(3))
        #expect(due == .close)

        var oneZero = Self.machine()
        _ = oneZero.headArrived()
        oneZero.requestEnded()
        let keepsAlive4 = oneZero.responseStarting(requestWantsClose: false)
        #expect(keepsAlive4)
        oneZero.responseMustClose()
        let ended4 = oneZero.responseEnded(now: Self.at(1))
        #expect(ended4 == .close)

        var draining = Self.machine()
        _ = draining.headArrived()
        let quiesced = draining.quiesce(now: Self.at(5))
        #expect(quiesced == .finish, "busy: finish first")
        draining.requestEnded()
        let keepsAlive5 = draining.responseStarting(requestWantsClose: false)
        #expect(!keepsAlive5)
        let ended5 = draining.responseEnded(now: Self.at(6))
        #expect(ended5 == .close)

        var startedBefore = Self.machine()
        _ = startedBefore.headArrived()
        startedBefore.requestEnded()
        let keepsAlive6 = startedBefore.responseStarting(requestWantsClose: false)
        #expect(keepsAlive6, "head out with keep-alive")
        _ = startedBefore.quiesce(now: Self.at(5))
        let ended6 = startedBefore.responseEnded(now: Self.at(6))
        #expect(ended6 == .close, "but the shutdown ends it")
    }

    @Test("An upgraded connection is HTTP no longer: heads are dropped, nothing is timed here")
    func upgraded() {
        var machine = Self.machine()
        _ = machine.headArrived()
        machine.upgraded()
        #expect(machine.state == .upgraded)
        #expect(machine.deadline == .distantFuture, "the tunnel times itself")
        let head = machine.headArrived()
        #expect(head == .drop)
        let quiesced = machine.quiesce(now: Self.at(100))
        #expect(quiesced == .finish, "the tunnel's ends take the shutdown grace")
    }

    @Test("Once closed, events change nothing and nothing is timed")
    func closedIgnoresEverything() {
        var machine = Self.machine()
        machine.closed()
        let head = machine.headArrived()
        #expect(head == .drop)
        machine.requestEnded()
        let keepsAlive = machine.responseStarting(requestWantsClose: false)
        #expect(!keepsAlive)
        let lingerDone = machine.lingerDone()
        #expect(!lingerDone)
        let quiesced = machine.quiesce(now: Self.at(2))
        #expect(quiesced == .finish)
        #expect(machine.state == .closed)
        expectNothingTimed(machine, nothing: .none)
    }

    /// A machine in each state, built by driving it there.
    static func inState(_ name: String) -> Machine {
        var machine = Self.machine()
        switch name {
        case "awaitingFirstRequest":
            break
        case "active", "idle", "receivingHead", "lingering", "upgraded":
            _ = machine.headArrived()
            if name == "upgraded" {
                machine.upgraded()
            } else if name != "active" {
                if name != "lingering" { machine.requestEnded() }
                _ = machine.responseStarting(requestWantsClose: false)
                _ = machine.responseEnded(now: Self.at(1))
                if name == "receivingHead" { machine.bytesArrived(now: Self.at(2)) }
            }
        default:
            machine.closed()
        }
        return machine
    }

    @Test(
        "Every state: its deadline, what the deadline does, what a graceful shutdown does",
        arguments: [
            ("awaitingFirstRequest", Self.at(10), Machine.DeadlineAction.requestTimeout, Machine.QuiesceAction.close),
            ("active", .distantFuture, .none, .finish),
            ("idle", Self.at(76), .close, .close),
            ("receivingHead", Self.at(12), .requestTimeout, .finish),
            ("lingering", Self.at(3), .close, .finish),
            ("upgraded", .distantFuture, .none, .finish),
            ("closed", .distantFuture, .none, .finish),
        ] as [(String, NIODeadline, Machine.DeadlineAction, Machine.QuiesceAction)]
    )
    func everyState(
        name: String,
        deadline: NIODeadline,
        onDeadline: Machine.DeadlineAction,
        onQuiesce: Machine.QuiesceAction
    ) {
        expectDeadline(Self.inState(name), name, at: deadline, does: onDeadline, nothing: .none)

        var quiescing = Self.inState(name)
        let quiesced = quiescing.quiesce(now: Self.at(50))
        #expect(quiesced == onQuiesce, "\(name)")
        #expect(quiescing.quiescing)
        if quiescing.state != .closed && quiescing.state != .upgraded {
            #expect(quiescing.deadline <= Self.at(80), "\(name): closed within the grace at the latest")
        }
    }

    @Test(
        "An upgrade's hand-over: a first request on its way is served with Connection: close; idle closes; busy finishes"
    )
    func handOver() {
        var fresh = Self.machine()
        #expect(fresh.handOver(now: Self.at(1)) == .finish, "accepted, request on its way: wait for it")
        #expect(fresh.deadline == Self.at(10), "still the header deadline from accept")
        _ = fresh.headArrived()
        fresh.requestEnded()
        let keepsAlive = fresh.responseStarting(requestWantsClose: false)
        #expect(!keepsAlive, "answered with Connection: close")
        #expect(fresh.responseEnded(now: Self.at(2)) == .close)

        var late = Machine(timeouts: Self.timeouts, headerDeadline: Self.at(100))
        _ = late.handOver(now: Self.at(1))
        #expect(late.deadline == Self.at(31), "never later than the shutdown grace")

        var idle = Self.machine()
        _ = idle.headArrived()
        idle.requestEnded()
        _ = idle.responseStarting(requestWantsClose: false)
        _ = idle.responseEnded(now: Self.at(2))
        #expect(idle.handOver(now: Self.at(3)) == .close, "an idle keep-alive connection closes, as in a drain")

        var busy = Self.machine()
        _ = busy.headArrived()
        #expect(busy.handOver(now: Self.at(3)) == .finish)
        #expect(busy.deadline == Self.at(33))
        #expect(busy.tunnelCloseBy == .distantFuture, "a WebSocket opening now is the drainer's to close")
        _ = busy.quiesce(now: Self.at(4))
        #expect(busy.tunnelCloseBy == Self.at(33), "a shutdown after it: the grace reaches the tunnel")

        var draining = Self.machine()
        _ = draining.headArrived()
        _ = draining.quiesce(now: Self.at(3))
        #expect(draining.tunnelCloseBy == Self.at(33), "a plain drain: the tunnel gets the grace")
    }
}
