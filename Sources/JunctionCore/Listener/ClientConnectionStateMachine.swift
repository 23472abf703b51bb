import NIOCore

/// The whole life of one client connection, without I/O: PROXY header (if the listener has it) →
/// TLS handshake (if TLS) → protocol selection (ALPN, or the h2c preface on a plain listener) →
/// HTTP/1.1 or HTTP/2 → (tunnel) → closed, with the one deadline the current phase has.
///
/// `ClientConnection` feeds it every event and carries out the actions it returns. The deadlines,
/// as contract v2 words `limits`:
/// - `client_header_timeout` runs from accept until the first request head is complete, across
///   the PROXY header, the TLS handshake, the h2c preface and the first HTTP/2 stream; on HTTP/1.1
///   it also runs from the first byte of each later request head;
/// - `client_idle_timeout` runs while an HTTP/1.1 connection waits between requests and while an
///   HTTP/2 connection has no open stream;
/// - `shutdown_grace` runs from a GOAWAY (idle or shutdown) or a graceful shutdown to the close.
///
/// Bytes the setup phases hold (a PROXY header, the first bytes of a plain HTTP/2 listener) are
/// kept here and handed, whole, to the phase that comes next.
struct ClientConnectionStateMachine {
    /// The `limits` the deadlines come from.
    struct Timeouts: Equatable {
        var header: TimeAmount
        var idle: TimeAmount
        var shutdownGrace: TimeAmount
        /// How long an error answer waits for the client to stop sending before closing.
        var linger: TimeAmount = .seconds(2)
    }

    /// How the listener starts its connections.
    struct Setup: Equatable {
        var proxyProtocol = false
        var tls = false
        var http2 = false
    }

    /// The pipeline a phase needs behind the connection's head.
    enum Phase: Equatable {
        case tls
        case http1
        case http2
    }

    /// The HTTP/1.1 request in flight.
    struct HTTP1Request: Equatable {
        /// The whole request (its end) arrived.
        var complete = false
        /// The response must end the connection (decided when its head goes out).
        var closeAfterResponse = false
    }

    /// Where an HTTP/1.1 connection is between requests.
    enum HTTP1State: Equatable {
        /// No byte of the first request yet: the header deadline runs from accept.
        case awaitingFirstRequest
        /// Part of a later request head arrived.
        case receivingHead(deadline: NIODeadline)
        /// Between requests on a keep-alive connection.
        case idle(deadline: NIODeadline)
        /// A request is being proxied (no deadline here: the exchange has its own).
        case active(HTTP1Request)
        /// An error answer went out while the client was still sending: its input is read and
        /// dropped for a moment so that closing does not reset the answer away.
        case lingering(deadline: NIODeadline)
    }

    /// Where an HTTP/2 connection is.
    enum HTTP2State: Equatable {
        /// Preface and settings, but no stream yet: the header deadline runs from accept.
        case awaitingFirstStream
        /// Streams open; with none, `idleDeadline` is when the connection goes away.
        case serving(openStreams: Int, idleDeadline: NIODeadline?)
        /// A GOAWAY went out (or came in). `pingOutstanding`: the first, graceful GOAWAY and a PING
        /// went out and the final GOAWAY waits for the PING's ack. The connection closes when no
        /// stream is open after the final GOAWAY, or at `closeBy`.
        case goingAway(openStreams: Int, pingOutstanding: Bool)
    }

    enum State: Equatable {
        /// Reading the PROXY protocol header; `held` is what arrived so far.
        case proxyHeader(held: ByteBuffer)
        /// The head is setting up `phase`'s handlers; `held` (what arrived behind a preface) goes
        /// to them once they are in place.
        case installing(Phase, held: ByteBuffer)
        /// The TLS handler has the bytes; ALPN decides what follows.
        case tlsHandshake
        /// A plain listener with HTTP/2: the first bytes tell the h2c preface from HTTP/1.1.
        case sniffing(held: ByteBuffer)
        case http1(HTTP1State)
        case http2(HTTP2State)
        /// The HTTP/1.1 connection became a WebSocket tunnel (the tunnel has its idle deadline).
        case tunnel
        case closed
    }

