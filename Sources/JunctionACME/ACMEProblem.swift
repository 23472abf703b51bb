/// A problem document (RFC 7807, RFC 8555 section 6.7) the CA answered with; `raw` keeps the
/// document as it came, for the log.
public struct ACMEProblem: Decodable, Sendable, Error, CustomStringConvertible {
    public var type: String?
    public var detail: String?
    public var status: Int?
    /// The document's text as the CA sent it (empty for a problem nested in an order or challenge).
    public var raw: String = ""

    enum CodingKeys: String, CodingKey {
        case type, detail, status
    }

    public init(type: String?, detail: String?, status: Int?, raw: String) {
        self.type = type
        self.detail = detail
        self.status = status
        self.raw = raw
    }

    /// RFC 8555 section 6.5: the nonce was rejected; retry with the fresh one the answer carries.
    public var isBadNonce: Bool { self.type == "urn:ietf:params:acme:error:badNonce" }

    public var description: String {
        if !self.raw.isEmpty { return self.raw }
        return "\(self.type ?? "problem"): \(self.detail ?? "no detail")"
    }
}
