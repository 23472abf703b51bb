import NIOCore

/// An HTTP/2 client connection after its setup, without I/O: its open streams, the idle GOAWAY,
/// the graceful GOAWAY with its PING round trip (RFC 9113 6.8), the client's GOAWAY, and the one
/// deadline each state has (swift-nio-http2's idle state machine is the model).
///
/// `NGHTTP2ConnectionHandler` feeds it events and carries out the actions it returns. The
/// deadlines, as the contract words `limits`:
/// - `client_header_timeout` from accept until the first stream opens (the setup hands its
///   deadline over); then a GOAWAY naming no stream, and the close;
/// - `client_idle_timeout` while no stream is open; then the graceful GOAWAY;
/// - `shutdown_grace` from a graceful GOAWAY (idle or shutdown) to the close.
struct HTTP2ConnectionStateMachine {
    /// The `limits` the deadlines come from.
    struct Timeouts: Equatable {
        var idle: TimeAmount
        var shutdownGrace: TimeAmount
    }

    enum State: Equatable {
        /// Preface and settings, but no stream yet: the header deadline runs from accept.
        case awaitingFirstStream(deadline: NIODeadline)
        /// Streams open; with none, `idleDeadline` is when the connection goes away.
        case serving(openStreams: Int, idleDeadline: NIODeadline?)
        /// A GOAWAY went out (or came in). `pingOutstanding`: the first, graceful GOAWAY and a PING
        /// went out and the final GOAWAY waits for the PING's ack. The connection closes when no
        /// stream is open after the final GOAWAY, or at `closeBy`.
        case goingAway(openStreams: Int, pingOutstanding: Bool)
        case closed
    }

    /// What the connection has to send or do.
    enum Action: Equatable {
        case none
        /// GOAWAY naming the highest stream id (the client may still have streams on the way)
        /// and a PING whose ack tells when they have arrived (RFC 9113 6.8).
        case sendGoAwayAndPing
        /// The final GOAWAY naming the last stream Junction took; then close if `thenClose`.
        case sendGoAway(lastStreamID: Int, thenClose: Bool)
        /// Flush what was written (a GOAWAY), then close.
        case close
    }

    /// The PING payload of the graceful GOAWAY ("JUNCTION").
    static let goAwayPingData: UInt64 = 0x4A55_4E43_5449_4F4E

    private(set) var state: State
    let timeouts: Timeouts
    /// The hard end: a GOAWAY's or a graceful shutdown's grace.
    private(set) var closeBy: NIODeadline = .distantFuture
    /// The highest stream id opened, for the final GOAWAY.
    private(set) var highestStreamID = 0
    /// An upgrade handed the listener over (and no shutdown since): the grace runs only while no
    /// tunnel does, since the drainer closes tunnels at their pool's pace.
    private(set) var handingOver = false

    /// `headerDeadline`: `client_header_timeout` counted from accept.
    init(timeouts: Timeouts, headerDeadline: NIODeadline) {
        self.timeouts = timeouts
        self.state = .awaitingFirstStream(deadline: headerDeadline)
    }

    /// When something must happen next.
    var deadline: NIODeadline {
        switch self.state {
        case .awaitingFirstStream(let deadline):
            return min(deadline, self.closeBy)
        case .serving(_, let idleDeadline):
            return min(idleDeadline ?? .distantFuture, self.closeBy)
        case .goingAway:
            return self.closeBy
        case .closed:
            return .distantFuture
        }
    }

    mutating func streamOpened(_ id: Int) {
        self.highestStreamID = max(self.highestStreamID, id)
        switch self.state {
        case .awaitingFirstStream:
            self.state = .serving(openStreams: 1, idleDeadline: nil)
        case .serving(let open, _):
            self.state = .serving(openStreams: open + 1, idleDeadline: nil)
        case .goingAway(let open, let pingOutstanding):
            // Opened before the client saw the GOAWAY: served.
            self.state = .goingAway(openStreams: open + 1, pingOutstanding: pingOutstanding)
        case .closed:
            break
        }
    }

    mutating func streamClosed(now: NIODeadline) -> Action {
        switch self.state {
        case .serving(let open, _):
            assert(open > 0, "more streams closed than opened")
            let left = max(open - 1, 0)
            self.state = .serving(openStreams: left, idleDeadline: left == 0 ? now + self.timeouts.idle : nil)
            return .none
        case .goingAway(let open, let pingOutstanding):
            assert(open > 0, "more streams closed than opened")
            let left = max(open - 1, 0)
            self.state = .goingAway(openStreams: left, pingOutstanding: pingOutstanding)
            if left == 0 && !pingOutstanding {
                self.state = .closed
                return .close
            }
            if left == 0 && self.closeBy == .distantFuture {
                // A hand-over's GOAWAY without a grace (it carried tunnels): the last is gone, and
                // a client that never acknowledges the PING gets the grace from now.
                self.closeBy = now + self.timeouts.shutdownGrace
            }
            return .none
        case .awaitingFirstStream, .closed:
            // Before any stream opened, or while closing: nothing to count.
            return .none
        }
    }

