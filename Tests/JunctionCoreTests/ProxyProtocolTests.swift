import Testing

@testable import JunctionCore

/// The PROXY protocol v1/v2 header parser.
@Suite("PROXY protocol")
struct ProxyProtocolTests {
    static let v2Signature: [UInt8] = [0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A]

    @Test(
        "Valid headers give their length and the client address",
        arguments: [
            ("PROXY TCP4 203.0.113.9 10.0.0.1 56324 443\r\nGET", 43, "203.0.113.9"),
            ("PROXY TCP6 2001:db8::7 2001:db8::1 1 2\r\n", 40, "2001:db8::7"),
            ("PROXY UNKNOWN\r\n", 15, nil),
            ("PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n", 35, nil),
        ] as [(String, Int, String?)]
    )
    func v1(text: String, length: Int, client: String?) throws {
        #expect(try ProxyProtocolHeader.parse(Array(text.utf8)) == .header(length: length, client: client))
    }

    @Test("Partial v1 and v2 headers wait for more bytes")
    func incomplete() throws {
        #expect(try ProxyProtocolHeader.parse(Array("PROXY TCP4 1.2.3.4".utf8)) == .incomplete)
        #expect(try ProxyProtocolHeader.parse(Array("PRO".utf8)) == .incomplete)
        #expect(try ProxyProtocolHeader.parse(Self.v2Signature.prefix(7)) == .incomplete)
        #expect(try ProxyProtocolHeader.parse(Self.v2Signature + [0x21, 0x11, 0x00, 12, 1, 2]) == .incomplete)
    }

    @Test("v2: TCP4, TCP6, LOCAL and trailing TLVs")
    func v2() throws {
        let tcp4 = Self.v2Signature + [0x21, 0x11, 0x00, 12, 198, 51, 100, 23, 10, 0, 0, 1, 0x9C, 0x40, 0x01, 0xBB]
        #expect(
            try ProxyProtocolHeader.parse(tcp4 + Array("GET".utf8)) == .header(length: 28, client: "198.51.100.23")
        )
        var ipv6Source = [UInt8](repeating: 0, count: 16)
        ipv6Source[0] = 0x20
        ipv6Source[1] = 0x01
        ipv6Source[2] = 0x0d
        ipv6Source[3] = 0xb8
        ipv6Source[15] = 0x07
        let tcp6 =
            Self.v2Signature + [0x21, 0x21, 0x00, 36] + ipv6Source + [UInt8](repeating: 0, count: 16) + [0, 1, 0, 2]
        #expect(try ProxyProtocolHeader.parse(tcp6) == .header(length: 52, client: "2001:db8::7"))
        let local = Self.v2Signature + [0x20, 0x00, 0x00, 0x00]
        #expect(try ProxyProtocolHeader.parse(local) == .header(length: 16, client: nil))
        let withTLV =
            Self.v2Signature + [0x21, 0x11, 0x00, 19, 192, 0, 2, 1, 10, 0, 0, 1, 0, 1, 0, 2] + [
                0x04, 0x00, 0x04, 1, 2, 3, 4,
            ]
        #expect(try ProxyProtocolHeader.parse(withTLV) == .header(length: 35, client: "192.0.2.1"))
    }

    @Test(
        "Anything else is refused",
        arguments: [
            "GET / HTTP/1.1\r\n",
            "PROXY TCP4 1.2.3.4\r\n",
            "PROXY TCP4 ::1 ::2 1 2\r\n",
            "PROXY TCP9 1.2.3.4 5.6.7.8 1 2\r\n",
            "PROXY TCP4 1.2.3.4 5.6.7.8 1 99999\r\n",
            "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n",
            "PROXY " + String(repeating: "x", count: 120),
        ]
    )
    func refused(text: String) {
        #expect(throws: ProxyProtocolHeader.Problem.self) { try ProxyProtocolHeader.parse(Array(text.utf8)) }
    }

    @Test("A v2 header with another version or command is refused")
    func refusedV2() {
        #expect(throws: ProxyProtocolHeader.Problem.self) {
            try ProxyProtocolHeader.parse(Self.v2Signature + [0x31, 0x11, 0x00, 0x00])
        }
        #expect(throws: ProxyProtocolHeader.Problem.self) {
            try ProxyProtocolHeader.parse(Self.v2Signature + [0x2F, 0x11, 0x00, 0x00])
        }
    }
}