    /// What to do with bytes that arrived from the socket.
    enum ReadAction: Equatable {
        /// Held here until more arrive.
        case wait
        /// Set up `phase`'s handlers behind the head, then call `phaseInstalled()`.
        case install(Phase)
        /// Pass these bytes on to the handlers behind the head.
        case forward(ByteBuffer)
        /// Not a valid start for this listener: close.
        case reject(String)
    }

    /// What to do with a request head (HTTP/1.1).
    enum HeadAction: Equatable {
        /// Start proxying it.
        case process
        /// A request is still in flight: keep it (and stop reading) until that one is answered.
        case queue
        /// The connection is done with HTTP: drop it.
        case drop
    }

    /// What to do once a response was written whole (HTTP/1.1).
    enum ResponseEndAction: Equatable {
        /// Close once the response is flushed.
        case close
        /// Half-close, read and drop the rest of the request for a moment, then close.
        case linger
        /// Keep the connection: start the next queued request, or wait for one.
        case keepAlive
    }

    /// What an HTTP/2 connection has to send or do.
    enum HTTP2Action: Equatable {
        case none
        /// GOAWAY naming the highest stream id (the client may still have streams on the way)
        /// and a PING whose ack tells when they have arrived (RFC 9113 6.8).
        case sendGoAwayAndPing
        /// The final GOAWAY naming the last stream Junction took; then close if `thenClose`.
        case sendGoAway(lastStreamID: Int, thenClose: Bool)
        /// Flush what was written (a GOAWAY), then close.
        case close
    }

    /// What to do when the deadline passed.
    enum DeadlineAction: Equatable {
        case none
        /// Close the connection (flushing what was written).
        case close
        /// HTTP/1.1: answer 408, then close.
        case requestTimeout
        /// HTTP/2: go away.
        case http2(HTTP2Action)
    }

    /// What a graceful shutdown does to the connection now.
    enum QuiesceAction: Equatable {
        /// Nothing in flight: close now.
        case close
        /// Busy: finish what is in flight (HTTP/1.1 answers with `Connection: close`), closed at
        /// the latest when the grace is over.
        case finish
        /// HTTP/2: go away.
        case http2(HTTP2Action)
    }

    /// The PING payload of the graceful GOAWAY ("JUNCTION").
    static let goAwayPingData: UInt64 = 0x4A55_4E43_5449_4F4E

    private(set) var state: State
    let setup: Setup
    let timeouts: Timeouts
    /// `client_header_timeout` counted from accept: the deadline until the first request head.
    let headerDeadline: NIODeadline
    /// The hard end: a graceful shutdown's or a GOAWAY's grace.
    private(set) var closeBy: NIODeadline = .distantFuture
    /// A graceful shutdown started: responses end the connection.
    private(set) var quiescing = false
    /// The client's address from the PROXY header (nil: the socket's peer).
    private(set) var clientAddress: String?
    /// The highest HTTP/2 stream id opened, for the final GOAWAY.
    private(set) var highestStreamID = 0

    init(setup: Setup, timeouts: Timeouts, now: NIODeadline) {
        self.setup = setup
        self.timeouts = timeouts
        self.headerDeadline = now + timeouts.header
        if setup.proxyProtocol {
            self.state = .proxyHeader(held: ByteBuffer())
        } else {
            self.state = Self.afterProxyHeader(setup, held: ByteBuffer())
        }
    }

    /// The phase to set up at accept, before any byte arrived (nil: the head reads the first bytes).
    var initialPhase: Phase? {
        switch self.state {
        case .installing(let phase, _): return phase
        default: return nil
        }
    }

    /// When something must happen next.
    var deadline: NIODeadline {
        self.state == .closed ? .distantFuture : min(self.phaseDeadline, self.closeBy)
    }

    private var phaseDeadline: NIODeadline {
        switch self.state {
        case .proxyHeader, .installing, .tlsHandshake, .sniffing:
            return self.headerDeadline
        case .http1(.awaitingFirstRequest), .http2(.awaitingFirstStream):
            return self.headerDeadline
        case .http1(.receivingHead(let deadline)), .http1(.idle(let deadline)), .http1(.lingering(let deadline)):
            return deadline
        case .http2(.serving(_, let idleDeadline)):
            return idleDeadline ?? .distantFuture
        case .http1(.active), .http2(.goingAway), .tunnel, .closed:
            return .distantFuture
        }
    }

