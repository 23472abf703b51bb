import NIOCore
import NIOHTTP1
import NIOPosix

/// The client side of a `ProxyExchange`: an HTTP/1.1 connection or an HTTP/2 stream.
/// Every call happens on the exchange's event loop.
protocol ProxyExchangeDelegate: AnyObject {
    /// Whether the client can take more response bytes now (false holds upstream reads back).
    var canTakeResponse: Bool { get }
    /// The upstream's response head (not yet rewritten for the client); `setCookie` is an affinity
    /// cookie the response must carry.
    func exchangeReceivedResponseHead(_ head: HTTPResponseHead, backend: Backend, setCookie: String?)
    func exchangeReceivedResponseBody(_ body: ByteBuffer)
    /// The response is complete; the exchange is over.
    func exchangeReceivedResponseEnd(_ trailers: HTTPHeaders?)
    /// The upstream finished a read burst: flush what was written.
    func exchangeFlush()
    /// The exchange failed before any response head: answer with `failure`.
    func exchangeFailed(_ failure: ProxyFailure, backend: Backend?)
    /// The exchange failed after the response head was relayed: the client connection must be cut.
    func exchangeAborted()
    /// The upstream can take more request bytes: resume reading the client.
    func exchangeUpstreamBecameWritable()
    /// The backend accepted the WebSocket upgrade; the delegate builds the tunnel, which takes the
    /// lease (the backend's active count) until it closes.
    func exchangeUpgraded(_ head: HTTPResponseHead, upstream: UpstreamConnection, lease: consuming BackendLease)
}

/// One proxied request from backend selection to the end of its response, on one event loop.
///
/// It picks a backend (retrying others on failure), takes a pooled connection or dials one,
/// streams the request out and the response back with backpressure both ways, and gives the
/// connection back to the pool when both directions are complete.
final class ProxyExchange: DeadlineTracked {
    /// A part of the request body waiting for a connection.
    private enum PendingPart {
        case body(ByteBuffer)
        case end(HTTPHeaders?)
    }

    private let loop: LoopContext
    let pool: Pool
    /// The serialized upstream request head (kept for a retry).
    private let headBytes: ByteBuffer
    private let method: HTTPMethod
    /// Whether the body goes upstream chunked (re-framed by Junction) or as is.
    private let chunkedBody: Bool
    private unowned let delegate: any ProxyExchangeDelegate
    private var machine: ProxyExchangeStateMachine
    /// The backend the request's affinity asks for.
    private let affinity: AffinityChoice
    /// Whether the client connection is TLS (affinity cookies get `Secure`).
    private let secure: Bool

    /// Body parts received before a connection was ready (bounded: the client is not read meanwhile).
    private var pending: [PendingPart] = []
    private var upstream: UpstreamConnection?
    /// The backend's active count while this exchange uses it.
    private var lease: BackendLease?
    /// The leased backend.
    private var leased: Backend? { self.lease?.backend }
    /// Backends already tried (so retries go elsewhere).
    private var tried: [Backend] = []

    var deadline: NIODeadline = .distantFuture
    var sweeperSlot = -1

    /// `headBytes` is the rewritten request head (`HeaderRewriter.upstreamRequestBytes`).
    init(
        loop: LoopContext,
        pool: Pool,
        headBytes: ByteBuffer,
        method: HTTPMethod,
        framing: BodyFraming,
        isUpgrade: Bool,
        affinity: AffinityChoice = .none,
        secure: Bool = false,
        delegate: any ProxyExchangeDelegate
    ) {
        self.loop = loop
        self.pool = pool
        self.affinity = affinity
        self.secure = secure
        self.headBytes = headBytes
        self.method = method
        self.chunkedBody = framing == .chunked
        self.delegate = delegate
        self.machine = ProxyExchangeStateMachine(
            retries: pool.retries,
            replayable: framing == .none && method.isIdempotent,
            isUpgrade: isUpgrade,
            poolName: pool.name
        )
    }

    /// The backend that served (or is serving) the request, for the access log.
    var backend: Backend? { self.leased ?? self.tried.last }

    /// True once the exchange is over (response ended, failed or cancelled).
    var isFinished: Bool { self.machine.isFinished }

    // MARK: downstream → upstream

