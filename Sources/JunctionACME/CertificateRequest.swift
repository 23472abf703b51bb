import SwiftASN1
import X509

/// The certificate signing request (RFC 2986) an order is finalized with: the names as DNS
/// subject alternative names, the first also as the subject's common name.
public enum CertificateRequest {
    /// The DER bytes of a CSR for `domains`, signed by `key`.
    public static func der(
        domains: [String],
        key: Certificate.PrivateKey,
        keyType: CertificateKeyType
    ) throws
        -> [UInt8]
    {
        let names = SubjectAlternativeNames(domains.map { .dnsName($0) })
        let extensions = try Certificate.Extensions { names }
        let request = try CertificateSigningRequest(
            version: .v1,
            // RFC 5280 caps a common name at 64 characters; the SANs are what a CA issues for.
            subject: domains[0].utf8.count <= 64
                ? try DistinguishedName { CommonName(domains[0]) } : DistinguishedName(),
            privateKey: key,
            attributes: CertificateSigningRequest.Attributes([.init(ExtensionRequest(extensions: extensions))]),
            signatureAlgorithm: keyType.signatureAlgorithm
        )
        var serializer = DER.Serializer()
        try serializer.serialize(request)
        return serializer.serializedBytes
    }
}
