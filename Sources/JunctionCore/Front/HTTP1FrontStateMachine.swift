import NIOCore

/// An HTTP/1.1 client connection after its setup, without I/O: one request in flight at a time
/// (pipelined heads wait), keep-alive, the linger after an early error answer, the upgrade to a
/// tunnel, a graceful shutdown, and the one deadline each state has.
///
/// `HTTP1Front` feeds it events and carries out the actions it returns. The deadlines, as the
/// contract words `limits`:
/// - `client_header_timeout` from accept until the first request head is complete (the setup
///   hands its deadline over), and from the first byte of each later head;
/// - `client_idle_timeout` between requests;
/// - `linger` after an error answer while the client still sends the refused request;
/// - `shutdown_grace` from a graceful shutdown to the close, whatever is in flight.
struct HTTP1FrontStateMachine {
    /// The `limits` the deadlines come from.
    struct Timeouts: Equatable {
        var header: TimeAmount
        var idle: TimeAmount
        var shutdownGrace: TimeAmount
        /// How long an error answer waits for the client to stop sending before closing.
        var linger: TimeAmount = .seconds(2)
    }

    /// The request in flight.
    struct Request: Equatable {
        /// The whole request (its end) arrived.
        var complete = false
        /// The response must end the connection (decided when its head goes out).
        var closeAfterResponse = false
    }

    enum State: Equatable {
        /// No byte of the first request yet: the header deadline runs from accept.
        case awaitingFirstRequest(deadline: NIODeadline)
        /// Part of a later request head arrived.
        case receivingHead(deadline: NIODeadline)
        /// Between requests on a keep-alive connection.
        case idle(deadline: NIODeadline)
        /// A request is being proxied (no deadline here: the exchange has its own).
        case active(Request)
        /// An error answer went out while the client was still sending: its input is read and
        /// dropped for a moment so that closing does not reset the answer away.
        case lingering(deadline: NIODeadline)
        /// The connection became a WebSocket tunnel: HTTP is over.
        case upgraded
        case closed
    }

    /// What to do with a request head.
    enum HeadAction: Equatable {
        /// Start proxying it.
        case process
        /// A request is still in flight: keep it (and stop reading) until that one is answered.
        case queue
        /// The connection is done with HTTP: drop it.
        case drop
    }

    /// What to do once a response was written whole.
    enum ResponseEndAction: Equatable {
        /// Close once the response is flushed.
        case close
        /// Half-close, read and drop the rest of the request for a moment, then close.
        case linger
        /// Keep the connection: start the next queued request, or wait for one.
        case keepAlive
    }

    /// What to do when the deadline passed.
    enum DeadlineAction: Equatable {
        case none
        /// Close the connection (flushing what was written).
        case close
        /// Answer 408, then close.
        case requestTimeout
    }

    /// What a graceful shutdown does to the connection now.
    enum QuiesceAction: Equatable {
        /// Nothing in flight: close now.
        case close
        /// Busy: finish what is in flight (answered with `Connection: close`), closed at the
        /// latest when the grace is over.
        case finish
    }

    private(set) var state: State
    let timeouts: Timeouts
    /// The hard end: a graceful shutdown's grace.
    private(set) var closeBy: NIODeadline = .distantFuture
    /// A graceful shutdown started: responses end the connection.
    private(set) var quiescing = false
    /// An upgrade handed the listener over (and no shutdown since): a WebSocket that opens now is
    /// closed by the drainer at its pool's pace, not at this connection's grace.
    private(set) var handingOver = false

    /// The deadline a tunnel made from this connection inherits: the shutdown grace, but none
    /// after a hand-over.
    var tunnelCloseBy: NIODeadline { self.handingOver ? .distantFuture : self.closeBy }

    /// `headerDeadline`: `client_header_timeout` counted from accept.
    init(timeouts: Timeouts, headerDeadline: NIODeadline) {
        self.timeouts = timeouts
        self.state = .awaitingFirstRequest(deadline: headerDeadline)
    }

    /// When something must happen next.
    var deadline: NIODeadline {
        switch self.state {
        case .awaitingFirstRequest(let deadline), .receivingHead(let deadline), .idle(let deadline),
            .lingering(let deadline):
            return min(deadline, self.closeBy)
        case .active, .upgraded:
            return self.closeBy
        case .closed:
            return .distantFuture
        }
    }

    /// Whether a request is in flight (a new head waits behind it).
    var isActive: Bool {
        if case .active = self.state { return true }
        return false
    }

