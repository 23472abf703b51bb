import JunctionACME
import Testing

/// base64url without padding: the RFC 4648 vectors, the two characters it changes, and what the
/// decoder refuses.
@Suite("base64url")
struct Base64URLTests {
    @Test(
        "RFC 4648 section 10 vectors, without the padding",
        arguments: [
            ("", ""), ("f", "Zg"), ("fo", "Zm8"), ("foo", "Zm9v"), ("foob", "Zm9vYg"), ("fooba", "Zm9vYmE"),
            ("foobar", "Zm9vYmFy"),
        ]
    )
    func rfc4648(plain: String, encoded: String) {
        #expect(Base64URL.encode(Array(plain.utf8)) == encoded)
        #expect(Base64URL.decode(encoded) == Array(plain.utf8))
    }

    @Test(
        "62 and 63 are - and _ (standard base64 has + and /)",
        arguments: [
            ([0xFB, 0xFF] as [UInt8], "-_8"), ([0xFF, 0xFF, 0xFF], "____"), ([0xFB, 0xEF, 0xBE], "----"),
            ([0x00, 0x10, 0x83], "ABCD"),
        ]
    )
    func urlAlphabet(bytes: [UInt8], encoded: String) {
        #expect(Base64URL.encode(bytes) == encoded)
        #expect(Base64URL.decode(encoded) == bytes)
    }

    @Test(
        "Padding, the standard alphabet and what is not base64 at all decode to nil",
        arguments: ["Zg==", "Zm8=", "+_8", "-/8", "Z", "Zm9vY", "Zm 9v", "Zm9v!"]
    )
    func refused(text: String) {
        #expect(Base64URL.decode(text) == nil)
    }

    @Test("Every length and every byte value round-trips")
    func roundTrip() {
        let bytes = (0..<300).map { UInt8(truncatingIfNeeded: $0 &* 151 &+ 7) }
        for length in 0...bytes.count {
            let encoded = Base64URL.encode(bytes[..<length])
            #expect(!encoded.contains("=") && !encoded.contains("+") && !encoded.contains("/"))
            #expect(encoded.utf8.count == (length * 4 + 2) / 3, "no padding: ceil(4n/3) characters")
            #expect(Base64URL.decode(encoded) == Array(bytes[..<length]), "length \(length)")
        }
    }
}
