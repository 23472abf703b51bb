/// The directory (RFC 8555 section 7.1.1): where each resource of the CA is.
public struct ACMEDirectory: Decodable, Sendable {
    public var newNonce: String
    public var newAccount: String
    public var newOrder: String
    /// RFC 9773 (ACME Renewal Information), where the CA offers it.
    public var renewalInfo: String?
}

/// An order (RFC 8555 section 7.1.3).
public struct ACMEOrder: Decodable, Sendable {
    public var status: String
    public var authorizations: [String]
    public var finalize: String
    public var certificate: String?
    public var error: ACMEProblem?
}

/// An authorization of one identifier (RFC 8555 section 7.1.4).
public struct ACMEAuthorization: Decodable, Sendable {
    /// The identifier being authorized.
    public struct Identifier: Decodable, Sendable {
        public var type: String
        public var value: String
    }

    public var status: String
    public var identifier: Identifier
    public var challenges: [ACMEChallenge]
}

/// A challenge of an authorization (RFC 8555 section 8).
public struct ACMEChallenge: Decodable, Sendable {
    public var type: String
    public var url: String
    public var status: String
    public var token: String?
    public var error: ACMEProblem?
}

/// RFC 9773 section 4.2: the window in which the CA suggests renewing.
public struct ACMERenewalInfo: Decodable, Sendable {
    /// The window's bounds, RFC 3339 text.
    public struct Window: Decodable, Sendable {
        public var start: String
        public var end: String
    }

    public var suggestedWindow: Window
}