    /// Picks a backend and starts sending. May call `exchangeFailed` before returning.
    func start() {
        self.attempt()
    }

    func sendBody(_ body: ByteBuffer) {
        if let upstream = self.upstream {
            self.write(body: body, to: upstream)
        } else if self.machine.isConnecting {
            self.pending.append(.body(body))
        }
    }

    /// The request is complete. Flushing waits for the client's read burst to end (`flushRequest`).
    func sendEnd(_ trailers: HTTPHeaders?) {
        let timer = self.machine.requestEnded()
        if let upstream = self.upstream {
            self.writeEnd(trailers, to: upstream)
            if timer == .arm { self.armResponseTimeout() }
        } else if self.machine.isConnecting {
            self.pending.append(.end(trailers))
        }
    }

    private func write(body: ByteBuffer, to upstream: UpstreamConnection) {
        if self.chunkedBody {
            upstream.writeBytes(ChunkedCoding.chunkHeader(size: body.readableBytes, allocator: self.loop.allocator))
            upstream.writeBytes(body)
            upstream.writeBytes(ChunkedCoding.crlf)
        } else {
            upstream.writeBytes(body)
        }
    }

    private func writeEnd(_ trailers: HTTPHeaders?, to upstream: UpstreamConnection) {
        guard self.chunkedBody else { return }
        if let trailers, !trailers.isEmpty {
            upstream.writeBytes(ChunkedCoding.lastChunk(trailers: trailers, allocator: self.loop.allocator))
        } else {
            upstream.writeBytes(ChunkedCoding.lastChunk)
        }
    }

    /// The client finished a read burst: push what was written.
    func flushRequest() {
        self.upstream?.flush()
    }

    /// Whether the downstream should keep reading request bytes.
    var canTakeRequestData: Bool {
        guard let upstream = self.upstream else { return !self.machine.isConnecting }
        return upstream.isWritable
    }

    /// The client drained its buffer: let the upstream read again.
    func downstreamBecameWritable() {
        self.upstream?.resumeReading()
    }

    /// The client went away: stop, free the backend, drop the connection (it is mid-message).
    func cancel() {
        guard self.machine.cancelled() else { return }
        self.disarmResponseTimeout()
        if let upstream = self.upstream {
            self.upstream = nil
            upstream.detach()
            upstream.close()
        }
        self.lease = nil
    }

    // MARK: upstream → downstream

    var downstreamCanTakeResponse: Bool { self.delegate.canTakeResponse }

    func upstreamReceivedHead(_ head: HTTPResponseHead) {
        self.disarmResponseTimeout()
        switch self.machine.responseHeadReceived(head) {
        case .forward:
            let backend = self.leased!
            let setCookie = self.affinity.setCookie(for: backend, poolName: self.pool.name, secure: self.secure)
            self.delegate.exchangeReceivedResponseHead(head, backend: backend, setCookie: setCookie)
        case .awaitUpgradeEnd:
            // The decoder's `.end` of the 101 follows; splicing before it would feed an HTTP part
            // to the glue. Wait for it.
            break
        case .none:
            break
        }
    }

    func upstreamReceivedBody(_ body: ByteBuffer) {
        guard self.machine.isStreamingResponse else { return }
        self.delegate.exchangeReceivedResponseBody(body)
    }

    func upstreamReceivedEnd(_ trailers: HTTPHeaders?) {
        guard let upstream = self.upstream else { return }
        switch self.machine.responseEnded() {
        case .tunnel(let head):
            // The tunnel takes over the connection and the backend's active count.
            self.upstream = nil
            upstream.detach()
            self.delegate.exchangeUpgraded(head, upstream: upstream, lease: self.lease.take()!)
        case .finish(let reusable):
            self.upstream = nil
            // Pool the connection before telling the client side, which may start the next request.
            if reusable {
                self.loop.connections.release(upstream, idleTimeout: self.pool.timeouts.idle)
            } else {
                upstream.detach()
                upstream.close()
            }
            self.lease = nil
            self.delegate.exchangeReceivedResponseEnd(trailers)
        case .none:
            break
        }
    }

    func upstreamReadComplete() {
        self.delegate.exchangeFlush()
    }

    func upstreamBecameWritable() {
        self.delegate.exchangeUpstreamBecameWritable()
    }