    var isLingering: Bool {
        if case .lingering = self.state { return true }
        return false
    }

    /// Bytes arrived without completing a head: a connection idle between requests now has a
    /// header deadline.
    mutating func bytesArrived(now: NIODeadline) {
        if case .idle = self.state {
            self.state = .receivingHead(deadline: now + self.timeouts.header)
        }
    }

    mutating func headArrived() -> HeadAction {
        switch self.state {
        case .awaitingFirstRequest, .idle, .receivingHead:
            self.state = .active(Request())
            return .process
        case .active:
            return .queue
        case .lingering, .upgraded, .closed:
            return .drop
        }
    }

    /// The request in flight arrived whole.
    mutating func requestEnded() {
        guard case .active(var request) = self.state else { return }
        request.complete = true
        self.state = .active(request)
    }

    /// The response head is about to go out; returns whether the connection may stay open after
    /// it. `requestWantsClose` covers `Connection: close`, HTTP/1.0 and failed upgrades.
    mutating func responseStarting(requestWantsClose: Bool) -> Bool {
        guard case .active(var request) = self.state else { return false }
        // A response that starts before the request ended leaves an unknown amount of body behind.
        request.closeAfterResponse = requestWantsClose || self.quiescing || !request.complete
        self.state = .active(request)
        return !request.closeAfterResponse
    }

    /// The response's body ends with the connection (an HTTP/1.0 client, no length).
    mutating func responseMustClose() {
        guard case .active(var request) = self.state else { return }
        request.closeAfterResponse = true
        self.state = .active(request)
    }

    /// The response was written whole.
    mutating func responseEnded(now: NIODeadline) -> ResponseEndAction {
        guard case .active(let request) = self.state else {
            self.state = .closed
            return .close
        }
        // Quiescing: a response that started before the shutdown (keep-alive) still ends it.
        if request.closeAfterResponse || self.quiescing {
            if request.complete {
                self.state = .closed
                return .close
            }
            self.state = .lingering(deadline: now + self.timeouts.linger)
            return .linger
        }
        self.state = .idle(deadline: now + self.timeouts.idle)
        return .keepAlive
    }

    /// The rest of a refused request arrived while lingering: close now.
    mutating func lingerDone() -> Bool {
        guard case .lingering = self.state else { return false }
        self.state = .closed
        return true
    }

    /// The backend accepted a WebSocket upgrade: HTTP is over on this connection.
    mutating func upgraded() {
        switch self.state {
        case .active:
            self.state = .upgraded
        case .closed:
            break  // closed (a shutdown's grace) while the backend was answering
        default:
            assertionFailure("upgrade in \(self.state)")
        }
    }

    /// The deadline passed (`now` is at or after it).
    mutating func deadlinePassed(now: NIODeadline) -> DeadlineAction {
        guard self.deadline <= now else { return .none }
        if self.closeBy <= now {
            self.state = .closed
            return .close
        }
        switch self.state {
        case .awaitingFirstRequest, .receivingHead:
            self.state = .closed
            return .requestTimeout
        case .idle, .lingering:
            self.state = .closed
            return .close
        case .active, .upgraded, .closed:
            return .none
        }
    }

    /// A graceful shutdown started.
    mutating func quiesce(now: NIODeadline) -> QuiesceAction {
        self.quiescing = true
        self.handingOver = false
        switch self.state {
        case .awaitingFirstRequest, .idle:
            // No request yet, or none in flight: the client retries elsewhere.
            self.state = .closed
            return .close
        case .receivingHead, .active, .lingering:
            self.closeBy = min(self.closeBy, now + self.timeouts.shutdownGrace)
            return .finish
        case .upgraded, .closed:
            return .finish
        }
    }

    /// The process handed its listener to a new one (an upgrade): as `quiesce`, except that a
    /// connection accepted but still waiting for its first request is served (with
    /// `Connection: close`): its client sent it to a listener that accepted it, and a close now
    /// would lose the request. An idle keep-alive connection closes, as in any shutdown (its
    /// client retries a request that meets the close, as HTTP/1.1 allows on a reused connection).
    mutating func handOver(now: NIODeadline) -> QuiesceAction {
        guard case .awaitingFirstRequest = self.state else {
            let action = self.quiesce(now: now)
            self.handingOver = true
            return action
        }
        self.quiescing = true
        self.handingOver = true
        self.closeBy = min(self.closeBy, now + self.timeouts.shutdownGrace)
        return .finish
    }

    /// The connection closed (or failed).
    mutating func closed() {
        self.state = .closed
    }
}
