import Crypto
import JunctionACME
import Testing
import X509
import _CryptoExtras

/// The CSR an order is finalized with, read back with swift-certificates: the names as SANs, the
/// first as CN, the certificate key's public key, and a signature that verifies.
@Suite("ACME certificate signing request")
struct CertificateRequestTests {
    @Test(
        "The CSR parses back with the names, the key and a valid signature",
        arguments: CertificateKeyType.allCases,
        [["chat.example.com"], ["chat.example.com", "www.example.com", "api.chat.example.com"]]
    )
    func readBack(keyType: CertificateKeyType, domains: [String]) throws {
        let key = try keyType.generate()
        let der = try CertificateRequest.der(domains: domains, key: key, keyType: keyType)
        let csr = try CertificateSigningRequest(derEncoded: der)

        #expect(csr.version == .v1)
        #expect(csr.subject == (try DistinguishedName { CommonName(domains[0]) }))
        let request = try #require(try csr.attributes.extensionRequest, "an extensionRequest attribute")
        let names = try #require(try request.extensions.subjectAlternativeNames)
        #expect(Array(names) == domains.map { GeneralName.dnsName($0) })
        #expect(request.extensions.count == 1, "nothing but the SANs is requested")

        #expect(csr.publicKey == key.publicKey)
        #expect(
            csr.signatureAlgorithm == (keyType == .ecdsaP256 ? .ecdsaWithSHA256 : .sha256WithRSAEncryption)
        )
        #expect(csr.publicKey.isValidSignature(csr.signature, for: csr))
        let stranger = try keyType.generate()
        #expect(!stranger.publicKey.isValidSignature(csr.signature, for: csr), "signed by this key, not any")
    }

    @Test("The key types generate the keys their names say", arguments: CertificateKeyType.allCases)
    func keyTypes(keyType: CertificateKeyType) throws {
        let key = try keyType.generate()
        let pem = try key.pkcs8PEM()
        // PKCS#8 for both: RSA keys serialise as PKCS#1 unless rewritten.
        #expect(pem.hasPrefix("-----BEGIN PRIVATE KEY-----"))
        let reloaded = try Certificate.PrivateKey(pemEncoded: pem)
        #expect(reloaded.publicKey == key.publicKey)
        switch keyType {
        case .ecdsaP256:
            #expect(P256.Signing.PublicKey(key.publicKey) != nil)
        case .rsa2048:
            let rsa = try #require(_RSA.Signing.PublicKey(key.publicKey))
            #expect(rsa.keySizeInBits == 2048)
        }
    }
}
