import NIOHTTP1

/// The decisions of one request's exchange with its pool, without I/O: when to retry, when to fail
/// with which status, when the response timeout runs, when the upstream connection can be reused
/// and when a response becomes a tunnel.
///
/// `ProxyRequest` feeds it events and carries out the actions it returns (swift-nio's style); the
/// state carries what each phase needs, so nothing about the exchange's progress lives outside it.
struct ExchangeStateMachine {
    enum State: Equatable {
        /// Waiting for a connection to a backend.
        case connecting
        /// Request sent (or being sent); no response byte yet.
        case awaitingResponse
        /// The backend accepted the upgrade with this 101; its end is awaited before the tunnel.
        case upgradeAccepted(HTTPResponseHead)
        /// Response head relayed; its body is streaming. Whether the backend keeps the connection.
        case streamingResponse(upstreamKeepAlive: Bool)
        /// The bytes are the tunnel's now.
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

    /// What to do with a response head. The response timeout stops in every case.
    enum HeadAction: Equatable {
        /// Relay it; the body follows.
        case forward
        /// The upgrade was accepted: the tunnel starts at the head's end.
        case awaitUpgradeEnd
        /// Nothing to do (already finished).
        case none
    }

    /// What to do at the end of a response.
    enum EndAction: Equatable {
        /// Hand the connection and this 101 over to a tunnel.
        case tunnel(HTTPResponseHead)
        /// Done: pool the connection if `reusable`, else close it.
        case finish(reusable: Bool)
        /// Nothing to do (not streaming a response).
        case none
    }

    /// Whether the response timeout should run from now on.
    enum ResponseTimer: Equatable {
        case arm
        case leave
    }

    private(set) var state: State = .connecting
    /// Failed attempts still allowed (the pool's `retries`).
    private var retriesLeft: Int
    /// Whether the request may be sent again after it was written: idempotent and without a body.
    private let replayable: Bool
    /// True once the downstream delivered the request's end.
    private(set) var requestComplete = false
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

    /// A request Junction answers itself: no exchange ever runs.
    static var notProxied: Self {
        var machine = Self(retries: 0, replayable: false, isUpgrade: false, poolName: "")
        machine.state = .finished
        return machine
    }

    var isConnecting: Bool { self.state == .connecting }
    var isAwaitingResponse: Bool { self.state == .awaitingResponse }
    /// Between the start and the end of the response (or the hand-over to a tunnel).
    var isRunning: Bool { self.state != .finished && self.state != .tunnel }
    var isStreamingResponse: Bool {
        if case .streamingResponse = self.state { return true }
        return false
    }

    /// A connection is ready; the request goes out. The response timer starts if the request is
    /// already whole.
    mutating func connected() -> ResponseTimer {
        assert(self.state == .connecting, "connected while \(self.state)")
        guard self.state == .connecting else { return .leave }
        self.state = .awaitingResponse
        return self.requestComplete ? .arm : .leave
    }

    /// The downstream delivered the end of the request: the response timer starts if it was sent.
    mutating func requestEnded() -> ResponseTimer {
        assert(!self.requestComplete, "the request ended twice")
        self.requestComplete = true
        return self.state == .awaitingResponse ? .arm : .leave
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
        assert(self.state == .connecting, "no backend while \(self.state)")
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
        case .awaitingResponse, .upgradeAccepted:
            if self.state == .awaitingResponse, self.replayable, self.retriesLeft > 0 {
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
    mutating func responseHeadReceived(_ head: HTTPResponseHead) -> HeadAction {
        assert(self.state == .awaitingResponse || self.state == .finished, "a response head while \(self.state)")
        guard self.state == .awaitingResponse else { return .none }
        if self.isUpgrade && head.status == .switchingProtocols {
            self.state = .upgradeAccepted(head)
            return .awaitUpgradeEnd
        }
        self.state = .streamingResponse(upstreamKeepAlive: head.isKeepAlive)
        return .forward
    }

    /// The response ended: a 101's end starts the tunnel; any other ends the exchange, and the
    /// connection may be pooled only when the whole request was sent (else the backend still
    /// expects body bytes) and the backend keeps it.
    mutating func responseEnded() -> EndAction {
        switch self.state {
        case .upgradeAccepted(let head):
            self.state = .tunnel
            return .tunnel(head)
        case .streamingResponse(let upstreamKeepAlive):
            self.state = .finished
            return .finish(reusable: upstreamKeepAlive && self.requestComplete)
        case .connecting, .awaitingResponse, .tunnel, .finished:
            return .none
        }
    }

    /// The client went away. Returns whether the exchange was still running.
    mutating func cancelled() -> Bool {
        switch self.state {
        case .finished, .tunnel:
            return false
        case .connecting, .awaitingResponse, .upgradeAccepted, .streamingResponse:
            self.state = .finished
            return true
        }
    }
}
