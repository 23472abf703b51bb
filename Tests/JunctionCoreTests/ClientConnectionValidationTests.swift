import NIOCore
import Testing

@testable import JunctionCore

/// The connection setup of a listener that answers tls-alpn-01 (`acmeValidations`): the first TLS
/// record is held until it shows whether the client offers `acme-tls/1`, then the validation's or
/// the listener's TLS handler gets every byte, however the stream was cut.
@Suite("Client connection setup: ACME tls-alpn-01 validations")
struct ClientConnectionValidationTests {
    typealias Machine = ClientConnectionStateMachine
    typealias Base = ClientConnectionStateMachineTests

    static func machine(proxy: Bool = false) -> Machine {
        Machine(
            setup: .init(proxyProtocol: proxy, tls: true, acmeValidations: true),
            headerTimeout: .seconds(10),
            now: Base.at(0)
        )
    }

    @Test("At accept nothing is installed: the setup reads the ClientHello first")
    func atAccept() {
        let machine = Self.machine()
        #expect(machine.initialPhase == nil)
        #expect(machine.state == .peekingHello(held: ByteBuffer()))
        #expect(machine.deadline == Base.at(10))
    }

    @Test(
        "acme-tls/1 gets the validation's TLS handler, anything else the listener's, each with every byte",
        arguments: [(["acme-tls/1"], Machine.Phase.validationTLS), (["h2", "http/1.1"], .tls), ([], .tls)]
            as [([String], Machine.Phase)]
    )
    func peek(alpn: [String], phase: Machine.Phase) throws {
        let hello = try ClientHelloSamples.capture(alpn: alpn)
        for (proxy, header) in [(false, [] as [UInt8]), (true, Base.proxyV1), (true, Base.proxyV2)] {
            // Glued to the header, apart from it, and one byte at a time.
            for pieces in Base.cuts(prefaceLength: header.count, total: header.count + hello.count) {
                var machine = Self.machine(proxy: proxy)
                let result = Base.feed(&machine, header + hello, pieces: pieces)
                let label = "proxy \(header.count) bytes, cut \(pieces.prefix(3))"
                #expect(!result.rejected, "\(label)")
                #expect(result.phases == [phase], "\(label)")
                #expect(result.forwarded == hello, "\(label): every byte of the hello, once, in order")
                #expect(machine.state == (phase == .tls ? .tlsHandshake : .validationHandshake), "\(label)")
                if proxy {
                    #expect(machine.clientAddress == (header == Base.proxyV1 ? "203.0.113.9" : "198.51.100.23"))
                }
            }
        }
    }

    @Test("Byte by byte: each one before the record is whole waits; the last installs, and all are handed over")
    func heldUntilWhole() throws {
        let hello = try ClientHelloSamples.validation()
        var machine = Self.machine()
        for (index, byte) in hello.enumerated().dropLast() {
            let action = machine.bytesReceived(ByteBuffer(bytes: [byte]))
            #expect(action == .wait, "byte \(index)")
            if action != .wait { return }
        }
        #expect(machine.state == .peekingHello(held: ByteBuffer(bytes: hello.dropLast())))
        let last = machine.bytesReceived(ByteBuffer(bytes: [hello.last!]))
        #expect(last == .install(.validationTLS))
        #expect(machine.state == .installing(.validationTLS, held: ByteBuffer(bytes: hello)))
        let installed = machine.phaseInstalled()
        #expect(installed == .forward(ByteBuffer(bytes: hello)))
        #expect(machine.state == .validationHandshake)
        // The handshake's later bytes pass straight through.
        let later = machine.bytesReceived(ByteBuffer(bytes: [0x14, 0x03, 0x03]))
        #expect(later == .forward(ByteBuffer(bytes: [0x14, 0x03, 0x03])))
    }

    @Test("Bytes that arrive with the ClientHello (the rest of a flight) are handed over with it")
    func bytesBehindTheHello() throws {
        let hello = try ClientHelloSamples.validation()
        let tail: [UInt8] = [0x14, 0x03, 0x03, 0x00, 0x01, 0x01]
        var machine = Self.machine(proxy: true)
        let result = Base.feed(&machine, Base.proxyV2 + hello + tail, pieces: [])
        #expect(result.phases == [.validationTLS])
        #expect(result.forwarded == hello + tail)
    }

    @Test("What is not TLS goes to the listener's TLS handler at its first byte, which reports it")
    func notTLS() {
        var machine = Self.machine()
        let action = machine.bytesReceived(ByteBuffer(string: "G"))
        #expect(action == .install(.tls))
        let installed = machine.phaseInstalled()
        #expect(installed == .forward(ByteBuffer(string: "G")))
        #expect(machine.state == .tlsHandshake)
    }

    @Test("The validation's handshake ends the connection: no front follows, whatever was negotiated")
    func validationHandshakeEnds() throws {
        var machine = Self.machine()
        _ = Base.feed(&machine, try ClientHelloSamples.validation(), pieces: [])
        #expect(machine.state == .validationHandshake)
        #expect(machine.deadline == Base.at(10), "the validator gets the header timeout too")
        let phase = machine.tlsHandshakeCompleted(alpn: "acme-tls/1")
        #expect(phase == nil)
        #expect(machine.state == .closed)
        #expect(machine.deadline == .distantFuture)
    }

    @Test("Peeking and the validation's handshake close at the header deadline and on a graceful shutdown")
    func deadlinesAndQuiesce() throws {
        let hello = try ClientHelloSamples.validation()
        var peeking = Self.machine()
        _ = peeking.bytesReceived(ByteBuffer(bytes: hello.prefix(10)))
        var validating = Self.machine()
        _ = Base.feed(&validating, hello, pieces: [])
        for var machine in [peeking, validating] {
            let early = machine.deadlinePassed(now: Base.at(9.999))
            #expect(!early)
            var quiescing = machine
            let due = machine.deadlinePassed(now: Base.at(10))
            #expect(due && machine.state == .closed)
            let closes = quiescing.quiesce()
            #expect(closes && quiescing.state == .closed)
        }
    }

    @Test("Without TLS the flag changes nothing: a plain listener has no ClientHello to read")
    func plainListenerIgnoresTheFlag() {
        let plain = Machine(setup: .init(acmeValidations: true), headerTimeout: .seconds(10), now: Base.at(0))
        #expect(plain.initialPhase == .http1)
        let h2c = Machine(
            setup: .init(http2: true, acmeValidations: true),
            headerTimeout: .seconds(10),
            now: Base.at(0)
        )
        #expect(h2c.state == .sniffing(held: ByteBuffer()))
        let tls = Machine(setup: .init(tls: true), headerTimeout: .seconds(10), now: Base.at(0))
        #expect(tls.initialPhase == .tls, "without the flag the TLS handler is installed at accept")
    }
}
