/// The life of one client HTTP/1.1 connection, without I/O: which timeout applies, whether a
/// request head is processed now or queued behind the one in flight (pipelining), and whether the
/// connection stays open after a response.
///
/// `HTTP1ServerHandler` feeds it events and carries out the actions it returns.
struct HTTP1ConnectionStateMachine {
    enum Phase: Equatable {
        /// Connected; no byte of the first request yet (client_header_timeout runs).
        case awaitingFirstRequest
        /// Between requests on a keep-alive connection (client_idle_timeout runs).
        case idle
        /// Part of a request head arrived (client_header_timeout runs).
        case receivingHead
        /// A request is being proxied.
        case active
        /// The connection became a WebSocket tunnel; HTTP is over.
        case tunnel
        /// An error answer was sent while the client was still sending; its input is read and
        /// dropped for a moment so that closing does not reset the answer away.
        case lingering
        /// Closed or closing.
        case closed
    }

    /// Which deadline to arm.
    enum Timer: Equatable {
        case none
        case header
        case idle
        case linger
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

    /// What to do when a response is complete.
    enum ResponseEndAction: Equatable {
        /// Close the connection once the response is flushed.
        case close
        /// Half-close, read and drop the rest of the request for a moment, then close.
        case linger
        /// Keep the connection: start the next queued request, or wait for one.
        case keepAlive
    }

    /// What to do when the current timer fires.
    enum TimeoutAction: Equatable {
        case none
        /// Answer 408 and close.
        case requestTimeout
        /// Close without an answer.
        case close
    }

    private(set) var phase: Phase = .awaitingFirstRequest
    /// Set by a graceful shutdown: finish the current request, then close.
    private(set) var quiescing = false
    /// Whether the request in flight has been received completely.
    private(set) var requestComplete = false
    /// Whether the response in flight must end the connection (decided when its head goes out).
    private var closeAfterResponse = false

    /// The timer the current phase needs.
    var timer: Timer {
        switch self.phase {
        case .awaitingFirstRequest, .receivingHead: return .header
        case .idle: return .idle
        case .lingering: return .linger
        case .active, .tunnel, .closed: return .none
        }
    }

    /// Bytes arrived without completing a head: an idle connection now has a header deadline.
    mutating func bytesArrived() -> Bool {
        if self.phase == .idle {
            self.phase = .receivingHead
            return true
        }
        return false
    }

    mutating func requestHeadArrived() -> HeadAction {
        switch self.phase {
        case .awaitingFirstRequest, .idle, .receivingHead:
            self.phase = .active
            self.requestComplete = false
            self.closeAfterResponse = false
            return .process
        case .active:
            return .queue
        case .tunnel, .lingering, .closed:
            return .drop
        }
    }

    mutating func requestEnded() {
        self.requestComplete = true
    }

    /// The response head is about to go out; returns whether it may keep the connection alive.
    /// `requestWantsClose` covers `Connection: close`, HTTP/1.0 and failed upgrades.
    mutating func responseStarting(requestWantsClose: Bool) -> Bool {
        // A response that starts before the request ended leaves an unknown amount of body behind.
        self.closeAfterResponse = requestWantsClose || self.quiescing || !self.requestComplete
        return !self.closeAfterResponse
    }

    /// The response's body is delimited by closing the connection (an HTTP/1.0 client).
    mutating func mustClose() {
        self.closeAfterResponse = true
    }

    /// The response was fully written.
    mutating func responseEnded() -> ResponseEndAction {
        guard self.phase == .active else { return .close }
        if self.closeAfterResponse {
            if self.requestComplete {
                self.phase = .closed
                return .close
            }
            self.phase = .lingering
            return .linger
        }
        self.phase = .idle
        return .keepAlive
    }

    /// The backend accepted a WebSocket upgrade.
    mutating func upgraded() {
        self.phase = .tunnel
    }

    mutating func timerFired() -> TimeoutAction {
        switch self.phase {
        case .awaitingFirstRequest, .receivingHead:
            self.phase = .closed
            return .requestTimeout
        case .idle, .lingering:
            self.phase = .closed
            return .close
        case .active, .tunnel, .closed:
            return .none
        }
    }

    /// Graceful shutdown started: returns true if the connection can close right now.
    mutating func quiesce() -> Bool {
        self.quiescing = true
        switch self.phase {
        case .awaitingFirstRequest, .idle:
            self.phase = .closed
            return true
        case .receivingHead, .active, .tunnel, .lingering, .closed:
            return false
        }
    }

    /// The connection failed or was closed.
    mutating func closed() {
        self.phase = .closed
    }
}
