import Crypto
import SwiftASN1
import X509

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

/// Self-signed certificates Junction makes itself: the tls-alpn-01 answer (RFC 8737 section 3)
/// and the stand-in that serves a name until its first certificate is issued.
public enum ChallengeCertificate {
    /// RFC 8737 section 6.1: id-pe-acmeIdentifier.
    static let acmeIdentifier: ASN1ObjectIdentifier = [1, 3, 6, 1, 5, 5, 7, 1, 31]
    /// How long both kinds are valid: a week, well past any order.
    static let lifetime: TimeInterval = 7 * 86400

    /// A certificate and its key, both PEM.
    public struct Material: Sendable {
        public var certificatePEM: String
        public var keyPEM: String
        /// The certificate, DER.
        public var der: [UInt8]
    }

    /// The tls-alpn-01 certificate of `domain`: its only SAN is the name and a critical
    /// acmeIdentifier extension holds the SHA-256 of the key authorization as an OCTET STRING.
    public static func tlsALPN(domain: String, keyAuthorization: String, now: Date = Date()) throws -> Material {
        let digest = Array(SHA256.hash(data: Array(keyAuthorization.utf8)))
        var serializer = DER.Serializer()
        try serializer.serialize(ASN1OctetString(contentBytes: digest[...]))
        let identifier = Certificate.Extension(
            oid: Self.acmeIdentifier,
            critical: true,
            value: serializer.serializedBytes[...]
        )
        return try self.selfSigned(domains: [domain], now: now, extra: [identifier])
    }

    /// A short-lived stand-in for `domains` until the real certificate arrives.
    public static func standIn(domains: [String], now: Date = Date()) throws -> Material {
        try self.selfSigned(domains: domains, now: now, extra: [])
    }

    private static func selfSigned(
        domains: [String],
        now: Date,
        extra: [Certificate.Extension]
    )
        throws -> Material
    {
        let key = P256.Signing.PrivateKey()
        // RFC 5280 caps a common name at 64 characters; clients match the SANs.
        let common = domains[0].utf8.count <= 64 ? domains[0] : "Junction temporary certificate"
        let name = try DistinguishedName { CommonName(common) }
        var extensions = try Certificate.Extensions {
            SubjectAlternativeNames(domains.map { .dnsName($0) })
            Critical(BasicConstraints.notCertificateAuthority)
        }
        for item in extra { try extensions.append(item) }
        let certificate = try Certificate(
            version: .v3,
            serialNumber: Certificate.SerialNumber(),
            publicKey: .init(key.publicKey),
            notValidBefore: now - 60,
            notValidAfter: now + Self.lifetime,
            issuer: name,
            subject: name,
            signatureAlgorithm: .ecdsaWithSHA256,
            extensions: extensions,
            issuerPrivateKey: .init(key)
        )
        var serializer = DER.Serializer()
        try serializer.serialize(certificate)
        let der = serializer.serializedBytes
        let pem = PEMDocument(type: "CERTIFICATE", derBytes: der).pemString
        return Material(certificatePEM: pem, keyPEM: key.pemRepresentation, der: der)
    }
}
