import NIOCore

/// Whether a tunnel end may write its partner's bytes straight to its socket with `send(2)`
/// instead of through NIO's write queue, and when it must go back to the queue (`TunnelGlue` does
/// the writing).
///
/// A direct write is one system call where NIO's path is an outbound pipeline walk, a pending-write
/// record and a flush walk. It is only right while nothing of this channel waits in NIO's queue:
/// bytes written directly would overtake them. So:
/// - a tunnel's channel may have bytes queued already (the 101, a request head), so it starts
///   `queued`, with one tracked write in flight: an empty write through NIO behind them. Its
///   completion means NIO's queue is empty.
/// - `direct`: every write tries `send(2)`. When the kernel takes it all, nothing else happens.
///   When it takes part or nothing (EAGAIN, or an error NIO will meet and handle the usual way),
///   the rest goes through NIO, tracked, and the writer is `queued`.
/// - `queued`: every write goes through NIO, each tracked by a promise. NIO completes writes in
///   order, so when the last tracked write completes, the queue is empty and the writer is
///   `direct` again. Writes only come from the channel's own loop, so nothing slips in between.
/// - `off`: never direct (a TLS channel, whose bytes must be encrypted; a channel without a
///   socket; a channel being closed).
///
/// The descriptor stays valid as long as the channel is active: NIO closes the socket and marks
/// the channel inactive in one step with no user code between, so `TunnelGlue` checks
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

    private(set) var state: State = .off
    /// The channel's socket, while not `off`.
    private(set) var socket: NIOBSDSocket.Handle = -1

    /// Writes go to `socket` from now on, once a tracked write (the barrier, in flight now) behind
    /// whatever the channel has queued is out.
    mutating func enable(socket: NIOBSDSocket.Handle) {
        self.socket = socket
        self.state = .queued(inFlight: 1)
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
