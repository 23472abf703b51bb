import NIOCore

/// The setup of one client connection, without I/O: PROXY header (if the listener has it) → TLS
/// handshake (if TLS) → protocol selection (ALPN, or the h2c preface on a plain listener) → handed
/// to the HTTP/1.1 or HTTP/2 front, all under `client_header_timeout` counted from accept (the
/// front takes the same deadline over for the first request).
///
/// `ClientConnection` feeds it every event and carries out the actions it returns. Bytes the
/// setup phases hold (a PROXY header's tail, the first bytes of a plain HTTP/2 listener) are kept
/// here and handed, whole, to the phase that comes next.
struct ClientConnectionStateMachine {
    /// How the listener starts its connections.
    struct Setup: Equatable {
        var proxyProtocol = false
        var tls = false
        var http2 = false
        /// The listener answers ACME tls-alpn-01 validations: the ClientHello is looked at first.
        var acmeValidations = false
    }

    /// The pipeline a phase needs.
    enum Phase: Equatable {
        /// The TLS handler, in front of the connection's setup.
        case tls
        /// The TLS handler of an ACME tls-alpn-01 validation (the challenge certificate).
        case validationTLS
        /// The HTTP/1.1 front, which takes the connection over.
        case http1
        /// The HTTP/2 front, which takes the connection over.
        case http2
    }

    enum State: Equatable {
        /// Reading the PROXY protocol header; `held` is what arrived so far.
        case proxyHeader(held: ByteBuffer)
        /// `phase`'s handlers are being set up; `held` (what arrived behind a preface) goes to
        /// them once they are in place.
        case installing(Phase, held: ByteBuffer)
        /// Holding the first TLS record until it shows whether the client is an ACME validation.
        case peekingHello(held: ByteBuffer)
        /// The TLS handler has the bytes; ALPN decides what follows.
        case tlsHandshake
        /// An ACME validation's handshake: once done, the validator has what it came for.
        case validationHandshake
        /// A plain listener with HTTP/2: the first bytes tell the h2c preface from HTTP/1.1.
        case sniffing(held: ByteBuffer)
        /// A front has the connection; the setup is over.
        case handedOver(Phase)
        case closed
    }

    /// What to do with bytes that arrived from the socket.
    enum ReadAction: Equatable {
        /// Held here until more arrive.
        case wait
        /// Set up `phase`'s handlers, then call `phaseInstalled()`.
        case install(Phase)
        /// Pass these bytes on to the phase just set up (a front: then leave).
        case forward(ByteBuffer)
        /// Not a valid start for this listener: close.
        case reject(String)
    }

    private(set) var state: State
    let setup: Setup
    /// `client_header_timeout` counted from accept.
    let headerDeadline: NIODeadline
    /// The client's address from the PROXY header (nil: the socket's peer).
    private(set) var clientAddress: String?
    /// An upgrade handed the listener over during the setup: the front must hear of it.
    private(set) var handOverPending = false

    /// Whether the connection was refused or went away.
    var isClosed: Bool {
        if case .closed = self.state { return true }
        return false
    }

    /// Whether the PROXY header is still awaited (the client is not known yet).
    var awaitsProxyHeader: Bool {
        if case .proxyHeader = self.state { return true }
        return false
    }

    init(setup: Setup, headerTimeout: TimeAmount, now: NIODeadline) {
        self.setup = setup
        self.headerDeadline = now + headerTimeout
        if setup.proxyProtocol {
            self.state = .proxyHeader(held: ByteBuffer())
        } else {
            self.state = Self.afterProxyHeader(setup, held: ByteBuffer())
        }
    }

    /// The phase to set up at accept, before any byte arrived (nil: the setup reads the first
    /// bytes itself).
    var initialPhase: Phase? {
        switch self.state {
        case .installing(let phase, _): return phase
        default: return nil
        }
    }

    /// When the setup must be over: the header deadline, while it runs.
    var deadline: NIODeadline {
        switch self.state {
        case .proxyHeader, .installing, .tlsHandshake, .sniffing, .peekingHello, .validationHandshake:
            return self.headerDeadline
        case .handedOver, .closed: return .distantFuture
        }
    }

