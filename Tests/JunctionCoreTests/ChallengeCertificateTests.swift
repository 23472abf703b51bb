import Crypto
import Foundation
import SwiftASN1
import Testing
import X509

@testable import JunctionACME

/// The self-signed certificates Junction makes: the tls-alpn-01 answer as RFC 8737 defines it, and
/// the stand-in served until the first issuance.
@Suite("tls-alpn-01 and stand-in certificates")
struct ChallengeCertificateTests {
    /// RFC 8737 section 6.1: id-pe-acmeIdentifier.
    static let acmeIdentifier: ASN1ObjectIdentifier = [1, 3, 6, 1, 5, 5, 7, 1, 31]
    static let keyAuthorization =
        "evaGxfADs6pSRb2LAv9IZf17Dt3juxGJ-PCt92wr-oA.NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
    /// DER OCTET STRING (04 20) of the SHA-256 of `keyAuthorization`.
    static let acmeIdentifierValue = "0420653471d42925d7eb4cd39a39cda8b34d3034c94cb90067ab78c8123560ba2e5f"
    /// A whole second: certificate times have no fractions.
    static let now = Date(timeIntervalSince1970: 1_780_000_000)

    static func hex(_ bytes: some Sequence<UInt8>) -> String {
        bytes.map { String($0, radix: 16).count == 1 ? "0" + String($0, radix: 16) : String($0, radix: 16) }.joined()
    }

    @Test("RFC 8737: one DNS SAN, a critical acmeIdentifier holding SHA-256(key authorization), self-signed")
    func tlsALPN() throws {
        let material = try ChallengeCertificate.tlsALPN(
            domain: "chat.example.com",
            keyAuthorization: Self.keyAuthorization,
            now: Self.now
        )
        let certificate = try Certificate(derEncoded: material.der)

        let names = try #require(try certificate.extensions.subjectAlternativeNames)
        #expect(Array(names) == [.dnsName("chat.example.com")])
        let identifier = try #require(certificate.extensions[oid: Self.acmeIdentifier])
        #expect(identifier.critical, "RFC 8737 section 3: the extension MUST be critical")
        #expect(Self.hex(identifier.value) == Self.acmeIdentifierValue)
        let digest = Array(SHA256.hash(data: Array(Self.keyAuthorization.utf8)))
        #expect(Array(identifier.value) == [0x04, 0x20] + digest)

        try Self.expectSelfSigned(certificate, material: material, commonName: "chat.example.com")
        let extensionOIDs = Set(certificate.extensions.map(\.oid))
        #expect(
            extensionOIDs == [
                .X509ExtensionID.subjectAlternativeName, .X509ExtensionID.basicConstraints, Self.acmeIdentifier,
            ]
        )
    }

    @Test("Another key authorization gives another digest: the extension is not a constant")
    func digestFollowsKeyAuthorization() throws {
        let material = try ChallengeCertificate.tlsALPN(domain: "chat.example.com", keyAuthorization: "token.other")
        let certificate = try Certificate(derEncoded: material.der)
        let identifier = try #require(certificate.extensions[oid: Self.acmeIdentifier])
        #expect(Array(identifier.value) == [0x04, 0x20] + Array(SHA256.hash(data: Array("token.other".utf8))))
    }

    @Test("The stand-in: every name as a SAN, the first as CN, no acmeIdentifier, not a CA")
    func standIn() throws {
        let domains = ["chat.example.com", "www.example.com"]
        let material = try ChallengeCertificate.standIn(domains: domains, now: Self.now)
        let certificate = try Certificate(derEncoded: material.der)
        let names = try #require(try certificate.extensions.subjectAlternativeNames)
        #expect(Array(names) == domains.map { .dnsName($0) })
        #expect(certificate.extensions[oid: Self.acmeIdentifier] == nil)
        try Self.expectSelfSigned(certificate, material: material, commonName: "chat.example.com")
    }

    /// What both kinds share: a week's validity from a minute before `now`, issuer = subject = CN,
    /// a critical "not a CA", a signature by its own key, and PEM forms that match the DER.
    static func expectSelfSigned(
        _ certificate: Certificate,
        material: ChallengeCertificate.Material,
        commonName: String
    )
        throws
    {
        #expect(certificate.notValidBefore == Self.now - 60, "a minute of slack for the validator's clock")
        #expect(certificate.notValidAfter == Self.now + 7 * 86400)
        let name = try DistinguishedName { CommonName(commonName) }
        #expect(certificate.subject == name && certificate.issuer == name)
        let constraints = try #require(certificate.extensions[oid: .X509ExtensionID.basicConstraints])
        #expect(constraints.critical)
        #expect(try certificate.extensions.basicConstraints == .notCertificateAuthority)
        #expect(certificate.publicKey.isValidSignature(certificate.signature, for: certificate))

        #expect(try PEMDocument(pemString: material.certificatePEM).derBytes == material.der)
        let key = try P256.Signing.PrivateKey(pemRepresentation: material.keyPEM)
        #expect(Certificate.PublicKey(key.publicKey) == certificate.publicKey, "the key is the certificate's")
    }
}