    /// Whether every byte from the socket now goes straight to the handlers behind the head.
    var passesBytesThrough: Bool {
        switch self.state {
        case .proxyHeader, .installing, .sniffing: return false
        case .tlsHandshake, .http1, .http2, .tunnel, .closed: return true
        }
    }

    // MARK: setup

    /// Bytes arrived from the socket.
    mutating func bytesReceived(_ bytes: ByteBuffer) -> ReadAction {
        switch self.state {
        case .proxyHeader(let held):
            self.state = .closed  // `held` is the only reference while it grows: no copy
            return self.readProxyHeader(Self.appending(bytes, to: held))
        case .sniffing(let held):
            self.state = .closed
            return self.sniff(Self.appending(bytes, to: held))
        case .installing(let phase, _):
            assertionFailure("bytes arrived while \(phase) was being set up")
            self.state = .closed
            return .reject("bytes arrived while the connection was being set up")
        case .tlsHandshake, .http1, .http2, .tunnel:
            return .forward(bytes)
        case .closed:
            return .wait
        }
    }

    private static func appending(_ bytes: ByteBuffer, to held: ByteBuffer) -> ByteBuffer {
        guard held.readableBytes > 0 else { return bytes }
        var held = held
        held.writeImmutableBuffer(bytes)
        return held
    }

    /// The handlers `install` asked for are in place: whatever the head held goes to them now.
    mutating func phaseInstalled() -> ReadAction {
        guard case .installing(let phase, let held) = self.state else {
            assertionFailure("phaseInstalled in \(self.state)")
            return .wait
        }
        switch phase {
        case .tls: self.state = .tlsHandshake
        case .http1: self.state = .http1(.awaitingFirstRequest)
        case .http2: self.state = .http2(.awaitingFirstStream)
        }
        return held.readableBytes > 0 ? .forward(held) : .wait
    }

    private mutating func readProxyHeader(_ held: ByteBuffer) -> ReadAction {
        let parsed: ProxyProtocolHeader.Parse
        do {
            parsed = try ProxyProtocolHeader.parse(held.readableBytesView)
        } catch {
            self.state = .closed
            return .reject("bad PROXY protocol header: \(error)")
        }
        switch parsed {
        case .incomplete:
            self.state = .proxyHeader(held: held)
            return .wait
        case .header(let length, let client):
            self.clientAddress = client
            var rest = held
            rest.moveReaderIndex(forwardBy: length)
            self.state = Self.afterProxyHeader(self.setup, held: rest)
            switch self.state {
            case .sniffing(let sniffed):
                self.state = .closed
                return self.sniff(sniffed)
            case .installing(let phase, _):
                return .install(phase)
            default:
                preconditionFailure("unreachable: \(self.state)")
            }
        }
    }

    private mutating func sniff(_ held: ByteBuffer) -> ReadAction {
        let preface = HTTP2Preface.bytes
        let available = min(held.readableBytes, preface.count)
        let matches = held.readableBytesView.prefix(available).elementsEqual(preface.prefix(available))
        if matches && available < preface.count {
            self.state = .sniffing(held: held)
            return .wait
        }
        let phase: Phase = matches ? .http2 : .http1
        self.state = .installing(phase, held: held)
        return .install(phase)
    }

    /// What follows the PROXY header (or accept, without one).
    private static func afterProxyHeader(_ setup: Setup, held: ByteBuffer) -> State {
        if setup.tls { return .installing(.tls, held: held) }
        if setup.http2 { return .sniffing(held: held) }
        return .installing(.http1, held: held)
    }

    /// The TLS handshake completed with `alpn` negotiated: the phase to set up behind it.
    mutating func tlsHandshakeCompleted(alpn: String?) -> Phase? {
        guard case .tlsHandshake = self.state else {
            assert(self.state == .closed, "TLS handshake completed in \(self.state)")
            return nil
        }
        let phase: Phase = self.setup.http2 && alpn == "h2" ? .http2 : .http1
        self.state = .installing(phase, held: ByteBuffer())
        return phase
    }

    // MARK: HTTP/1.1

    /// Bytes arrived without completing a head: a connection idle between requests now has a
    /// header deadline.
    mutating func http1BytesArrived(now: NIODeadline) {
        if case .http1(.idle) = self.state {
            self.state = .http1(.receivingHead(deadline: now + self.timeouts.header))
        }
    }

