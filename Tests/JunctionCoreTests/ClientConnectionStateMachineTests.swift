import NIOCore
import Testing

@testable import JunctionCore

/// The life of a client connection, driven without a channel: every phase, its deadline, and what
/// each event does in it.
@Suite("Client connection state machine")
struct ClientConnectionStateMachineTests {
    typealias Machine = ClientConnectionStateMachine

    /// `seconds` after an arbitrary origin.
    static func at(_ seconds: Double) -> NIODeadline {
        .uptimeNanoseconds(1_000_000_000_000 + UInt64(seconds * 1_000_000_000))
    }

    static let timeouts = Machine.Timeouts(
        header: .seconds(10),
        idle: .seconds(75),
        shutdownGrace: .seconds(30),
        linger: .seconds(2)
    )

    static func machine(proxy: Bool = false, tls: Bool = false, http2: Bool = false) -> Machine {
        Machine(setup: .init(proxyProtocol: proxy, tls: tls, http2: http2), timeouts: Self.timeouts, now: Self.at(0))
    }

    /// Feeds `input` cut into `pieces` (sizes; the rest goes last), carrying out installs; returns
    /// the installed phases and every byte forwarded to them.
    static func feed(
        _ machine: inout Machine,
        _ input: [UInt8],
        pieces: [Int]
    ) -> (phases: [Machine.Phase], forwarded: [UInt8], rejected: Bool) {
        var phases: [Machine.Phase] = []
        var forwarded: [UInt8] = []
        var offset = 0
        var cuts = pieces.filter { $0 > 0 }
        while offset < input.count {
            let size = cuts.isEmpty ? input.count - offset : min(cuts.removeFirst(), input.count - offset)
            var action = machine.bytesReceived(ByteBuffer(bytes: input[offset..<(offset + size)]))
            offset += size
            loop: while true {
                switch action {
                case .wait:
                    break loop
                case .install(let phase):
                    phases.append(phase)
                    action = machine.phaseInstalled()
                case .forward(let bytes):
                    forwarded += bytes.readableBytesView
                    break loop
                case .reject:
                    return (phases, forwarded, true)
                }
            }
        }
        return (phases, forwarded, false)
    }

    static let request = Array("POST /api/v1/login HTTP/1.1\r\nHost: chat\r\nContent-Length: 2\r\n\r\n{}".utf8)
    static let proxyV1 = Array("PROXY TCP4 203.0.113.9 10.0.0.1 56324 443\r\n".utf8)
    static let proxyV2: [UInt8] =
        ProxyProtocolHeader.v2Signature + [0x21, 0x11, 0x00, 12, 198, 51, 100, 23, 10, 0, 0, 1, 0x9C, 0x40, 0x01, 0xBB]
    static let h2Preface = HTTP2Preface.bytes + [0, 0, 0, 4, 0, 0, 0, 0, 0]
    /// A TLS record header and the start of a ClientHello.
    static let clientHello: [UInt8] =
        [0x16, 0x03, 0x01, 0x00, 0x30, 0x01, 0x00, 0x00, 0x2C, 0x03, 0x03] + Array(repeating: 7, count: 40)

    /// How a stream of bytes can be cut: whole, after the preface, and one byte at a time.
    static func cuts(prefaceLength: Int, total: Int) -> [[Int]] {
        [[], [prefaceLength], Array(repeating: 1, count: total)]
    }

