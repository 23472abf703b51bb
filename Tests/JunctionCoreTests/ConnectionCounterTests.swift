import Synchronization
import Testing

@testable import JunctionCore

/// A listener's connection count: the limit's wake-up and the drain's "all closed".
@Suite("Connection counter")
struct ConnectionCounterTests {
    /// Counts calls of a callback.
    final class Calls: Sendable {
        let count = Atomic<Int>(0)
        var value: Int { self.count.load(ordering: .relaxed) }
        func callAsFunction() { self.count.add(1, ordering: .relaxed) }
    }

    @Test(
        "The held accept is woken only by a close that brings the count under the limit",
        arguments: [
            // (limit, open before the close, wake-ups expected)
            (0, 5, 0),  // no limit: nothing to wake
            (3, 3, 1),  // at the limit: back under it
            (3, 4, 1),  // over (a burst of accepts): the first close already wakes
            (3, 2, 0),  // under already: nothing was held
        ]
    )
    func underLimit(limit: Int, open: Int, wakes: Int) {
        let counter = ConnectionCounter(limit: limit)
        let calls = Calls()
        counter.whenUnderLimit { calls() }
        for _ in 0..<open { counter.connectionOpened() }
        counter.connectionClosed()
        #expect(calls.value == wakes)
        #expect(counter.value == open - 1)
    }

    @Test("Draining: 'all closed' fires once, when the last connection goes, and at once when none is open")
    func allClosed() {
        let counter = ConnectionCounter()
        let calls = Calls()
        counter.connectionOpened()
        counter.connectionOpened()
        counter.startDraining()
        counter.whenAllClosed { calls() }
        counter.connectionClosed()
        #expect(calls.value == 0, "one is still open")
        counter.connectionClosed()
        #expect(calls.value == 1)

        let idle = ConnectionCounter()
        let idleCalls = Calls()
        idle.startDraining()
        idle.whenAllClosed { idleCalls() }
        #expect(idleCalls.value == 1, "nothing open: done at once")
        idle.connectionOpened()
        idle.connectionClosed()
        #expect(idleCalls.value == 1, "fires once")
    }

    @Test("Without a drain, the last close does not fire 'all closed'")
    func notDraining() {
        let counter = ConnectionCounter()
        let calls = Calls()
        counter.connectionOpened()
        counter.whenAllClosed { calls() }
        counter.connectionClosed()
        #expect(calls.value == 0)
    }
}