    mutating func http1RequestHeadArrived() -> HeadAction {
        switch self.state {
        case .http1(.awaitingFirstRequest), .http1(.idle), .http1(.receivingHead):
            self.state = .http1(.active(HTTP1Request()))
            return .process
        case .http1(.active):
            return .queue
        case .http1(.lingering), .tunnel, .closed:
            return .drop
        default:
            assertionFailure("HTTP/1.1 request head in \(self.state)")
            return .drop
        }
    }

    /// The request in flight arrived whole.
    mutating func http1RequestEnded() {
        guard case .http1(.active(var request)) = self.state else { return }
        request.complete = true
        self.state = .http1(.active(request))
    }

    /// The response head is about to go out; returns whether the connection may stay open after
    /// it. `requestWantsClose` covers `Connection: close`, HTTP/1.0 and failed upgrades.
    mutating func http1ResponseStarting(requestWantsClose: Bool) -> Bool {
        guard case .http1(.active(var request)) = self.state else { return false }
        // A response that starts before the request ended leaves an unknown amount of body behind.
        request.closeAfterResponse = requestWantsClose || self.quiescing || !request.complete
        self.state = .http1(.active(request))
        return !request.closeAfterResponse
    }

    /// The response's body ends with the connection (an HTTP/1.0 client, no length).
    mutating func http1ResponseMustClose() {
        guard case .http1(.active(var request)) = self.state else { return }
        request.closeAfterResponse = true
        self.state = .http1(.active(request))
    }

    /// The response was written whole.
    mutating func http1ResponseEnded(now: NIODeadline) -> ResponseEndAction {
        guard case .http1(.active(let request)) = self.state else {
            self.state = .closed
            return .close
        }
        // Quiescing: a response that started before the shutdown (keep-alive) still ends it.
        if request.closeAfterResponse || self.quiescing {
            if request.complete {
                self.state = .closed
                return .close
            }
            self.state = .http1(.lingering(deadline: now + self.timeouts.linger))
            return .linger
        }
        self.state = .http1(.idle(deadline: now + self.timeouts.idle))
        return .keepAlive
    }

    /// The rest of a refused request arrived while lingering: close now.
    mutating func http1LingerDone() -> Bool {
        guard case .http1(.lingering) = self.state else { return false }
        self.state = .closed
        return true
    }

    /// The backend accepted a WebSocket upgrade: HTTP is over on this connection.
    mutating func http1Upgraded() {
        switch self.state {
        case .http1(.active):
            self.state = .tunnel
        case .closed:
            break  // closed (a shutdown's grace) while the backend was answering
        default:
            assertionFailure("upgrade in \(self.state)")
        }
    }

    // MARK: HTTP/2

    mutating func http2StreamOpened(_ id: Int) {
        self.highestStreamID = max(self.highestStreamID, id)
        switch self.state {
        case .http2(.awaitingFirstStream):
            self.state = .http2(.serving(openStreams: 1, idleDeadline: nil))
        case .http2(.serving(let open, _)):
            self.state = .http2(.serving(openStreams: open + 1, idleDeadline: nil))
        case .http2(.goingAway(let open, let pingOutstanding)):
            // Opened before the client saw the GOAWAY: served.
            self.state = .http2(.goingAway(openStreams: open + 1, pingOutstanding: pingOutstanding))
        case .http2, .closed:
            break
        default:
            assertionFailure("HTTP/2 stream opened in \(self.state)")
        }
    }

    mutating func http2StreamClosed(now: NIODeadline) -> HTTP2Action {
        switch self.state {
        case .http2(.serving(let open, _)):
            assert(open > 0, "more streams closed than opened")
            let left = max(open - 1, 0)
            self.state = .http2(.serving(openStreams: left, idleDeadline: left == 0 ? now + self.timeouts.idle : nil))
            return .none
        case .http2(.goingAway(let open, let pingOutstanding)):
            assert(open > 0, "more streams closed than opened")
            let left = max(open - 1, 0)
            self.state = .http2(.goingAway(openStreams: left, pingOutstanding: pingOutstanding))
            if left == 0 && !pingOutstanding {
                self.state = .closed
                return .close
            }
            return .none
        default:
            // Before any stream opened, or while closing: nothing to count.
            return .none
        }
    }