    @Test(
        "Setup at accept: what is installed at once, and whether the head reads the first bytes itself",
        arguments: [
            (false, false, false, Machine.Phase.http1, true),
            (false, true, false, .tls, true),
            (false, true, true, .tls, true),
            (false, false, true, nil, false),
            (true, false, false, nil, false),
            (true, true, true, nil, false),
        ] as [(Bool, Bool, Bool, Machine.Phase?, Bool)]
    )
    func setupAtAccept(proxy: Bool, tls: Bool, http2: Bool, installed: Machine.Phase?, passThrough: Bool) {
        var machine = Self.machine(proxy: proxy, tls: tls, http2: http2)
        #expect(machine.initialPhase == installed)
        if installed != nil { #expect(machine.phaseInstalled() == .wait, "nothing arrived yet") }
        #expect(machine.passesBytesThrough == passThrough)
        #expect(machine.deadline == Self.at(10), "client_header_timeout from accept")
    }

    @Test(
        "A PROXY header hands every byte behind it to the next phase, however the stream is cut",
        arguments: [
            ("v1 then HTTP/1.1", false, false, Self.proxyV1, Self.request, Machine.Phase.http1),
            ("v2 then HTTP/1.1", false, false, Self.proxyV2, Self.request, .http1),
            ("v1 then TLS", true, false, Self.proxyV1, Self.clientHello, .tls),
            ("v2 then TLS", true, true, Self.proxyV2, Self.clientHello, .tls),
            ("v1 then h2c", false, true, Self.proxyV1, Self.h2Preface, .http2),
            ("v2 then HTTP/1.1 on an h2c listener", false, true, Self.proxyV2, Self.request, .http1),
        ]
    )
    func proxyHeaderHandOver(name: String, tls: Bool, http2: Bool, header: [UInt8], rest: [UInt8], phase: Machine.Phase)
    {
        for pieces in Self.cuts(prefaceLength: header.count, total: header.count + rest.count) {
            var machine = Self.machine(proxy: true, tls: tls, http2: http2)
            let result = Self.feed(&machine, header + rest, pieces: pieces)
            #expect(!result.rejected, "\(name)")
            #expect(result.phases == [phase], "\(name), cut \(pieces.prefix(3))")
            #expect(result.forwarded == rest, "\(name), cut \(pieces.prefix(3)): every byte, once, in order")
            #expect(machine.passesBytesThrough)
            #expect(machine.clientAddress == (header == Self.proxyV1 ? "203.0.113.9" : "198.51.100.23"))
            #expect(machine.deadline == Self.at(10), "the header deadline still counts from accept")
        }
    }

    @Test(
        "The h2c sniffer holds what could still be the preface and hands it all over once it knows",
        arguments: [
            (Self.h2Preface, Machine.Phase.http2),
            (Self.request, .http1),
            (Array("PRI * HTTP/1.1\r\n\r\n".utf8), .http1),
            (Array("P".utf8) + Self.request.dropFirst(), .http1),
        ]
    )
    func sniffer(input: [UInt8], phase: Machine.Phase) {
        for pieces in Self.cuts(prefaceLength: 1, total: input.count) {
            var machine = Self.machine(http2: true)
            #expect(machine.initialPhase == nil)
            let result = Self.feed(&machine, input, pieces: pieces)
            #expect(result.phases == [phase], "cut \(pieces.prefix(3))")
            #expect(result.forwarded == input, "cut \(pieces.prefix(3))")
        }
    }

    @Test("A partial preface waits; bytes after the decision pass straight through")
    func snifferWaits() {
        var machine = Self.machine(http2: true)
        let read = machine.bytesReceived(ByteBuffer(bytes: HTTP2Preface.bytes.prefix(10)))
        #expect(read == .wait)
        #expect(!machine.passesBytesThrough)
        let read2 = machine.bytesReceived(ByteBuffer(bytes: HTTP2Preface.bytes.dropFirst(10)))
        #expect(read2 == .install(.http2))
        let installed = machine.phaseInstalled()
        #expect(installed == .forward(ByteBuffer(bytes: HTTP2Preface.bytes)))
        let read3 = machine.bytesReceived(ByteBuffer(string: "more"))
        #expect(read3 == .forward(ByteBuffer(string: "more")))
    }

    @Test(
        "Anything but a PROXY header is refused on a PROXY listener",
        arguments: ["GET / HTTP/1.1\r\n\r\n", "PROXY TCP4 1.2.3.4\r\n", "\u{16}\u{03}\u{01}"]
    )
    func proxyRefused(input: String) {
        var machine = Self.machine(proxy: true)
        guard case .reject = machine.bytesReceived(ByteBuffer(string: input)) else {
            Issue.record("\(input) was not refused")
            return
        }
        #expect(machine.state == .closed)
    }

    @Test(
        "Setup phases close at the header deadline counted from accept, not before",
        arguments: [(true, false, false), (false, true, false), (false, false, true), (true, true, true)]
    )
    func setupDeadlines(proxy: Bool, tls: Bool, http2: Bool) {
        var machine = Self.machine(proxy: proxy, tls: tls, http2: http2)
        if machine.initialPhase != nil { _ = machine.phaseInstalled() }
        let due = machine.deadlinePassed(now: Self.at(9.9))
        #expect(due == .none)
        let due2 = machine.deadlinePassed(now: Self.at(10))
        #expect(due2 == .close)
        #expect(machine.state == .closed)
        #expect(machine.deadline == .distantFuture, "nothing more to time")
        let due3 = machine.deadlinePassed(now: Self.at(11))
        #expect(due3 == .none)
    }

    @Test("TLS: ALPN picks HTTP/2 only where the listener offers it; the header deadline goes on from accept")
    func alpn() {
        for (http2, alpn, expected) in [
            (true, "h2", Machine.Phase.http2), (true, "http/1.1", .http1), (true, nil, .http1), (false, "h2", .http1),
        ] as [(Bool, String?, Machine.Phase)] {
            var machine = Self.machine(tls: true, http2: http2)
            _ = machine.phaseInstalled()
            let phase = machine.tlsHandshakeCompleted(alpn: alpn)
            #expect(phase == expected)
            let installed = machine.phaseInstalled()
            #expect(installed == .wait)
            #expect(machine.deadline == Self.at(10))
            let expectedAction: Machine.DeadlineAction =
                expected == .http1 ? .requestTimeout : .http2(.sendGoAway(lastStreamID: 0, thenClose: true))
            let due = machine.deadlinePassed(now: Self.at(10))
            #expect(due == expectedAction)
        }
    }

    /// An HTTP/1.1 connection past setup.
    static func http1() -> Machine {
        var machine = Self.machine()
        _ = machine.phaseInstalled()
        return machine
    }

    @Test("HTTP/1.1: 408 at the first request's header deadline; keep-alive idle; a later head's own deadline")
    func http1Deadlines() {
        var machine = Self.http1()
        let head = machine.http1RequestHeadArrived()
        #expect(head == .process)
        #expect(machine.deadline == .distantFuture, "the exchange times the request")
        machine.http1RequestEnded()
        let keepsAlive = machine.http1ResponseStarting(requestWantsClose: false)
        #expect(keepsAlive)
        let ended = machine.http1ResponseEnded(now: Self.at(20))
        #expect(ended == .keepAlive)
        #expect(machine.deadline == Self.at(95), "client_idle_timeout between requests")
        machine.http1BytesArrived(now: Self.at(30))
        #expect(machine.deadline == Self.at(40), "part of a head: client_header_timeout from its first byte")
        machine.http1BytesArrived(now: Self.at(35))
        #expect(machine.deadline == Self.at(40), "more of the same head does not move it")
        let due = machine.deadlinePassed(now: Self.at(40))
        #expect(due == .requestTimeout)

        var idle = Self.http1()
        _ = idle.http1RequestHeadArrived()
        idle.http1RequestEnded()
        _ = idle.http1ResponseStarting(requestWantsClose: false)
        _ = idle.http1ResponseEnded(now: Self.at(1))
        let due2 = idle.deadlinePassed(now: Self.at(76))
        #expect(due2 == .close, "idle: closed without an answer")
    }

    @Test("HTTP/1.1: keep-alive, pipelining, close when asked, when quiescing or when the body was not read")
    func http1Responses() {
        var machine = Self.http1()
        let head = machine.http1RequestHeadArrived()
        #expect(head == .process)
        let head2 = machine.http1RequestHeadArrived()
        #expect(head2 == .queue, "a pipelined request waits")
        machine.http1RequestEnded()
        let keepsAlive = machine.http1ResponseStarting(requestWantsClose: false)
        #expect(keepsAlive)
        let ended = machine.http1ResponseEnded(now: Self.at(1))
        #expect(ended == .keepAlive)

        var asked = Self.http1()
        _ = asked.http1RequestHeadArrived()
        asked.http1RequestEnded()
        let keepsAlive2 = asked.http1ResponseStarting(requestWantsClose: true)
        #expect(!keepsAlive2)
        let ended2 = asked.http1ResponseEnded(now: Self.at(1))
        #expect(ended2 == .close)

        var early = Self.http1()
        _ = early.http1RequestHeadArrived()
        let keepsAlive3 = early.http1ResponseStarting(requestWantsClose: false)
        #expect(!keepsAlive3, "answered before the body ended")
        let ended3 = early.http1ResponseEnded(now: Self.at(1))
        #expect(ended3 == .linger)
        #expect(early.deadline == Self.at(3), "lingers for 2 s")
        let head3 = early.http1RequestHeadArrived()
        #expect(head3 == .drop)
        let lingerDone = early.http1LingerDone()
        #expect(lingerDone)
        #expect(early.state == .closed)

        var lingerTimeout = Self.http1()
        _ = lingerTimeout.http1RequestHeadArrived()
        _ = lingerTimeout.http1ResponseStarting(requestWantsClose: false)
        _ = lingerTimeout.http1ResponseEnded(now: Self.at(1))
        let due = lingerTimeout.deadlinePassed(now: Self.at(3))
        #expect(due == .close)

        var oneZero = Self.http1()
        _ = oneZero.http1RequestHeadArrived()
        oneZero.http1RequestEnded()
        let keepsAlive4 = oneZero.http1ResponseStarting(requestWantsClose: false)
        #expect(keepsAlive4)
        oneZero.http1ResponseMustClose()
        let ended4 = oneZero.http1ResponseEnded(now: Self.at(1))
        #expect(ended4 == .close)

        var draining = Self.http1()
        _ = draining.http1RequestHeadArrived()
        let quiesced = draining.quiesce(now: Self.at(5))
        #expect(quiesced == .finish, "busy: finish first")
        draining.http1RequestEnded()
        let keepsAlive5 = draining.http1ResponseStarting(requestWantsClose: false)
        #expect(!keepsAlive5)
        let ended5 = draining.http1ResponseEnded(now: Self.at(6))
        #expect(ended5 == .close)

        var startedBefore = Self.http1()
        _ = startedBefore.http1RequestHeadArrived()
        startedBefore.http1RequestEnded()
        let keepsAlive6 = startedBefore.http1ResponseStarting(requestWantsClose: false)
        #expect(keepsAlive6, "head out with keep-alive")
        _ = startedBefore.quiesce(now: Self.at(5))
        let ended6 = startedBefore.http1ResponseEnded(now: Self.at(6))
        #expect(ended6 == .close, "but the shutdown ends it")
    }

    @Test("A tunnel has no deadline of its own here; a shutdown gives it the grace")
    func tunnel() {
        var machine = Self.http1()
        _ = machine.http1RequestHeadArrived()
        machine.http1Upgraded()
        #expect(machine.state == .tunnel)
        #expect(machine.deadline == .distantFuture)
        let head = machine.http1RequestHeadArrived()
        #expect(head == .drop)
        let quiesced = machine.quiesce(now: Self.at(100))
        #expect(quiesced == .finish)
        #expect(machine.deadline == Self.at(130))
        let due = machine.deadlinePassed(now: Self.at(129))
        #expect(due == .none)
        let due2 = machine.deadlinePassed(now: Self.at(130))
        #expect(due2 == .close)
    }

    /// An h2c connection past setup.
    static func http2() -> Machine {
        var machine = Self.machine(http2: true)
        _ = machine.bytesReceived(ByteBuffer(bytes: HTTP2Preface.bytes))
        _ = machine.phaseInstalled()
        return machine
    }

    @Test("HTTP/2 without a stream: GOAWAY and close at the header deadline from accept")
    func http2NoStream() {
        var machine = Self.http2()
        #expect(machine.deadline == Self.at(10))
        let due = machine.deadlinePassed(now: Self.at(10))
        #expect(due == .http2(.sendGoAway(lastStreamID: 0, thenClose: true)))
        #expect(machine.state == .closed)
    }

    @Test("HTTP/2 idle: GOAWAY and PING after client_idle_timeout with no open stream; the ack brings the final GOAWAY")
    func http2Idle() {
        var machine = Self.http2()
        machine.http2StreamOpened(1)
        machine.http2StreamOpened(3)
        #expect(machine.deadline == .distantFuture, "streams open: no idle deadline")
        let afterClose = machine.http2StreamClosed(now: Self.at(2))
        #expect(afterClose == .none)
        #expect(machine.deadline == .distantFuture, "one still open")
        let afterClose2 = machine.http2StreamClosed(now: Self.at(3))
        #expect(afterClose2 == .none)
        #expect(machine.deadline == Self.at(78), "no open stream: client_idle_timeout")
        machine.http2StreamOpened(5)
        #expect(machine.deadline == .distantFuture)
        _ = machine.http2StreamClosed(now: Self.at(10))
        let due = machine.deadlinePassed(now: Self.at(85))
        #expect(due == .http2(.sendGoAwayAndPing))
        #expect(machine.deadline == Self.at(115), "shutdown_grace from the GOAWAY")
        let afterAck = machine.http2PingAcked(1234)
        #expect(afterAck == .none, "someone else's PING")
        let afterAck2 = machine.http2PingAcked(Machine.goAwayPingData)
        #expect(afterAck2 == .sendGoAway(lastStreamID: 5, thenClose: true))
        #expect(machine.state == .closed)
    }

    @Test("HTTP/2: a GOAWAY whose PING is never acknowledged is closed when the grace is over")
    func http2PingNeverAcked() {
        var machine = Self.http2()
        machine.http2StreamOpened(1)
        _ = machine.http2StreamClosed(now: Self.at(0))
        let due = machine.deadlinePassed(now: Self.at(75))
        #expect(due == .http2(.sendGoAwayAndPing))
        let due2 = machine.deadlinePassed(now: Self.at(104))
        #expect(due2 == .none)
        let due3 = machine.deadlinePassed(now: Self.at(105))
        #expect(due3 == .close)
    }

    @Test("HTTP/2 shutdown: streams in flight finish after the final GOAWAY; the last one closes the connection")
    func http2Shutdown() {
        var machine = Self.http2()
        machine.http2StreamOpened(1)
        machine.http2StreamOpened(3)
        let quiesced = machine.quiesce(now: Self.at(5))
        #expect(quiesced == .http2(.sendGoAwayAndPing))
        machine.http2StreamOpened(5)  // sent before the client saw the GOAWAY: served
        let afterAck = machine.http2PingAcked(Machine.goAwayPingData)
        #expect(afterAck == .sendGoAway(lastStreamID: 5, thenClose: false))
        let afterClose = machine.http2StreamClosed(now: Self.at(6))
        #expect(afterClose == .none)
        let afterClose2 = machine.http2StreamClosed(now: Self.at(7))
        #expect(afterClose2 == .none)
        let afterClose3 = machine.http2StreamClosed(now: Self.at(8))
        #expect(afterClose3 == .close)
        #expect(machine.state == .closed)

        var idle = Self.http2()
        idle.http2StreamOpened(1)
        _ = idle.http2StreamClosed(now: Self.at(1))
        #expect(
            idle.quiesce(now: Self.at(2)) == .http2(.sendGoAway(lastStreamID: 1, thenClose: true)),
            "no stream open: the final GOAWAY at once"
        )

        var stuck = Self.http2()
        stuck.http2StreamOpened(1)
        _ = stuck.quiesce(now: Self.at(5))
        _ = stuck.http2PingAcked(Machine.goAwayPingData)
        let due = stuck.deadlinePassed(now: Self.at(35))
        #expect(due == .close, "a stream still open when the grace ends")
    }