    /// The connection closed or failed; `error` is nil for a plain close.
    func upstreamClosed(error: Error?) {
        self.upstream = nil
        if error != nil, self.machine.isAwaitingResponse, let backend = self.leased {
            // A reset before any response byte counts against the backend (a clean close of a
            // reused connection does not: backends close idle keep-alive connections).
            self.loop.logHealth(
                backend,
                backend.recordResetBeforeResponse(),
                reason: "connection reset before a response"
            )
        }
        let reason = error.map(ConnectionFailure.describe) ?? "connection closed"
        self.handle(self.machine.upstreamFailed(reason: reason))
    }

    // MARK: DeadlineTracked: the response timeout

    func deadlinePassed(now: NIODeadline) {
        self.disarmResponseTimeout()
        let action = self.machine.responseTimedOut()
        if let upstream = self.upstream {
            self.upstream = nil
            upstream.detach()
            upstream.close()
        }
        self.handle(action)
    }

    // MARK: private

    private func attempt() {
        let now = NIODeadline.now()
        guard
            let backend = self.pool.select(
                onLoop: self.loop.index,
                affinity: self.affinity,
                excluding: self.tried,
                now: now
            )
        else {
            let action = self.machine.noBackend(
                retryAfter: self.pool.retryAfterSeconds(now: now),
                triedAny: !self.tried.isEmpty
            )
            self.handle(action)
            return
        }
        self.tried.append(backend)
        self.lease = BackendLease(backend)
        if let connection = self.loop.connections.takeIdle(for: backend) {
            self.attach(connection)
            return
        }
        self.loop.connections.connect(to: backend, timeout: self.pool.timeouts.connect)
            .assumeIsolated()
            .whenComplete { result in
                switch result {
                case .success(let connection):
                    self.loop.logHealth(backend, backend.recordConnectSuccess(), reason: "connected")
                    if self.machine.isConnecting && self.leased === backend {
                        self.attach(connection)
                    } else {
                        // Cancelled while dialling: keep the fresh connection for someone else.
                        self.loop.connections.release(connection, idleTimeout: self.pool.timeouts.idle)
                    }
                case .failure(let error):
                    guard self.machine.isConnecting, self.leased === backend else { return }
                    let reason = ConnectionFailure.describe(error)
                    self.loop.logHealth(backend, backend.recordConnectFailure(at: .now()), reason: reason)
                    self.handle(self.machine.connectFailed(reason: reason))
                }
            }
    }

    private func attach(_ connection: UpstreamConnection) {
        self.upstream = connection
        connection.attach(self)
        let timer = self.machine.connected()
        connection.writeHead(self.headBytes, method: self.method)
        for part in self.pending {
            switch part {
            case .body(let body): self.write(body: body, to: connection)
            case .end(let trailers): self.writeEnd(trailers, to: connection)
            }
        }
        self.pending.removeAll()
        connection.flush()
        if timer == .arm { self.armResponseTimeout() }
        // Reads from the client were held while connecting.
        self.delegate.exchangeUpstreamBecameWritable()
    }

    private func handle(_ action: ProxyExchangeStateMachine.FailureAction) {
        switch action {
        case .retry:
            self.lease = nil
            // A replayed (bodyless) request was drained into the failed connection: its end goes out again.
            if self.machine.requestComplete && self.pending.isEmpty { self.pending.append(.end(nil)) }
            self.attempt()
        case .fail(let failure):
            let backend = self.backend
            self.lease = nil
            self.delegate.exchangeFailed(failure, backend: backend)
        case .abort:
            self.lease = nil
            self.delegate.exchangeAborted()
        case .none:
            break
        }
    }

    private func armResponseTimeout() {
        self.deadline = .now() + self.pool.timeouts.response
        self.loop.sweeper.register(self)
    }

    private func disarmResponseTimeout() {
        self.deadline = .distantFuture
        self.loop.sweeper.unregister(self)
    }

}

extension HTTPMethod {
    /// RFC 9110 9.2.2: safe to send twice.
    var isIdempotent: Bool {
        switch self {
        case .GET, .HEAD, .OPTIONS, .TRACE, .PUT, .DELETE: return true
        default: return false
        }
    }
}
