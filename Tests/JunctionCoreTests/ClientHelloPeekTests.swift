import NIOCore
import Testing

@testable import JunctionCore

/// The look into a connection's first TLS record for ALPN `acme-tls/1`, on ClientHellos BoringSSL
/// wrote: the verdict, that nothing is decided before the record is whole, and that bytes which
/// lie about their lengths mean "not a validation", never a crash.
@Suite("ClientHello peek for acme-tls/1")
struct ClientHelloPeekTests {
    typealias Verdict = ClientHelloPeek.Verdict

    static func inspect(_ bytes: [UInt8]) -> Verdict {
        ClientHelloPeek.inspect(ByteBuffer(bytes: bytes))
    }

    /// Where the extensions' 2-byte length is: after the record and handshake headers, version,
    /// random, session id, cipher suites and compression methods.
    static func extensionsLengthOffset(in hello: [UInt8]) -> Int {
        var offset = 5 + 4 + 2 + 32
        offset += 1 + Int(hello[offset])
        offset += 2 + (Int(hello[offset]) << 8 | Int(hello[offset + 1]))
        offset += 1 + Int(hello[offset])
        return offset
    }

    @Test(
        "The ALPN list decides: acme-tls/1 anywhere in it, byte for byte",
        arguments: [
            (["acme-tls/1"], Verdict.acmeValidation), (["h2", "http/1.1"], .other),
            (["http/1.1", "acme-tls/1"], .acmeValidation),
            ([], .other), (["acme-tls/10"], .other), (["acme-tls/"], .other), (["ACME-TLS/1"], .other),
            (["acme-tls/2"], .other),
        ] as [([String], Verdict)]
    )
    func verdict(alpn: [String], expected: Verdict) throws {
        let hello = try ClientHelloSamples.capture(alpn: alpn)
        #expect(hello[0] == 22 && hello[5] == 1, "a handshake record holding a ClientHello")
        #expect(5 + (Int(hello[3]) << 8 | Int(hello[4])) == hello.count, "one record, nothing else")
        #expect(Self.inspect(hello) == expected)
        // The server name plays no part: the challenge context looks it up later.
        #expect(Self.inspect(try ClientHelloSamples.capture(alpn: alpn, serverName: nil)) == expected)
    }

    @Test("Every prefix of a ClientHello is incomplete: nothing is decided before the record is whole")
    func prefixes() throws {
        for hello in [try ClientHelloSamples.validation(), try ClientHelloSamples.browser()] {
            for length in 0..<hello.count {
                let verdict = Self.inspect(Array(hello[..<length]))
                #expect(verdict == .incomplete, "\(length) of \(hello.count) bytes")
                if verdict != .incomplete { break }
            }
        }
    }

    @Test("Bytes behind the first record change nothing; the buffer's reader index is respected")
    func trailingBytesAndReaderIndex() throws {
        let validation = try ClientHelloSamples.validation()
        let browser = try ClientHelloSamples.browser()
        #expect(Self.inspect(validation + browser) == .acmeValidation)
        #expect(Self.inspect(browser + validation) == .other, "only the first record counts")
        #expect(Self.inspect(validation + [0x17, 0x03, 0x03, 0xFF]) == .acmeValidation)

        // As the connection holds it: behind a PROXY header already read.
        var buffer = ByteBuffer(string: "PROXY TCP4 203.0.113.9 10.0.0.1 56324 443\r\n")
        buffer.moveReaderIndex(forwardBy: buffer.readableBytes)
        buffer.writeBytes(validation)
        #expect(ClientHelloPeek.inspect(buffer) == .acmeValidation)
        #expect(buffer.readableBytes == validation.count, "inspect reads, never consumes")
    }