    @Test("HTTP/2: a connection error closes; the client's GOAWAY closes with its last stream")
    func http2Errors() {
        var failed = Self.http2()
        failed.http2StreamOpened(1)
        let afterError = failed.http2ConnectionErrorSent()
        #expect(afterError == .close)
        #expect(failed.state == .closed)

        var leaving = Self.http2()
        leaving.http2StreamOpened(1)
        let afterGoAway = leaving.http2GoAwayReceived()
        #expect(afterGoAway == .none)
        let afterClose = leaving.http2StreamClosed(now: Self.at(1))
        #expect(afterClose == .close)

        var idleLeaving = Self.http2()
        let afterGoAway2 = idleLeaving.http2GoAwayReceived()
        #expect(afterGoAway2 == .close)
    }

    @Test(
        "A graceful shutdown closes at once what has nothing in flight",
        arguments: [(true, false, false), (false, true, false), (false, false, true), (false, false, false)]
    )
    func quiesceIdle(proxy: Bool, tls: Bool, http2: Bool) {
        var machine = Self.machine(proxy: proxy, tls: tls, http2: http2)
        if machine.initialPhase != nil { _ = machine.phaseInstalled() }
        let quiesced = machine.quiesce(now: Self.at(1))
        #expect(quiesced == .close)
        #expect(machine.state == .closed)
        #expect(machine.quiescing)
    }

