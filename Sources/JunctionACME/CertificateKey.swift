import Crypto
import X509
import _CryptoExtras

/// The kind of key a certificate is issued for (`key_type`).
public enum CertificateKeyType: String, Sendable, CaseIterable {
    case ecdsaP256 = "ecdsa-p256"
    case rsa2048 = "rsa-2048"

    /// A new random key of this type.
    public func generate() throws -> Certificate.PrivateKey {
        switch self {
        case .ecdsaP256: return Certificate.PrivateKey(P256.Signing.PrivateKey())
        case .rsa2048: return Certificate.PrivateKey(try _RSA.Signing.PrivateKey(keySize: .bits2048))
        }
    }

    /// Whether `key` is a key of this type.
    public func matches(_ key: Certificate.PublicKey) -> Bool {
        switch self {
        case .ecdsaP256: return P256.Signing.PublicKey(key) != nil
        case .rsa2048: return _RSA.Signing.PublicKey(key) != nil
        }
    }

    /// The signature algorithm a CSR (or a self-signed certificate) of such a key uses.
    var signatureAlgorithm: Certificate.SignatureAlgorithm {
        switch self {
        case .ecdsaP256: return .ecdsaWithSHA256
        case .rsa2048: return .sha256WithRSAEncryption
        }
    }
}

extension Certificate.PrivateKey {
    /// PKCS#8 PEM, as Junction writes every key.
    public func pkcs8PEM() throws -> String {
        let document = try self.serializeAsPEM()
        if document.discriminator == "PRIVATE KEY" { return document.pemString }
        // RSA keys serialise as PKCS#1; rewrite them as PKCS#8.
        let rsa = try _RSA.Signing.PrivateKey(derRepresentation: document.derBytes)
        return rsa.pkcs8PEMRepresentation
    }
}
