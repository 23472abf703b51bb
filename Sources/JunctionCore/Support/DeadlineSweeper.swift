import NIOCore

/// Something with a deadline that the loop's sweeper checks: a connection's setup and its front
/// (header, idle, linger, GOAWAY and shutdown deadlines), requests (response timeout), tunnel ends
/// (idle timeout, close grace), the upstream connection pool (idle expiry).
protocol DeadlineTracked: AnyObject {
    /// When `deadlinePassed` should run; `.distantFuture` for never.
    var deadline: NIODeadline { get }
    /// Position in the sweeper's list, managed by the sweeper (-1 when not registered).
    var sweeperSlot: Int { get set }
    /// The deadline passed; the object decides what that means (and usually moves its deadline).
    func deadlinePassed(now: NIODeadline)
}

/// One event loop's timeouts, checked by a single repeating task instead of a scheduled task per
/// request: scheduling and cancelling a NIO task per request costs two allocations and a heap
/// update, and thousands of tunnels would each hold one. Deadlines are honoured to within
/// `resolution`.
final class DeadlineSweeper {
    /// How often deadlines are checked.
    static let resolution = TimeAmount.milliseconds(250)

    private let eventLoop: EventLoop
    private var tracked: [any DeadlineTracked] = []
    private var task: Scheduled<Void>?

    init(eventLoop: EventLoop) {
        self.eventLoop = eventLoop
    }

    /// Starts checking `item` until `unregister`.
    func register(_ item: any DeadlineTracked) {
        guard item.sweeperSlot < 0 else { return }
        item.sweeperSlot = self.tracked.count
        self.tracked.append(item)
        if self.task == nil {
            self.schedule()
        }
    }

    /// Stops checking `item`.
    func unregister(_ item: any DeadlineTracked) {
        let slot = item.sweeperSlot
        guard slot >= 0, slot < self.tracked.count, self.tracked[slot] === item else { return }
        let last = self.tracked.removeLast()
        if slot < self.tracked.count {
            self.tracked[slot] = last
            last.sweeperSlot = slot
        }
        item.sweeperSlot = -1
        if self.tracked.isEmpty {
            self.task?.cancel()
            self.task = nil
        }
    }

    /// The number of tracked items (for tests and status).
    var count: Int { self.tracked.count }

    private func schedule() {
        // The task holds the sweeper only while something is tracked: it is cancelled when the
        // last item leaves.
        self.task = self.eventLoop.assumeIsolated().scheduleTask(in: Self.resolution) {
            self.task = nil
            self.sweep()
            // A callback that registered something has already scheduled the next sweep.
            if !self.tracked.isEmpty && self.task == nil { self.schedule() }
        }
    }

    private func sweep() {
        let now = NIODeadline.now()
        // Collect first: a callback may unregister itself or others, which reorders the array.
        var due: [any DeadlineTracked] = []
        for item in self.tracked where item.deadline <= now {
            due.append(item)
        }
        for item in due where item.sweeperSlot >= 0 && item.deadline <= now {
            item.deadlinePassed(now: now)
        }
    }
}