    @Test("Once closed, events change nothing and nothing is timed")
    func closedIgnoresEverything() {
        var machine = Self.http2()
        machine.closed()
        machine.http2StreamOpened(1)
        let afterClose = machine.http2StreamClosed(now: Self.at(1))
        #expect(afterClose == .none)
        let afterAck = machine.http2PingAcked(Machine.goAwayPingData)
        #expect(afterAck == .none)
        let afterGoAway = machine.http2GoAwayReceived()
        #expect(afterGoAway == .none)
        let afterError = machine.http2ConnectionErrorSent()
        #expect(afterError == .none)
        let head = machine.http1RequestHeadArrived()
        #expect(head == .drop)
        let read = machine.bytesReceived(ByteBuffer(string: "x"))
        #expect(read == .wait)
        let quiesced = machine.quiesce(now: Self.at(2))
        #expect(quiesced == .finish)
        let due = machine.deadlinePassed(now: Self.at(1000))
        #expect(due == .none)
        #expect(machine.state == .closed)
    }

    /// A machine in each state a connection can be in, built by driving it there.
    static func inState(_ name: String) -> Machine {
        var machine: Machine
        switch name {
        case "proxyHeader":
            machine = Self.machine(proxy: true)
            _ = machine.bytesReceived(ByteBuffer(string: "PROXY TCP4"))
        case "sniffing":
            machine = Self.machine(http2: true)
            _ = machine.bytesReceived(ByteBuffer(string: "PRI *"))
        case "tlsHandshake":
            machine = Self.machine(tls: true)
            _ = machine.phaseInstalled()
        case "http1.awaitingFirstRequest":
            machine = Self.http1()
        case "http1.active", "http1.idle", "http1.receivingHead", "http1.lingering", "tunnel":
            machine = Self.http1()
            _ = machine.http1RequestHeadArrived()
            if name == "tunnel" {
                machine.http1Upgraded()
            } else if name != "http1.active" {
                if name != "http1.lingering" { machine.http1RequestEnded() }
                _ = machine.http1ResponseStarting(requestWantsClose: false)
                _ = machine.http1ResponseEnded(now: Self.at(1))
                if name == "http1.receivingHead" { machine.http1BytesArrived(now: Self.at(2)) }
            }
        case "http2.awaitingFirstStream":
            machine = Self.http2()
        case "http2.serving", "http2.servingIdle", "http2.goingAwayPing", "http2.goingAwayFinal":
            machine = Self.http2()
            machine.http2StreamOpened(1)
            if name == "http2.servingIdle" { _ = machine.http2StreamClosed(now: Self.at(1)) }
            if name.hasPrefix("http2.goingAway") { _ = machine.quiesce(now: Self.at(1)) }
            if name == "http2.goingAwayFinal" { _ = machine.http2PingAcked(Machine.goAwayPingData) }
        default:
            machine = Self.machine()
            machine.closed()
        }
        return machine
    }

