import NIOCore
import Testing

@testable import JunctionCore

/// A connection state machine with one deadline at a time, as the every-state tables test it.
protocol TimedStateMachine {
    associatedtype DeadlineAction: Equatable
    var deadline: NIODeadline { get }
    mutating func deadlinePassed(now: NIODeadline) -> DeadlineAction
}

extension HTTP1FrontStateMachine: TimedStateMachine {}
extension HTTP2ConnectionStateMachine: TimedStateMachine {}

/// The deadline half of an every-state table row: `machine` (in the state `name`) has `deadline`;
/// nothing happens a moment before it, `onDeadline` at it (`nothing` being the action for "none"),
/// and the deadline moves on afterwards.
func expectDeadline<Machine: TimedStateMachine>(
    _ machine: Machine,
    _ name: String,
    at deadline: NIODeadline,
    does onDeadline: Machine.DeadlineAction,
    nothing: Machine.DeadlineAction,
    sourceLocation: SourceLocation = #_sourceLocation
) {
    var timed = machine
    #expect(timed.deadline == deadline, "\(name)", sourceLocation: sourceLocation)
    if deadline != .distantFuture {
        let early = timed.deadlinePassed(now: deadline - .milliseconds(1))
        #expect(early == nothing, "\(name): nothing before the deadline", sourceLocation: sourceLocation)
    }
    let far = ClientConnectionStateMachineTests.at(100_000)
    let due = timed.deadlinePassed(now: deadline == .distantFuture ? far : deadline)
    #expect(due == onDeadline, "\(name)", sourceLocation: sourceLocation)
    let origin = ClientConnectionStateMachineTests.at(0)
    #expect(
        timed.deadline > (deadline == .distantFuture ? origin : deadline),
        "\(name): the deadline moved on",
        sourceLocation: sourceLocation
    )
}

/// A closed machine: nothing is due, ever.
func expectNothingTimed<Machine: TimedStateMachine>(
    _ machine: Machine,
    nothing: Machine.DeadlineAction,
    sourceLocation: SourceLocation = #_sourceLocation
) {
    var closed = machine
    let due = closed.deadlinePassed(now: ClientConnectionStateMachineTests.at(1000))
    #expect(due == nothing, sourceLocation: sourceLocation)
    #expect(closed.deadline == .distantFuture, sourceLocation: sourceLocation)
}
