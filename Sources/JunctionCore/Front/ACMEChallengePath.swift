import NIOHTTP1

/// `/.well-known/acme-challenge/<token>` (RFC 8555 section 8.3): where a CA fetches an http-01
/// answer, and the answer a plain listener gives there.
enum ACMEChallengePath {
    static let prefix = "/.well-known/acme-challenge/"

    /// The token of a challenge request target (a query is ignored); nil for any other target.
    /// Tokens are base64url (RFC 8555 section 8.1), so anything else is not one.
    static func token(in target: String) -> Substring? {
        guard target.hasPrefix(Self.prefix) else { return nil }
        let rest = target.dropFirst(Self.prefix.count)
        let token = rest.prefix { $0 != "?" }
        guard !token.isEmpty, token.utf8.count <= 256,
            token.utf8.allSatisfy({ URIBytes.isUnreserved($0) && $0 != UInt8(ascii: ".") && $0 != UInt8(ascii: "~") })
        else { return nil }
        return token
    }

    /// The 200 carrying the key authorization, as a backend's would be.
    static func responseHead(_ keyAuthorization: String) -> HTTPResponseHead {
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: "application/octet-stream")
        headers.add(name: "Content-Length", value: String(keyAuthorization.utf8.count))
        headers.add(name: "Cache-Control", value: "no-store")
        return HTTPResponseHead(version: .http1_1, status: .ok, headers: headers)
    }
}
