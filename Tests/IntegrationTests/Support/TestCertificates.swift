import Crypto
import Foundation
import X509

/// Certificates made at run time with swift-certificates: a CA and server certificates it signs.
/// Nothing is committed; each test run has its own keys.
struct TestCertificates {
    /// A PEM certificate (chain) and key.
    struct Issued {
        var certificatePEM: String
        var keyPEM: String
    }

    let caPEM: String
    private let caKey: P256.Signing.PrivateKey
    private let caName: DistinguishedName

    init() throws {
        let key = P256.Signing.PrivateKey()
        let name = try DistinguishedName { CommonName("Junction test CA") }
        let now = Date()
        let certificate = try Certificate(
            version: .v3,
            serialNumber: Certificate.SerialNumber(),
            publicKey: .init(key.publicKey),
            notValidBefore: now.addingTimeInterval(-3600),
            notValidAfter: now.addingTimeInterval(86400),
            issuer: name,
            subject: name,
            signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.isCertificateAuthority(maxPathLength: nil))
                Critical(KeyUsage(keyCertSign: true))
            },
            issuerPrivateKey: .init(key)
        )
        self.caPEM = try certificate.serializeAsPEM().pemString
        self.caKey = key
        self.caName = name
    }

    /// A server certificate for `dnsNames`, with the subject CN `commonName`.
    func issue(commonName: String, dnsNames: [String], expired: Bool = false) throws -> Issued {
        let key = P256.Signing.PrivateKey()
        let now = Date()
        let notAfter = expired ? now.addingTimeInterval(-60) : now.addingTimeInterval(86400)
        let names: [GeneralName] = dnsNames.map { .dnsName($0) }
        let certificate = try Certificate(
            version: .v3,
            serialNumber: Certificate.SerialNumber(),
            publicKey: .init(key.publicKey),
            notValidBefore: now.addingTimeInterval(-7200),
            notValidAfter: notAfter,
            issuer: self.caName,
            subject: try DistinguishedName { CommonName(commonName) },
            signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.notCertificateAuthority)
                SubjectAlternativeNames(names)
                try ExtendedKeyUsage([.serverAuth])
            },
            issuerPrivateKey: .init(self.caKey)
        )
        let keyPEM = try Certificate.PrivateKey(key).serializeAsPEM().pemString
        return Issued(certificatePEM: try certificate.serializeAsPEM().pemString + "\n", keyPEM: keyPEM + "\n")
    }
}
