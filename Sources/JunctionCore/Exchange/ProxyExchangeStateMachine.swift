/// The decisions of one proxied request, without I/O: when to retry, when to fail with which
/// status, when the upstream connection can be reused and when a response becomes a tunnel.
///
/// `ProxyExchange` feeds it events and carries out the actions it returns (swift-nio's style).
struct ProxyExchangeStateMachine {
    enum State: Equatable {
        /// Waiting for a connection to a backend.
        case connecting
        /// Request sent (or being sent); no response byte yet.
        case awaitingResponse
        /// Response head relayed; its body is streaming.
        case streamingResponse
        /// The backend answered 101: bytes are relayed by the tunnel.
        case tunnel
        /// Done, successfully or not.
        case finished
    }

    /// What to do after a failure.
    enum FailureAction: Equatable {
        /// Try another backend (a fresh connection), replaying the request.
        case retry
        /// Answer the client with this failure.
        case fail(ProxyFailure)
        /// A response was already started: cut the client connection.
        case abort
        /// Nothing to do (already finished).
        case none
    }

    /// What to do with a response head.
    enum HeadAction: Equatable {
        /// Relay it; the body follows.
        case forward
        /// The upgrade was accepted: set up the tunnel.
        case tunnel
        /// Nothing to do (already finished).
        case none
    }

    private(set) var state: State = .connecting
    /// Failed attempts still allowed (the pool's `retries`).
    private var retriesLeft: Int
    /// Whether the request may be sent again after it was written: idempotent and without a body.
    private let replayable: Bool
    /// True once the downstream delivered the request's end.
    private(set) var requestComplete = false
    /// True once any request byte was written to the current connection.
    private var requestStarted = false
    /// True for an `Upgrade: websocket` request.
    private let isUpgrade: Bool
    /// The pool's name, for failure messages.
    private let poolName: String

    init(retries: Int, replayable: Bool, isUpgrade: Bool, poolName: String) {
        self.retriesLeft = retries
        self.replayable = replayable
        self.isUpgrade = isUpgrade
        self.poolName = poolName
    }

    /// A connection is ready; the request starts going out.
    mutating func connected() {
        guard self.state == .connecting else { return }
        self.state = .awaitingResponse
        self.requestStarted = true
    }

    /// The downstream delivered the end of the request.
    mutating func requestEnded() {
        self.requestComplete = true
    }

    /// Connecting failed (refused, timed out): any method may be retried, nothing was sent.
    mutating func connectFailed(reason: String) -> FailureAction {
        guard self.state == .connecting else { return .none }
        if self.retriesLeft > 0 {
            self.retriesLeft -= 1
            return .retry
        }
        self.state = .finished
        return .fail(.badGateway("no backend of pool \(self.poolName) could be reached (\(reason))"))
    }

    /// No backend is available at all when one is needed.
    mutating func noBackend(retryAfter: Int64, triedAny: Bool) -> FailureAction {
        guard self.state == .connecting else { return .none }
        self.state = .finished
        if triedAny {
            return .fail(.badGateway("no backend of pool \(self.poolName) could be reached"))
        }
        return .fail(.noHealthyBackend(pool: self.poolName, retryAfter: retryAfter))
    }

    /// The upstream connection closed, reset or sent garbage.
    mutating func upstreamFailed(reason: String) -> FailureAction {
        switch self.state {
        case .connecting:
            return self.connectFailed(reason: reason)
        case .awaitingResponse:
            if self.replayable && self.retriesLeft > 0 {
                self.retriesLeft -= 1
                self.state = .connecting
                return .retry
            }
            self.state = .finished
            return .fail(.badGateway("the backend closed the connection before answering (\(reason))"))
        case .streamingResponse:
            self.state = .finished
            return .abort
        case .tunnel, .finished:
            return .none
        }
    }

    /// `timeouts.response` passed without a response byte.
    mutating func responseTimedOut() -> FailureAction {
        guard self.state == .awaitingResponse else { return .none }
        self.state = .finished
        return .fail(.upstreamTimeout(pool: self.poolName))
    }

    /// The response head arrived.
    mutating func responseHeadReceived(status: UInt) -> HeadAction {
        guard self.state == .awaitingResponse else { return .none }
        if self.isUpgrade && status == 101 {
            self.state = .tunnel
            return .tunnel
        }
        self.state = .streamingResponse
        return .forward
    }

    /// The response ended. Returns whether the upstream connection may be pooled: only when the
    /// whole request was sent (else the backend still expects body bytes).
    mutating func responseEnded(upstreamKeepAlive: Bool) -> Bool {
        guard self.state == .streamingResponse else { return false }
        self.state = .finished
        return upstreamKeepAlive && self.requestComplete
    }

    /// The client went away.
    mutating func cancelled() -> Bool {
        let wasActive = self.state != .finished && self.state != .tunnel
        if wasActive { self.state = .finished }
        return wasActive
    }
}
