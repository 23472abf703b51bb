/// The challenge types Junction answers itself.
public enum ChallengeType: String, Sendable, CaseIterable, Codable {
    case tlsALPN01 = "tls-alpn-01"
    case http01 = "http-01"
}

/// A challenge waiting for the CA's validation: what the listeners must answer.
public struct PendingChallenge: Sendable, Codable, Equatable {
    public var type: ChallengeType
    public var domain: String
    public var token: String
    public var keyAuthorization: String

    public init(type: ChallengeType, domain: String, token: String, keyAuthorization: String) {
        self.type = type
        self.domain = domain
        self.token = token
        self.keyAuthorization = keyAuthorization
    }
}

/// Puts a challenge's answer where the CA will look for it, and takes it away afterwards.
public protocol ChallengeSolver: Sendable {
    /// Makes the answer available; returns once every listener of this process answers it.
    func present(_ challenge: PendingChallenge) async throws
    /// Removes the answer.
    func remove(_ challenge: PendingChallenge) async
}