    /// A PING ack arrived with `data`.
    mutating func pingAcked(_ data: UInt64) -> Action {
        guard data == Self.goAwayPingData, case .goingAway(let open, true) = self.state else { return .none }
        if open == 0 {
            self.state = .closed
            return .sendGoAway(lastStreamID: self.highestStreamID, thenClose: true)
        }
        self.state = .goingAway(openStreams: open, pingOutstanding: false)
        return .sendGoAway(lastStreamID: self.highestStreamID, thenClose: false)
    }

    /// The client sent GOAWAY: it opens no more streams; the connection ends with its last one.
    mutating func goAwayReceived() -> Action {
        switch self.state {
        case .awaitingFirstStream, .serving(0, _), .goingAway(0, _):
            self.state = .closed
            return .close
        case .serving(let open, _), .goingAway(let open, _):
            self.state = .goingAway(openStreams: open, pingOutstanding: false)
            return .none
        case .closed:
            return .none
        }
    }

    /// The session sent a GOAWAY with an error: a connection error ends the connection once the
    /// GOAWAY is flushed (RFC 9113 5.4.1).
    mutating func connectionErrorSent() -> Action {
        guard self.state != .closed else { return .none }
        self.state = .closed
        return .close
    }

    /// The graceful GOAWAY: the client gets `shutdown_grace` to finish.
    private mutating func goAway(now: NIODeadline) -> Action {
        switch self.state {
        case .awaitingFirstStream:
            self.state = .closed
            return .sendGoAway(lastStreamID: 0, thenClose: true)
        case .serving(let open, _):
            self.state = .goingAway(openStreams: open, pingOutstanding: true)
            self.closeBy = min(self.closeBy, now + self.timeouts.shutdownGrace)
            return .sendGoAwayAndPing
        case .goingAway:
            self.closeBy = min(self.closeBy, now + self.timeouts.shutdownGrace)
            return .none
        case .closed:
            return .none
        }
    }

    /// The deadline passed (`now` is at or after it).
    mutating func deadlinePassed(now: NIODeadline) -> Action {
        guard self.deadline <= now else { return .none }
        if self.closeBy <= now {
            self.state = .closed
            return .close
        }
        switch self.state {
        case .awaitingFirstStream, .serving:
            return self.goAway(now: now)
        case .goingAway, .closed:
            return .none
        }
    }

    /// A graceful shutdown started (after a hand-over too: then tunnels get the grace as well).
    mutating func quiesce(now: NIODeadline) -> Action {
        self.handingOver = false
        if case .serving(0, _) = self.state {
            self.state = .closed
            return .sendGoAway(lastStreamID: self.highestStreamID, thenClose: true)
        }
        return self.goAway(now: now)
    }

    /// The process handed its listener to a new one (an upgrade). Always the graceful GOAWAY with
    /// its PING, even with no stream open, so a first request already on its way is still served;
    /// and while the connection carries tunnels (`holdsTunnels`) no grace is set: the drainer
    /// closes them at the pool's pace, and the connection goes with its last stream.
    mutating func handOver(now: NIODeadline, holdsTunnels: Bool) -> Action {
        self.handingOver = true
        switch self.state {
        case .awaitingFirstStream:
            self.state = .goingAway(openStreams: 0, pingOutstanding: true)
        case .serving(let open, _):
            self.state = .goingAway(openStreams: open, pingOutstanding: true)
        case .goingAway:
            if !holdsTunnels { self.closeBy = min(self.closeBy, now + self.timeouts.shutdownGrace) }
            return .none
        case .closed:
            return .none
        }
        if !holdsTunnels { self.closeBy = min(self.closeBy, now + self.timeouts.shutdownGrace) }
        return .sendGoAwayAndPing
    }

    /// A stream became a tunnel (an extended CONNECT answered): after a hand-over it carries the
    /// connection until the drainer closes it, so no grace runs meanwhile.
    mutating func tunnelOpened() {
        if self.handingOver, case .goingAway = self.state { self.closeBy = .distantFuture }
    }

    /// The connection's last tunnel ended: after a hand-over, what is left (requests, a client
    /// that never acknowledges the PING) gets the grace from now.
    mutating func tunnelsGone(now: NIODeadline) {
        if self.handingOver, case .goingAway = self.state {
            self.closeBy = min(self.closeBy, now + self.timeouts.shutdownGrace)
        }
    }

    /// The connection closed.
    mutating func closed() {
        self.state = .closed
    }
}