    @Test(
        "Every state: its deadline, what the deadline does, what a graceful shutdown does",
        arguments: [
            ("proxyHeader", Self.at(10), Machine.DeadlineAction.close, Machine.QuiesceAction.close),
            ("sniffing", Self.at(10), .close, .close),
            ("tlsHandshake", Self.at(10), .close, .close),
            ("http1.awaitingFirstRequest", Self.at(10), .requestTimeout, .close),
            ("http1.active", .distantFuture, .none, .finish),
            ("http1.idle", Self.at(76), .close, .close),
            ("http1.receivingHead", Self.at(12), .requestTimeout, .finish),
            ("http1.lingering", Self.at(3), .close, .finish),
            ("tunnel", .distantFuture, .none, .finish),
            (
                "http2.awaitingFirstStream", Self.at(10), .http2(.sendGoAway(lastStreamID: 0, thenClose: true)),
                .http2(.sendGoAway(lastStreamID: 0, thenClose: true))
            ),
            ("http2.serving", .distantFuture, .none, .http2(.sendGoAwayAndPing)),
            (
                "http2.servingIdle", Self.at(76), .http2(.sendGoAwayAndPing),
                .http2(.sendGoAway(lastStreamID: 1, thenClose: true))
            ),
            ("http2.goingAwayPing", Self.at(31), .close, .http2(.none)),
            ("http2.goingAwayFinal", Self.at(31), .close, .http2(.none)),
            ("closed", .distantFuture, .none, .finish),
        ] as [(String, NIODeadline, Machine.DeadlineAction, Machine.QuiesceAction)]
    )
    func everyState(
        name: String,
        deadline: NIODeadline,
        onDeadline: Machine.DeadlineAction,
        onQuiesce: Machine.QuiesceAction
    ) {
        var timed = Self.inState(name)
        #expect(timed.deadline == deadline, "\(name)")
        if deadline != .distantFuture {
            let early = timed.deadlinePassed(now: deadline - .milliseconds(1))
            #expect(early == .none, "\(name): nothing before the deadline")
        }
        let due = timed.deadlinePassed(now: deadline == .distantFuture ? Self.at(100_000) : deadline)
        #expect(due == onDeadline, "\(name)")
        #expect(timed.deadline > (deadline == .distantFuture ? Self.at(0) : deadline), "\(name): the deadline moved on")

        var quiescing = Self.inState(name)
        let quiesced = quiescing.quiesce(now: Self.at(50))
        #expect(quiesced == onQuiesce, "\(name)")
        #expect(quiescing.quiescing)
        if quiescing.state != .closed {
            #expect(quiescing.deadline <= Self.at(80), "\(name): closed within the grace at the latest")
        }
    }
}
