/// A JWS in the flattened JSON serialization (RFC 7515 section 7.2.2), as every ACME POST body
/// is (RFC 8555 section 6.2): the protected header names the key (`jwk` for a new account, else
/// the account URL as `kid`), the nonce and the URL.
public enum JWS {
    /// Who signs: the key itself, or the account it belongs to.
    public enum Signer: Sendable, Equatable {
        case jwk(JWK)
        case kid(String)
    }

    /// The protected header's JSON.
    static func protectedHeader(signer: Signer, nonce: String, url: String) -> String {
        let key: String
        switch signer {
        case .jwk(let jwk): key = #""jwk":\#(jwk.json)"#
        case .kid(let kid): key = #""kid":\#(kid.jsonLiteral)"#
        }
        return #"{"alg":"ES256",\#(key),"nonce":\#(nonce.jsonLiteral),"url":\#(url.jsonLiteral)}"#
    }

    /// The signing input: base64url(header) "." base64url(payload) (RFC 7515 section 5.1).
    public static func signingInput(protected: String, payload: [UInt8]) -> String {
        "\(Base64URL.encode(Array(protected.utf8))).\(Base64URL.encode(payload))"
    }

    /// The request body: `payload` nil is a POST-as-GET (an empty payload, RFC 8555 section 6.3).
    static func body(key: AccountKey, signer: Signer, nonce: String, url: String, payload: [UInt8]?) throws -> [UInt8] {
        let header = self.protectedHeader(signer: signer, nonce: nonce, url: url)
        let encodedHeader = Base64URL.encode(Array(header.utf8))
        let encodedPayload = payload.map { Base64URL.encode($0) } ?? ""
        let signature = try key.sign(Array("\(encodedHeader).\(encodedPayload)".utf8))
        let json =
            #"{"protected":"\#(encodedHeader)","payload":"\#(encodedPayload)","signature":"\#(Base64URL.encode(signature))"}"#
        return Array(json.utf8)
    }
}
