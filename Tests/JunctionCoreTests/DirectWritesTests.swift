import Testing

@testable import JunctionCore

/// `DirectWrites`: a tunnel end writes straight to its socket only while none of its NIO writes is
/// in flight.
@Suite("Direct writes of a tunnel end")
struct DirectWritesTests {
    /// One step and what follows from it.
    enum Step {
        case write(DirectWrites.Route)
        case fellBack
        case completed
        case stop
    }

    @Test(
        "Direct only once every tracked NIO write is out; a partial send goes back to the queue",
        arguments: [
            (
                "the barrier holds writes in the queue until it is out",
                true,
                [
                    Step.write(.queue(tracked: true)), .completed, .write(.queue(tracked: true)), .completed,
                    .completed, .write(.socket),
                ],
                DirectWrites.State.direct
            ),
            (
                "a partial send queues the rest; later writes queue behind it, in order",
                true,
                [.completed, .write(.socket), .fellBack, .write(.queue(tracked: true)), .write(.queue(tracked: true))],
                .queued(inFlight: 3)
            ),
            (
                "direct again only after the last of several queued writes",
                true,
                [
                    .completed, .write(.socket), .fellBack, .write(.queue(tracked: true)), .completed,
                    .write(.queue(tracked: true)), .completed, .completed, .write(.socket),
                ],
                .direct
            ),
            (
                "a TLS or socketless end never writes directly",
                false,
                [.write(.queue(tracked: false)), .completed, .fellBack, .write(.queue(tracked: false))],
                .off
            ),
            (
                "a closing end stops; completions after it change nothing",
                true,
                [.completed, .write(.socket), .fellBack, .stop, .completed, .write(.queue(tracked: false))],
                .off
            ),
            (
                "a completion seen while direct is ignored (it cannot be counted twice)",
                true,
                [.completed, .completed, .write(.socket)],
                .direct
            ),
        ]
    )
    func table(label: String, eligible: Bool, steps: [Step], end: DirectWrites.State) {
        // eligible: a plain socket that may have bytes queued (a tunnel's), so behind a barrier.
        var writes = DirectWrites()
        if eligible { writes.enable(socket: 3) }
        #expect(writes.state == (eligible ? .queued(inFlight: 1) : .off), "\(label)")
        for (index, step) in steps.enumerated() {
            switch step {
            case .write(let expected):
                #expect(writes.route() == expected, "\(label): step \(index)")
            case .fellBack: writes.fellBack()
            case .completed: writes.completed()
            case .stop: writes.stop()
            }
        }
        #expect(writes.state == end, "\(label)")
    }

    @Test("Off until enabled; enabled, the socket is kept and the barrier is in flight")
    func enabling() {
        var writes = DirectWrites()
        #expect(writes.state == .off)
        #expect(writes.route() == .queue(tracked: false))
        writes.enable(socket: 7)
        #expect(writes.socket == 7)
        #expect(writes.state == .queued(inFlight: 1))
        writes.completed()
        #expect(writes.route() == .socket)
    }
}