    @Test(
        "What is not a TLS handshake record is other at its first byte",
        arguments: [
            Array("GET / HTTP/1.1\r\n".utf8), Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8), Array("P".utf8),
            [0x80, 0x2E, 0x01, 0x00, 0x02], [0x17, 0x03, 0x03, 0x00, 0x05], [0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x28],
            [0x00], [0xFF],
        ] as [[UInt8]]
    )
    func notTLS(bytes: [UInt8]) {
        #expect(Self.inspect(bytes) == .other)
    }

    @Test("A record longer than a ClientHello can be is other from its header, without waiting for it")
    func recordLimit() {
        #expect(ClientHelloPeek.maxRecord == 16640)
        #expect(Self.inspect([22, 0x03, 0x01, 0x41, 0x00]) == .incomplete, "16640: still waits")
        #expect(Self.inspect([22, 0x03, 0x01, 0x41, 0x01]) == .other, "16641")
        #expect(Self.inspect([22, 0x03, 0x01, 0xFF, 0xFF]) == .other)
        #expect(Self.inspect([]) == .incomplete)
        #expect(Self.inspect([22, 0x03, 0x01, 0x00]) == .incomplete)
        #expect(Self.inspect([22, 0x03, 0x01, 0x00, 0x00]) == .other, "an empty record holds no ClientHello")
    }

    @Test("Lengths that lie, each on its own, make a validation's ClientHello other")
    func lyingLengths() throws {
        let hello = try ClientHelloSamples.validation()
        let name = try #require(ClientHelloSamples.alpnNameOffset(in: hello))
        #expect(hello[(name - 6)..<(name - 4)].elementsEqual([0x00, 0x10]), "the ALPN extension's type")
        let extensions = Self.extensionsLengthOffset(in: hello)
        #expect(Int(hello[extensions]) << 8 | Int(hello[extensions + 1]) == hello.count - extensions - 2)

        func changed(_ change: (inout [UInt8]) -> Void) -> [UInt8] {
            var copy = hello
            change(&copy)
            return copy
        }
        func set16(_ bytes: inout [UInt8], _ offset: Int, _ value: Int) {
            bytes[offset] = UInt8(value >> 8)
            bytes[offset + 1] = UInt8(value & 0xFF)
        }
        let extensionsLength = Int(hello[extensions]) << 8 | Int(hello[extensions + 1])
        #expect(hello[6] == 0 && Int(hello[7]) << 8 | Int(hello[8]) == hello.count - 9, "the handshake length")
        let cases: [(String, [UInt8])] = [
            ("a ServerHello", changed { $0[5] = 2 }),
            ("handshake longer than the record", changed { set16(&$0, 7, hello.count - 9 + 1) }),
            ("record one byte short of the handshake", changed { set16(&$0, 3, hello.count - 6) }),
            ("session id past the end", changed { $0[5 + 4 + 2 + 32] = 0xFF }),
            ("extensions longer than the handshake", changed { set16(&$0, extensions, extensionsLength + 1) }),
            (
                "extensions ending before ALPN",
                changed { set16(&$0, extensions, name - 6 - extensions - 2) }
            ),
            ("ALPN extension past the end", changed { set16(&$0, name - 4, 0xFFFF) }),
            ("ALPN list longer than the extension", changed { $0[name - 1] &+= 1 }),
            ("name longer than the list", changed { $0[name] = 11 }),
            ("name shorter: acme-tls/", changed { $0[name] = 9 }),
            ("another name", changed { $0[name + 10] = UInt8(ascii: "2") }),
        ]
        for (label, bytes) in cases {
            #expect(Self.inspect(bytes) == .other, "\(label)")
        }
        #expect(Self.inspect(hello) == .acmeValidation, "unchanged, it is one")
    }

    @Test("A whole record holding a cut-off ClientHello is other at every length, never incomplete")
    func truncatedInsideRecord() throws {
        let hello = try ClientHelloSamples.validation()
        for length in 0..<(hello.count - 5) {
            var record = Array(hello[..<(5 + length)])
            record[3] = UInt8(length >> 8)
            record[4] = UInt8(length & 0xFF)
            let verdict = Self.inspect(record)
            #expect(verdict == .other, "\(length) bytes of the handshake")
            if verdict != .other { break }
        }
    }

    @Test("A ClientHello split over two records is other (the normal handshake reads it)")
    func splitOverRecords() throws {
        let hello = try ClientHelloSamples.validation()
        let handshake = Array(hello[5...])
        let cut = handshake.count / 2
        let first: [UInt8] = [22, 0x03, 0x01, UInt8(cut >> 8), UInt8(cut & 0xFF)] + handshake[..<cut]
        let restLength = handshake.count - cut
        let second: [UInt8] = [22, 0x03, 0x01, UInt8(restLength >> 8), UInt8(restLength & 0xFF)] + handshake[cut...]
        #expect(Self.inspect(first + second) == .other)
    }

    @Test("Any one byte changed: a verdict and no trap; with the record length intact, never incomplete")
    func everyByteChanged() throws {
        for hello in [try ClientHelloSamples.validation(), try ClientHelloSamples.browser()] {
            for offset in hello.indices {
                for value in [0x00, 0xFF, hello[offset] ^ 0x01, hello[offset] &+ 1] as [UInt8] {
                    var bytes = hello
                    bytes[offset] = value
                    let verdict = Self.inspect(bytes)
                    if offset != 3 && offset != 4 {
                        #expect(verdict != .incomplete, "byte \(offset) = \(value)")
                    }
                }
            }
        }
    }
}
