import NIOCore
import Testing

@testable import JunctionCore

/// The setup of a client connection, driven without a channel: PROXY header, TLS, the h2c sniff,
/// the hand-over to a front, and the header deadline over all of it.
@Suite("Client connection setup state machine")
struct ClientConnectionStateMachineTests {
    typealias Machine = ClientConnectionStateMachine

    /// `seconds` after an arbitrary origin.
    static func at(_ seconds: Double) -> NIODeadline {
        .uptimeNanoseconds(1_000_000_000_000 + UInt64(seconds * 1_000_000_000))
    }

    static func machine(proxy: Bool = false, tls: Bool = false, http2: Bool = false) -> Machine {
        Machine(
            setup: .init(proxyProtocol: proxy, tls: tls, http2: http2),
            headerTimeout: .seconds(10),
            now: Self.at(0)
        )
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
        "Setup at accept: what is installed at once, and where the connection is after it",
        arguments: [
            (false, false, false, Machine.Phase.http1, Machine.State.handedOver(.http1)),
            (false, true, false, .tls, .tlsHandshake),
            (false, true, true, .tls, .tlsHandshake),
            (false, false, true, nil, .sniffing(held: ByteBuffer())),
            (true, false, false, nil, .proxyHeader(held: ByteBuffer())),
            (true, true, true, nil, .proxyHeader(held: ByteBuffer())),
        ] as [(Bool, Bool, Bool, Machine.Phase?, Machine.State)]
    )
    func setupAtAccept(proxy: Bool, tls: Bool, http2: Bool, installed: Machine.Phase?, after: Machine.State) {
        var machine = Self.machine(proxy: proxy, tls: tls, http2: http2)
        #expect(machine.initialPhase == installed)
        if installed != nil { #expect(machine.phaseInstalled() == .wait, "nothing arrived yet") }
        #expect(machine.state == after)
        #expect(
            machine.deadline == (after == .handedOver(.http1) ? .distantFuture : Self.at(10)),
            "client_header_timeout from accept, while the setup runs"
        )
        #expect(machine.headerDeadline == Self.at(10), "what a front takes over")
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
            #expect(machine.state == (phase == .tls ? .tlsHandshake : .handedOver(phase)))
            #expect(machine.clientAddress == (header == Self.proxyV1 ? "203.0.113.9" : "198.51.100.23"))
            #expect(machine.headerDeadline == Self.at(10), "the header deadline still counts from accept")
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
        #expect(machine.state == .sniffing(held: ByteBuffer(bytes: HTTP2Preface.bytes.prefix(10))))
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
        #expect(!due)
        let due2 = machine.deadlinePassed(now: Self.at(10))
        #expect(due2)
        #expect(machine.state == .closed)
        #expect(machine.deadline == .distantFuture, "nothing more to time")
        let due3 = machine.deadlinePassed(now: Self.at(11))
        #expect(!due3)
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
            #expect(machine.state == .handedOver(expected), "the front has it; the setup is over")
            #expect(machine.headerDeadline == Self.at(10), "the front's first request still counts from accept")
        }
    }

    /// A machine in each state of the setup, built by driving it there.
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
        case "installing":
            machine = Self.machine(tls: true)
        case "handedOver":
            machine = Self.machine(http2: true)
            _ = machine.bytesReceived(ByteBuffer(string: "GET / HTTP/1.1\r\n"))
            _ = machine.phaseInstalled()
        default:
            machine = Self.machine()
            machine.closed()
        }
        return machine
    }

    @Test(
        "Every state of the setup: its deadline, and whether a graceful shutdown closes the connection",
        arguments: [
            ("proxyHeader", Self.at(10), true),
            ("sniffing", Self.at(10), true),
            ("installing", Self.at(10), true),
            ("tlsHandshake", Self.at(10), true),
            ("handedOver", .distantFuture, false),
            ("closed", .distantFuture, false),
        ] as [(String, NIODeadline, Bool)]
    )
    func everyState(name: String, deadline: NIODeadline, quiesceCloses: Bool) {
        var timed = Self.inState(name)
        #expect(timed.deadline == deadline, "\(name)")
        if deadline != .distantFuture {
            let early = timed.deadlinePassed(now: deadline - .milliseconds(1))
            #expect(!early, "\(name): nothing before the deadline")
            let due = timed.deadlinePassed(now: deadline)
            #expect(due, "\(name): closed at the deadline")
            #expect(timed.state == .closed)
        } else {
            let due = timed.deadlinePassed(now: Self.at(100_000))
            #expect(!due, "\(name): nothing to time")
        }
        var quiescing = Self.inState(name)
        let closes = quiescing.quiesce()
        #expect(closes == quiesceCloses, "\(name): no request yet, so a drain closes the setup")
        if closes { #expect(quiescing.state == .closed) }
    }

    @Test("Once closed, bytes and events change nothing")
    func closedIgnoresEverything() {
        var machine = Self.machine(proxy: true)
        machine.closed()
        let read = machine.bytesReceived(ByteBuffer(string: "x"))
        #expect(read == .wait)
        let phase = machine.tlsHandshakeCompleted(alpn: "h2")
        #expect(phase == nil)
        let closes = machine.quiesce()
        #expect(!closes)
        let due = machine.deadlinePassed(now: Self.at(1000))
        #expect(!due)
        #expect(machine.state == .closed)
    }

    @Test(
        "An upgrade's hand-over during the setup: the setup finishes and the front is told",
        arguments: ["proxyHeader", "sniffing", "installing", "tlsHandshake", "handedOver", "closed"]
    )
    func handOver(name: String) {
        var machine = Self.inState(name)
        let before = machine.state
        machine.handOver()
        #expect(machine.state == before, "\(name): nothing closes")
        #expect(machine.handOverPending == (name != "handedOver" && name != "closed"), "\(name)")
    }
}