    /// A PING ack arrived with `data`.
    mutating func http2PingAcked(_ data: UInt64) -> HTTP2Action {
        guard data == Self.goAwayPingData, case .http2(.goingAway(let open, true)) = self.state else { return .none }
        if open == 0 {
            self.state = .closed
            return .sendGoAway(lastStreamID: self.highestStreamID, thenClose: true)
        }
        self.state = .http2(.goingAway(openStreams: open, pingOutstanding: false))
        return .sendGoAway(lastStreamID: self.highestStreamID, thenClose: false)
    }

    /// The client sent GOAWAY: it opens no more streams; the connection ends with its last one.
    mutating func http2GoAwayReceived() -> HTTP2Action {
        switch self.state {
        case .http2(.awaitingFirstStream), .http2(.serving(0, _)), .http2(.goingAway(0, _)):
            self.state = .closed
            return .close
        case .http2(.serving(let open, _)), .http2(.goingAway(let open, _)):
            self.state = .http2(.goingAway(openStreams: open, pingOutstanding: false))
            return .none
        default:
            return .none
        }
    }

    /// Junction's HTTP/2 codec sent a GOAWAY with an error: a connection error ends the
    /// connection once the GOAWAY is flushed (RFC 9113 5.4.1).
    mutating func http2ConnectionErrorSent() -> HTTP2Action {
        guard case .http2 = self.state else { return .none }
        self.state = .closed
        return .close
    }

    /// The graceful GOAWAY: the client gets `shutdown_grace` to finish.
    private mutating func http2GoAway(now: NIODeadline) -> HTTP2Action {
        switch self.state {
        case .http2(.awaitingFirstStream):
            self.state = .closed
            return .sendGoAway(lastStreamID: 0, thenClose: true)
        case .http2(.serving(let open, _)):
            self.state = .http2(.goingAway(openStreams: open, pingOutstanding: true))
            self.closeBy = min(self.closeBy, now + self.timeouts.shutdownGrace)
            return .sendGoAwayAndPing
        case .http2(.goingAway):
            self.closeBy = min(self.closeBy, now + self.timeouts.shutdownGrace)
            return .none
        default:
            return .none
        }
    }

    // MARK: every phase

    /// The deadline passed (`now` is at or after it).
    mutating func deadlinePassed(now: NIODeadline) -> DeadlineAction {
        if self.closeBy <= now {
            let wasOpen = self.state != .closed
            self.state = .closed
            return wasOpen ? .close : .none
        }
        guard self.phaseDeadline <= now else { return .none }
        switch self.state {
        case .proxyHeader, .installing, .tlsHandshake, .sniffing:
            self.state = .closed
            return .close
        case .http1(.awaitingFirstRequest), .http1(.receivingHead):
            self.state = .closed
            return .requestTimeout
        case .http1(.idle), .http1(.lingering):
            self.state = .closed
            return .close
        case .http2(.awaitingFirstStream), .http2(.serving):
            return .http2(self.http2GoAway(now: now))
        case .http1(.active), .http2(.goingAway), .tunnel, .closed:
            return .none
        }
    }

    /// A graceful shutdown started.
    mutating func quiesce(now: NIODeadline) -> QuiesceAction {
        self.quiescing = true
        switch self.state {
        case .proxyHeader, .installing, .tlsHandshake, .sniffing, .http1(.awaitingFirstRequest), .http1(.idle):
            // No request yet, or none in flight: the client retries elsewhere.
            self.state = .closed
            return .close
        case .http1(.receivingHead), .http1(.active), .http1(.lingering), .tunnel:
            self.closeBy = min(self.closeBy, now + self.timeouts.shutdownGrace)
            return .finish
        case .http2(.serving(0, _)):
            self.state = .closed
            return .http2(.sendGoAway(lastStreamID: self.highestStreamID, thenClose: true))
        case .http2:
            return .http2(self.http2GoAway(now: now))
        case .closed:
            return .finish
        }
    }

    /// The connection closed (or failed).
    mutating func closed() {
        self.state = .closed
    }
}

/// The HTTP/2 connection preface a client opens with (RFC 9113 3.4).
enum HTTP2Preface {
    static let bytes = Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8)
}
