/// Whether a tunnel end may write its partner's bytes straight to its socket with `send(2)`
/// instead of through NIO's write queue, and when it must go back to the queue.
///
/// A direct write is one system call where NIO's path is an outbound pipeline walk, a pending-write
/// record and a flush walk; on a relay of small messages that path is a third of Junction's user
/// time. It is only right while nothing of this channel waits in NIO's queue: bytes written
/// directly would overtake them. So:
/// - an end starts `queued`, with one tracked write in flight: an empty write through NIO behind
///   whatever HTTP wrote before the tunnel (the 101, a request head). Its completion means NIO's
///   queue is empty.
/// - `direct`: every write tries `send(2)`. When the kernel takes it all, nothing else happens.
///   When it takes part or nothing (EAGAIN, or an error NIO will meet and handle the usual way),
///   the rest goes through NIO, tracked, and the end is `queued`.
/// - `queued`: every write goes through NIO, each tracked by a promise. NIO completes writes in
///   order, so when the last tracked write completes, the queue is empty and the end is `direct`
///   again. Writes only come from this end's own loop, so nothing slips in between.
/// - `off`: never direct (a TLS channel, whose bytes must be encrypted; a channel without a
///   socket; an end being closed).
///
/// The descriptor stays valid as long as the channel is active: NIO closes the socket and marks
/// the channel inactive in one step with no user code between, so the caller checks
/// `channel.isActive` (on the loop) before each `send(2)`, and a descriptor number reused by a
/// later connection is never written.
struct DirectWrites {
    enum State: Equatable {
        case off
        /// Tracked NIO writes still in flight.
        case queued(inFlight: Int)
        case direct
    }

    /// Where one write goes.
    enum Route: Equatable {
        /// Try `send(2)`; what it does not take goes through NIO (`fellBack`).
        case socket
        /// Through NIO; `tracked`: with a promise that reports `completed` when it is out.
        case queue(tracked: Bool)
    }

    private(set) var state: State

    /// `eligible`: a plain socket this end may write directly. Such an end starts with its barrier
    /// write (tracked) in flight.
    init(eligible: Bool) {
        self.state = eligible ? .queued(inFlight: 1) : .off
    }

    /// Where the next write goes; a tracked write is counted in flight.
    mutating func route() -> Route {
        switch self.state {
        case .off:
            return .queue(tracked: false)
        case .direct:
            return .socket
        case .queued(let inFlight):
            self.state = .queued(inFlight: inFlight + 1)
            return .queue(tracked: true)
        }
    }

    /// A direct write left bytes over: they go through NIO, tracked.
    mutating func fellBack() {
        guard case .direct = self.state else { return }
        self.state = .queued(inFlight: 1)
    }

    /// A tracked write completed (written, or failed because the channel closed).
    mutating func completed() {
        guard case .queued(let inFlight) = self.state else { return }
        self.state = inFlight <= 1 ? .direct : .queued(inFlight: inFlight - 1)
    }

    /// No more direct writes (the end is being closed).
    mutating func stop() {
        self.state = .off
    }
}
