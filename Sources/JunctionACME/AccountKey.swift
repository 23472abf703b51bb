import Crypto

/// The ACME account key: a P-256 key that signs every request with ES256 (RFC 7518 section 3.4).
public struct AccountKey: Sendable {
    let key: P256.Signing.PrivateKey

    /// A new random key.
    public init() {
        self.key = P256.Signing.PrivateKey()
    }

    /// A stored key, PKCS#8 or SEC1 PEM.
    public init(pem: String) throws {
        self.key = try P256.Signing.PrivateKey(pemRepresentation: pem)
    }

    /// The key for storage, PKCS#8 PEM.
    public var pem: String { self.key.pemRepresentation }

    /// The public key as a JWK.
    public var jwk: JWK {
        // x963: 0x04 || x || y, 32 bytes each.
        let point = Array(self.key.publicKey.x963Representation)
        return .ec(crv: "P-256", x: Base64URL.encode(point[1..<33]), y: Base64URL.encode(point[33..<65]))
    }

    /// The ES256 signature of `input`: r || s, 32 bytes each (RFC 7518 section 3.4).
    public func sign(_ input: [UInt8]) throws -> [UInt8] {
        Array(try self.key.signature(for: input).rawRepresentation)
    }

    /// The key authorization of a challenge token (RFC 8555 section 8.1).
    public func keyAuthorization(token: String) -> String {
        "\(token).\(self.jwk.thumbprint)"
    }
}