    /// Bytes arrived from the socket (after the TLS handshake: none do, the front has them).
    mutating func bytesReceived(_ bytes: ByteBuffer) -> ReadAction {
        switch self.state {
        case .proxyHeader(let held):
            self.state = .closed  // `held` is the only reference while it grows: no copy
            return self.readProxyHeader(Self.appending(bytes, to: held))
        case .sniffing(let held):
            self.state = .closed
            return self.sniff(Self.appending(bytes, to: held))
        case .peekingHello(let held):
            self.state = .closed
            return self.peek(Self.appending(bytes, to: held))
        case .installing(let phase, _):
            assertionFailure("bytes arrived while \(phase) was being set up")
            self.state = .closed
            return .reject("bytes arrived while the connection was being set up")
        case .tlsHandshake, .validationHandshake, .handedOver:
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

    /// The handlers `install` asked for are in place: whatever the setup held goes to them now.
    mutating func phaseInstalled() -> ReadAction {
        guard case .installing(let phase, let held) = self.state else {
            assertionFailure("phaseInstalled in \(self.state)")
            return .wait
        }
        switch phase {
        case .tls: self.state = .tlsHandshake
        case .validationTLS: self.state = .validationHandshake
        case .http1, .http2: self.state = .handedOver(phase)
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
            case .peekingHello(let peeked):
                self.state = .closed
                return self.peek(peeked)
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

    /// An ACME validation gets the challenge's TLS handler, every other client the listener's.
    private mutating func peek(_ held: ByteBuffer) -> ReadAction {
        let phase: Phase
        switch ClientHelloPeek.inspect(held) {
        case .incomplete:
            self.state = .peekingHello(held: held)
            return .wait
        case .acmeValidation: phase = .validationTLS
        case .other: phase = .tls
        }
        self.state = .installing(phase, held: held)
        return .install(phase)
    }

    /// What follows the PROXY header (or accept, without one).
    private static func afterProxyHeader(_ setup: Setup, held: ByteBuffer) -> State {
        if setup.tls && setup.acmeValidations { return .peekingHello(held: held) }
        if setup.tls { return .installing(.tls, held: held) }
        if setup.http2 { return .sniffing(held: held) }
        return .installing(.http1, held: held)
    }

    /// The TLS handshake completed with `alpn` negotiated: the front to set up behind it (nil: none;
    /// after an ACME validation's handshake the state is `closed` and the connection closes).
    mutating func tlsHandshakeCompleted(alpn: String?) -> Phase? {
        if case .validationHandshake = self.state {
            self.state = .closed
            return nil
        }
        guard case .tlsHandshake = self.state else {
            assert(self.state == .closed, "TLS handshake completed in \(self.state)")
            return nil
        }
        let phase: Phase = self.setup.http2 && alpn == "h2" ? .http2 : .http1
        self.state = .installing(phase, held: ByteBuffer())
        return phase
    }

    /// The deadline passed: whether to close (the setup did not finish in time).
    mutating func deadlinePassed(now: NIODeadline) -> Bool {
        guard self.deadline <= now else { return false }
        self.state = .closed
        return true
    }

    /// A graceful shutdown reached the setup: no request yet, so the client retries elsewhere.
    /// Whether to close now.
    mutating func quiesce() -> Bool {
        switch self.state {
        case .proxyHeader, .installing, .tlsHandshake, .sniffing, .peekingHello, .validationHandshake:
            self.state = .closed
            return true
        case .handedOver, .closed:
            return false
        }
    }

    /// An upgrade handed the listener over during the setup: the setup finishes (the client's
    /// request is on its way), and the front is told once installed (`handOverPending`).
    mutating func handOver() {
        switch self.state {
        case .proxyHeader, .installing, .tlsHandshake, .sniffing, .peekingHello, .validationHandshake:
            self.handOverPending = true
        case .handedOver, .closed:
            break
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
