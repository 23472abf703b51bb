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
        let result1 = machine.bytesReceived(ByteBuffer(bytes: HTTP2Preface.bytes.prefix(10)))
        #expect(result1 == .wait)
        #expect(!machine.passesBytesThrough)
        let result2 = machine.bytesReceived(ByteBuffer(bytes: HTTP2Preface.bytes.dropFirst(10)))
        #expect(result2 == .install(.http2))
        let result3 = machine.phaseInstalled()
        #expect(result3 == .forward(ByteBuffer(bytes: HTTP2Preface.bytes)))
        let result4 = machine.bytesReceived(ByteBuffer(string: "more"))
        #expect(result4 == .forward(ByteBuffer(string: "more")))
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
        let result5 = machine.deadlinePassed(now: Self.at(9.9))
        #expect(result5 == .none)
        let result6 = machine.deadlinePassed(now: Self.at(10))
        #expect(result6 == .close)
        #expect(machine.state == .closed)
        #expect(machine.deadline == .distantFuture, "nothing more to time")
        let result7 = machine.deadlinePassed(now: Self.at(11))
        #expect(result7 == .none)
    }

    @Test("TLS: ALPN picks HTTP/2 only where the listener offers it; the header deadline goes on from accept")
    func alpn() {
        for (http2, alpn, expected) in [
            (true, "h2", Machine.Phase.http2), (true, "http/1.1", .http1), (true, nil, .http1), (false, "h2", .http1),
        ] as [(Bool, String?, Machine.Phase)] {
            var machine = Self.machine(tls: true, http2: http2)
            _ = machine.phaseInstalled()
            let result8 = machine.tlsHandshakeCompleted(alpn: alpn)
            #expect(result8 == expected)
            let result9 = machine.phaseInstalled()
            #expect(result9 == .wait)
            #expect(machine.deadline == Self.at(10))
            let expectedAction: Machine.DeadlineAction =
                expected == .http1 ? .requestTimeout : .http2(.sendGoAway(lastStreamID: 0, thenClose: true))
            let result10 = machine.deadlinePassed(now: Self.at(10))
            #expect(result10 == expectedAction)
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
        let result11 = machine.http1RequestHeadArrived()
        #expect(result11 == .process)
        #expect(machine.deadline == .distantFuture, "the exchange times the request")
        machine.http1RequestEnded()
        let result12 = machine.http1ResponseStarting(requestWantsClose: false)
        #expect(result12)
        let result13 = machine.http1ResponseEnded(now: Self.at(20))
        #expect(result13 == .keepAlive)
        #expect(machine.deadline == Self.at(95), "client_idle_timeout between requests")
        machine.http1BytesArrived(now: Self.at(30))
        #expect(machine.deadline == Self.at(40), "part of a head: client_header_timeout from its first byte")
        machine.http1BytesArrived(now: Self.at(35))
        #expect(machine.deadline == Self.at(40), "more of the same head does not move it")
        let result14 = machine.deadlinePassed(now: Self.at(40))
        #expect(result14 == .requestTimeout)

        var idle = Self.http1()
        _ = idle.http1RequestHeadArrived()
        idle.http1RequestEnded()
        _ = idle.http1ResponseStarting(requestWantsClose: false)
        _ = idle.http1ResponseEnded(now: Self.at(1))
        let result15 = idle.deadlinePassed(now: Self.at(76))
        #expect(result15 == .close, "idle: closed without an answer")
    }

    @Test("HTTP/1.1: keep-alive, pipelining, close when asked, when quiescing or when the body was not read")
    func http1Responses() {
        var machine = Self.http1()
        let result16 = machine.http1RequestHeadArrived()
        #expect(result16 == .process)
        let result17 = machine.http1RequestHeadArrived()
        #expect(result17 == .queue, "a pipelined request waits")
        machine.http1RequestEnded()
        let result18 = machine.http1ResponseStarting(requestWantsClose: false)
        #expect(result18)
        let result19 = machine.http1ResponseEnded(now: Self.at(1))
        #expect(result19 == .keepAlive)

        var asked = Self.http1()
        _ = asked.http1RequestHeadArrived()
        asked.http1RequestEnded()
        let result20 = asked.http1ResponseStarting(requestWantsClose: true)
        #expect(!result20)
        let result21 = asked.http1ResponseEnded(now: Self.at(1))
        #expect(result21 == .close)

        var early = Self.http1()
        _ = early.http1RequestHeadArrived()
        let result22 = early.http1ResponseStarting(requestWantsClose: false)
        #expect(!result22, "answered before the body ended")
        let result23 = early.http1ResponseEnded(now: Self.at(1))
        #expect(result23 == .linger)
        #expect(early.deadline == Self.at(3), "lingers for 2 s")
        let result24 = early.http1RequestHeadArrived()
        #expect(result24 == .drop)
        let result25 = early.http1LingerDone()
        #expect(result25)
        #expect(early.state == .closed)

        var lingerTimeout = Self.http1()
        _ = lingerTimeout.http1RequestHeadArrived()
        _ = lingerTimeout.http1ResponseStarting(requestWantsClose: false)
        _ = lingerTimeout.http1ResponseEnded(now: Self.at(1))
        let result26 = lingerTimeout.deadlinePassed(now: Self.at(3))
        #expect(result26 == .close)

        var oneZero = Self.http1()
        _ = oneZero.http1RequestHeadArrived()
        oneZero.http1RequestEnded()
        let result27 = oneZero.http1ResponseStarting(requestWantsClose: false)
        #expect(result27)
        oneZero.http1ResponseMustClose()
        let result28 = oneZero.http1ResponseEnded(now: Self.at(1))
        #expect(result28 == .close)

        var draining = Self.http1()
        _ = draining.http1RequestHeadArrived()
        let result29 = draining.quiesce(now: Self.at(5))
        #expect(result29 == .finish, "busy: finish first")
        draining.http1RequestEnded()
        let result30 = draining.http1ResponseStarting(requestWantsClose: false)
        #expect(!result30)
        let result31 = draining.http1ResponseEnded(now: Self.at(6))
        #expect(result31 == .close)

        var startedBefore = Self.http1()
        _ = startedBefore.http1RequestHeadArrived()
        startedBefore.http1RequestEnded()
        let result32 = startedBefore.http1ResponseStarting(requestWantsClose: false)
        #expect(result32, "head out with keep-alive")
        _ = startedBefore.quiesce(now: Self.at(5))
        let result33 = startedBefore.http1ResponseEnded(now: Self.at(6))
        #expect(result33 == .close, "but the shutdown ends it")
    }

    @Test("A tunnel has no deadline of its own here; a shutdown gives it the grace")
    func tunnel() {
        var machine = Self.http1()
        _ = machine.http1RequestHeadArrived()
        machine.http1Upgraded()
        #expect(machine.state == .tunnel)
        #expect(machine.deadline == .distantFuture)
        let result34 = machine.http1RequestHeadArrived()
        #expect(result34 == .drop)
        let result35 = machine.quiesce(now: Self.at(100))
        #expect(result35 == .finish)
        #expect(machine.deadline == Self.at(130))
        let result36 = machine.deadlinePassed(now: Self.at(129))
        #expect(result36 == .none)
        let result37 = machine.deadlinePassed(now: Self.at(130))
        #expect(result37 == .close)
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
        let result38 = machine.deadlinePassed(now: Self.at(10))
        #expect(result38 == .http2(.sendGoAway(lastStreamID: 0, thenClose: true)))
        #expect(machine.state == .closed)
    }

    @Test("HTTP/2 idle: GOAWAY and PING after client_idle_timeout with no open stream; the ack brings the final GOAWAY")
    func http2Idle() {
        var machine = Self.http2()
        machine.http2StreamOpened(1)
        machine.http2StreamOpened(3)
        #expect(machine.deadline == .distantFuture, "streams open: no idle deadline")
        let result39 = machine.http2StreamClosed(now: Self.at(2))
        #expect(result39 == .none)
        #expect(machine.deadline == .distantFuture, "one still open")
        let result40 = machine.http2StreamClosed(now: Self.at(3))
        #expect(result40 == .none)
        #expect(machine.deadline == Self.at(78), "no open stream: client_idle_timeout")
        machine.http2StreamOpened(5)
        #expect(machine.deadline == .distantFuture)
        _ = machine.http2StreamClosed(now: Self.at(10))
        let result41 = machine.deadlinePassed(now: Self.at(85))
        #expect(result41 == .http2(.sendGoAwayAndPing))
        #expect(machine.deadline == Self.at(115), "shutdown_grace from the GOAWAY")
        let result42 = machine.http2PingAcked(1234)
        #expect(result42 == .none, "someone else's PING")
        let result43 = machine.http2PingAcked(Machine.goAwayPingData)
        #expect(result43 == .sendGoAway(lastStreamID: 5, thenClose: true))
        #expect(machine.state == .closed)
    }

    @Test("HTTP/2: a GOAWAY whose PING is never acknowledged is closed when the grace is over")
    func http2PingNeverAcked() {
        var machine = Self.http2()
        machine.http2StreamOpened(1)
        _ = machine.http2StreamClosed(now: Self.at(0))
        let result44 = machine.deadlinePassed(now: Self.at(75))
        #expect(result44 == .http2(.sendGoAwayAndPing))
        let result45 = machine.deadlinePassed(now: Self.at(104))
        #expect(result45 == .none)
        let result46 = machine.deadlinePassed(now: Self.at(105))
        #expect(result46 == .close)
    }

    @Test("HTTP/2 shutdown: streams in flight finish after the final GOAWAY; the last one closes the connection")
    func http2Shutdown() {
        var machine = Self.http2()
        machine.http2StreamOpened(1)
        machine.http2StreamOpened(3)
        let result47 = machine.quiesce(now: Self.at(5))
        #expect(result47 == .http2(.sendGoAwayAndPing))
        machine.http2StreamOpened(5)  // sent before the client saw the GOAWAY: served
        let result48 = machine.http2PingAcked(Machine.goAwayPingData)
        #expect(result48 == .sendGoAway(lastStreamID: 5, thenClose: false))
        let result49 = machine.http2StreamClosed(now: Self.at(6))
        #expect(result49 == .none)
        let result50 = machine.http2StreamClosed(now: Self.at(7))
        #expect(result50 == .none)
        let result51 = machine.http2StreamClosed(now: Self.at(8))
        #expect(result51 == .close)
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
        let result52 = stuck.deadlinePassed(now: Self.at(35))
        #expect(result52 == .close, "a stream still open when the grace ends")
    }

    @Test("HTTP/2: a connection error closes; the client's GOAWAY closes with its last stream")
    func http2Errors() {
        var failed = Self.http2()
        failed.http2StreamOpened(1)
        let result53 = failed.http2ConnectionErrorSent()
        #expect(result53 == .close)
        #expect(failed.state == .closed)

        var leaving = Self.http2()
        leaving.http2StreamOpened(1)
        let result54 = leaving.http2GoAwayReceived()
        #expect(result54 == .none)
        let result55 = leaving.http2StreamClosed(now: Self.at(1))
        #expect(result55 == .close)

        var idleLeaving = Self.http2()
        let result56 = idleLeaving.http2GoAwayReceived()
        #expect(result56 == .close)
    }

    @Test(
        "A graceful shutdown closes at once what has nothing in flight",
        arguments: [(true, false, false), (false, true, false), (false, false, true), (false, false, false)]
    )
    func quiesceIdle(proxy: Bool, tls: Bool, http2: Bool) {
        var machine = Self.machine(proxy: proxy, tls: tls, http2: http2)
        if machine.initialPhase != nil { _ = machine.phaseInstalled() }
        let result57 = machine.quiesce(now: Self.at(1))
        #expect(result57 == .close)
        #expect(machine.state == .closed)
        #expect(machine.quiescing)
    }

    @Test("Once closed, events change nothing and nothing is timed")
    func closedIgnoresEverything() {
        var machine = Self.http2()
        machine.closed()
        machine.http2StreamOpened(1)
        let result58 = machine.http2StreamClosed(now: Self.at(1))
        #expect(result58 == .none)
        let result59 = machine.http2PingAcked(Machine.goAwayPingData)
        #expect(result59 == .none)
        let result60 = machine.http2GoAwayReceived()
        #expect(result60 == .none)
        let result61 = machine.http2ConnectionErrorSent()
        #expect(result61 == .none)
        let result62 = machine.http1RequestHeadArrived()
        #expect(result62 == .drop)
        let result63 = machine.bytesReceived(ByteBuffer(string: "x"))
        #expect(result63 == .wait)
        let result64 = machine.quiesce(now: Self.at(2))
        #expect(result64 == .finish)
        let result65 = machine.deadlinePassed(now: Self.at(1000))
        #expect(result65 == .none)
        #expect(machine.state == .closed)
    }
}
