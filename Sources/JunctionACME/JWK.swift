import Crypto

/// A public key as a JSON Web Key (RFC 7517), written with only its required members in
/// lexicographic order and no whitespace: RFC 7638's canonical form, which is also a valid JWK for
/// a JWS header.
public enum JWK: Sendable, Equatable {
    /// An elliptic-curve key: the curve name and the base64url coordinates.
    case ec(crv: String, x: String, y: String)
    /// An RSA key: the base64url modulus and exponent.
    case rsa(n: String, e: String)

    /// The canonical JSON (RFC 7638 section 3.2).
    public var json: String {
        switch self {
        case .ec(let crv, let x, let y):
            return #"{"crv":"\#(crv)","kty":"EC","x":"\#(x)","y":"\#(y)"}"#
        case .rsa(let n, let e):
            return #"{"e":"\#(e)","kty":"RSA","n":"\#(n)"}"#
        }
    }

    /// The RFC 7638 thumbprint: base64url of the SHA-256 of the canonical JSON.
    public var thumbprint: String {
        Base64URL.encode(SHA256.hash(data: Array(self.json.utf8)))
    }
}
