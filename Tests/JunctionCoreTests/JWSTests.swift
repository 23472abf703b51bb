import Crypto
import Foundation
import Testing

@testable import JunctionACME

/// JWS as ACME posts it (flattened JSON, ES256): RFC 7515 A.3's signing input and signature, the
/// protected header's exact members, and bodies whose signatures verify.
@Suite("JWS (ES256, flattened JSON)")
struct JWSTests {
    static var rfcPublicKey: P256.Signing.PublicKey {
        get throws {
            try AccountKeyTests.publicKey(of: .ec(crv: "P-256", x: JOSEVectors.es256X, y: JOSEVectors.es256Y))
        }
    }

    @Test("RFC 7515 A.3.1: the signing input is the RFC's, byte for byte")
    func rfcSigningInput() {
        let input = JWS.signingInput(protected: JOSEVectors.es256Header, payload: JOSEVectors.es256Payload)
        #expect(input == "\(JOSEVectors.es256EncodedHeader).\(JOSEVectors.es256EncodedPayload)")
    }

    @Test("RFC 7515 A.3.1: the RFC's signature verifies over that input with the RFC's key, and not over another")
    func rfcSignatureVerifies() throws {
        let input = JWS.signingInput(protected: JOSEVectors.es256Header, payload: JOSEVectors.es256Payload)
        let raw = try #require(Base64URL.decode(JOSEVectors.es256Signature))
        #expect(raw.count == 64)
        let signature = try P256.Signing.ECDSASignature(rawRepresentation: raw)
        let publicKey = try Self.rfcPublicKey
        #expect(publicKey.isValidSignature(signature, for: Array(input.utf8)))
        let other = JWS.signingInput(protected: #"{"alg":"ES384"}"#, payload: JOSEVectors.es256Payload)
        #expect(!publicKey.isValidSignature(signature, for: Array(other.utf8)))
    }

    @Test("The protected header: alg, then jwk (new account) or kid, then nonce and url, no whitespace")
    func protectedHeader() {
        let jwk = JWK.ec(crv: "P-256", x: JOSEVectors.es256X, y: JOSEVectors.es256Y)
        #expect(
            JWS.protectedHeader(signer: .jwk(jwk), nonce: "oFvnlFP1wIhRlYS2jTaXbA", url: "https://ca.test/new-acct")
                == #"{"alg":"ES256","jwk":"# + jwk.json
                + #","nonce":"oFvnlFP1wIhRlYS2jTaXbA","url":"https://ca.test/new-acct"}"#
        )
        #expect(
            JWS.protectedHeader(signer: .kid("https://ca.test/acct/17"), nonce: "n1", url: "https://ca.test/order/9")
                == #"{"alg":"ES256","kid":"https://ca.test/acct/17","nonce":"n1","url":"https://ca.test/order/9"}"#
        )
    }

    @Test(
        "Strings from the CA are escaped: the header is JSON that reads back the same values",
        arguments: ["a\"b", "back\\slash", "line\nbreak\r\t", "\u{01}\u{1F}", "é ü ✓", ""]
    )
    func escaping(value: String) throws {
        let header = JWS.protectedHeader(signer: .kid(value), nonce: value, url: "https://ca.test/\(value)")
        let object = try #require(
            try JSONSerialization.jsonObject(with: Data(header.utf8)) as? [String: String]
        )
        #expect(object == ["alg": "ES256", "kid": value, "nonce": value, "url": "https://ca.test/\(value)"])
    }

    @Test("A body's signature verifies with the account key over protected.payload", arguments: [true, false])
    func bodyVerifies(withPayload: Bool) throws {
        let key = try AccountKeyTests.rfcKey()
        let payload = withPayload ? Array(#"{"identifiers":[{"type":"dns","value":"chat.example.com"}]}"#.utf8) : nil
        let signer = JWS.Signer.kid("https://ca.test/acct/17")
        let body = try JWS.body(
            key: key,
            signer: signer,
            nonce: "n2",
            url: "https://ca.test/new-order",
            payload: payload
        )
        let object = try #require(try JSONSerialization.jsonObject(with: Data(body)) as? [String: String])
        #expect(Set(object.keys) == ["protected", "payload", "signature"])
        let encodedHeader = try #require(object["protected"])
        let encodedPayload = try #require(object["payload"])
        let header = try #require(Base64URL.decode(encodedHeader))
        #expect(
            String(decoding: header, as: UTF8.self)
                == JWS.protectedHeader(signer: signer, nonce: "n2", url: "https://ca.test/new-order")
        )
        // POST-as-GET (RFC 8555 section 6.3): the payload is the empty string, not "e30" ({}).
        #expect(Base64URL.decode(encodedPayload) == (payload ?? []))
        #expect(withPayload || encodedPayload.isEmpty)
        let encodedSignature = try #require(object["signature"])
        let raw = try #require(Base64URL.decode(encodedSignature))
        let signature = try P256.Signing.ECDSASignature(rawRepresentation: raw)
        let publicKey = try Self.rfcPublicKey
        #expect(publicKey.isValidSignature(signature, for: Array("\(encodedHeader).\(encodedPayload)".utf8)))
        #expect(!publicKey.isValidSignature(signature, for: Array("\(encodedHeader).e30".utf8)))
    }
}
