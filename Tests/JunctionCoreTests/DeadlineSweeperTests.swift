import NIOCore
import NIOEmbedded
import Testing

@testable import JunctionCore

/// The per-loop sweeper that runs every timeout.
@Suite("Deadline sweeper")
struct DeadlineSweeperTests {
    /// A tracked item that counts its expiries.
    final class Probe: DeadlineTracked {
        var deadline: NIODeadline
        var sweeperSlot = -1
        var calls = 0
        var onPass: (() -> Void)?

        init(deadline: NIODeadline) {
            self.deadline = deadline
        }

        func deadlinePassed(now: NIODeadline) {
            self.calls += 1
            let action = self.onPass
            self.onPass = nil
            action?()
        }
    }

    @Test("One sweep per tick, also when a callback registers something during the sweep")
    func oneSweepChain() {
        let loop = EmbeddedEventLoop()
        let sweeper = DeadlineSweeper(eventLoop: loop)
        let due = Probe(deadline: .uptimeNanoseconds(0))
        let spawner = Probe(deadline: .uptimeNanoseconds(0))
        // As a response timeout does when it retries on another backend: register during the sweep.
        spawner.onPass = { sweeper.register(Probe(deadline: .distantFuture)) }
        sweeper.register(due)
        sweeper.register(spawner)
        for _ in 0..<4 {
            loop.advanceTime(by: DeadlineSweeper.resolution)
        }
        #expect(due.calls == 4, "a second chain of sweeps would have called it \(due.calls) times")
        #expect(sweeper.count == 3)
    }

    @Test("Unregistering during the sweep, even other items, skips them safely")
    func unregisterDuringSweep() {
        let loop = EmbeddedEventLoop()
        let sweeper = DeadlineSweeper(eventLoop: loop)
        let first = Probe(deadline: .uptimeNanoseconds(0))
        let second = Probe(deadline: .uptimeNanoseconds(0))
        first.onPass = {
            sweeper.unregister(first)
            sweeper.unregister(second)
        }
        second.onPass = { sweeper.unregister(first) }
        sweeper.register(first)
        sweeper.register(second)
        loop.advanceTime(by: DeadlineSweeper.resolution)
        #expect(first.calls == 1)
        #expect(second.calls == 0, "unregistered before its turn in the same sweep")
        #expect(sweeper.count == 0)
        loop.advanceTime(by: DeadlineSweeper.resolution * 4)
        #expect(first.calls == 1)
    }
}
