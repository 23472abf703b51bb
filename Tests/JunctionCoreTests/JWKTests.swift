import Crypto
import JunctionACME
import Testing

/// JWKs in RFC 7638's canonical form (required members, lexicographic order, no whitespace) and
/// their thumbprints, which the key authorization of every challenge is made from.
@Suite("JWK and RFC 7638 thumbprint")
struct JWKTests {
    @Test("RFC 7638 section 3.1: the RSA example key's canonical JSON and thumbprint")
    func rfc7638Example() {
        let jwk = JWK.rsa(n: JOSEVectors.rsaN, e: JOSEVectors.rsaE)
        #expect(jwk.json == #"{"e":"AQAB","kty":"RSA","n":""# + JOSEVectors.rsaN + #""}"#)
        #expect(jwk.thumbprint == JOSEVectors.rsaThumbprint)
    }

    @Test("An EC key: crv, kty, x, y in that order; its thumbprint is base64url(SHA-256(json))")
    func ecCanonicalForm() {
        let jwk = JWK.ec(crv: "P-256", x: JOSEVectors.es256X, y: JOSEVectors.es256Y)
        let expected =
            #"{"crv":"P-256","kty":"EC","x":""# + JOSEVectors.es256X + #"","y":""#
            + JOSEVectors.es256Y + #""}"#
        #expect(jwk.json == expected)
        #expect(!jwk.json.contains(" ") && !jwk.json.contains("\n"))
        let digest = Array(SHA256.hash(data: Array(expected.utf8)))
        #expect(Base64URL.decode(jwk.thumbprint) == digest)
        #expect(jwk.thumbprint.utf8.count == 43, "32 bytes, unpadded")
    }

    @Test("Thumbprints tell keys apart: one coordinate changed is another thumbprint")
    func distinctKeys() {
        let one = JWK.ec(crv: "P-256", x: JOSEVectors.es256X, y: JOSEVectors.es256Y)
        let other = JWK.ec(crv: "P-256", x: JOSEVectors.es256Y, y: JOSEVectors.es256X)
        #expect(one != other)
        #expect(one.thumbprint != other.thumbprint)
    }
}
