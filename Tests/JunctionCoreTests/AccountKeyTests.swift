import Crypto
import SwiftASN1
import Testing

@testable import JunctionACME

/// The ACME account key: its JWK (from RFC 7515's example key), its PEM forms, its ES256
/// signatures and the key authorization (RFC 8555 section 8.1).
@Suite("ACME account key")
struct AccountKeyTests {
    /// RFC 7515 A.3's key, built from its private scalar.
    static func rfcKey() throws -> AccountKey {
        let d = try #require(Base64URL.decode(JOSEVectors.es256D))
        return try AccountKey(pem: try P256.Signing.PrivateKey(rawRepresentation: d).pemRepresentation)
    }

    @Test("RFC 7515 A.3: the key from d has the RFC's x and y as its JWK")
    func rfcJWK() throws {
        let key = try Self.rfcKey()
        #expect(key.jwk == .ec(crv: "P-256", x: JOSEVectors.es256X, y: JOSEVectors.es256Y))
    }

    @Test("The PKCS#8 PEM it stores loads back as the same key; a SEC1 PEM (EC PRIVATE KEY) loads too")
    func pemForms() throws {
        let key = AccountKey()
        #expect(key.pem.hasPrefix("-----BEGIN PRIVATE KEY-----"))
        #expect(try AccountKey(pem: key.pem).jwk == key.jwk)
        #expect(AccountKey().jwk != key.jwk, "a new key each time")

        // RFC 5915 ECPrivateKey: version 1, the scalar, the curve.
        let d = try #require(Base64URL.decode(JOSEVectors.es256D))
        var serializer = DER.Serializer()
        try serializer.appendConstructedNode(identifier: .sequence) { coder in
            try coder.serialize(1)
            try coder.serialize(ASN1OctetString(contentBytes: d[...]))
            try coder.serialize(explicitlyTaggedWithTagNumber: 0, tagClass: .contextSpecific) { coder in
                try coder.serialize(ASN1ObjectIdentifier.NamedCurves.secp256r1)
            }
        }
        let sec1 = PEMDocument(type: "EC PRIVATE KEY", derBytes: serializer.serializedBytes).pemString
        #expect(try AccountKey(pem: sec1).jwk == .ec(crv: "P-256", x: JOSEVectors.es256X, y: JOSEVectors.es256Y))
    }

    @Test("What is not a P-256 key is refused", arguments: ["", "not a key", "-----BEGIN PRIVATE KEY-----\nAAAA\n"])
    func refused(pem: String) {
        #expect(throws: (any Error).self) { try AccountKey(pem: pem) }
    }

    @Test("ES256 signatures are r || s (64 bytes) and verify with the JWK's public key")
    func signature() throws {
        let key = AccountKey()
        let input = Array("header.payload".utf8)
        let signature = try key.sign(input)
        #expect(signature.count == 64)
        let publicKey = try Self.publicKey(of: key.jwk)
        let parsed = try P256.Signing.ECDSASignature(rawRepresentation: signature)
        #expect(publicKey.isValidSignature(parsed, for: input))
        #expect(!publicKey.isValidSignature(parsed, for: Array("header.payloaD".utf8)))
    }

    @Test("A coordinate with a leading zero byte keeps its 32 bytes in the JWK")
    func leadingZeroCoordinate() throws {
        // About one key in 128 has one; a JWK that dropped the zero would name another key.
        var found: AccountKey?
        for _ in 0..<5000 {
            let key = AccountKey()
            let point = Array(key.key.publicKey.x963Representation)
            if point[1] == 0 || point[33] == 0 {
                found = key
                break
            }
        }
        let key = try #require(found)
        let publicKey = try Self.publicKey(of: key.jwk)
        #expect(publicKey.x963Representation == key.key.publicKey.x963Representation)
    }

    @Test("The key authorization is the token, a dot and the JWK thumbprint (RFC 8555 section 8.1)")
    func keyAuthorization() throws {
        let key = try Self.rfcKey()
        let thumbprint = JWK.ec(crv: "P-256", x: JOSEVectors.es256X, y: JOSEVectors.es256Y).thumbprint
        let token = "evaGxfADs6pSRb2LAv9IZf17Dt3juxGJ-PCt92wr-oA"
        #expect(key.keyAuthorization(token: token) == "\(token).\(thumbprint)")
        #expect(thumbprint.utf8.count == 43)
    }

    /// The public key an EC JWK names, rebuilt from its coordinates.
    static func publicKey(of jwk: JWK) throws -> P256.Signing.PublicKey {
        guard case .ec(let crv, let x, let y) = jwk else { throw JWKError.notEC }
        #expect(crv == "P-256")
        let xBytes = try #require(Base64URL.decode(x))
        let yBytes = try #require(Base64URL.decode(y))
        #expect(xBytes.count == 32 && yBytes.count == 32, "fixed-width coordinates (RFC 7518 6.2.1.2)")
        return try P256.Signing.PublicKey(rawRepresentation: xBytes + yBytes)
    }

    /// A JWK that is not the EC key the test expects.
    enum JWKError: Error {
        case notEC
    }
}
