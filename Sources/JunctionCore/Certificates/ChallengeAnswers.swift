import JunctionACME
import NIOSSL

import struct NIOConcurrencyHelpers.NIOLockedValueBox

/// The answers to ACME challenges pending now, for the listeners: http-01 key authorizations by
/// token, tls-alpn-01 certificates by name. Filled by this process's orders and, for instances
/// sharing a storage, from the challenges another instance wrote there, so whichever instance the
/// CA's validation reaches answers it.
///
/// Read on event loops (a request for `/.well-known/acme-challenge/`, a handshake offering
/// `acme-tls/1`), written by the control plane: a lock, taken only on those rare paths.
final class ChallengeAnswers: Sendable {
    /// A tls-alpn-01 answer: the certificate RFC 8737 asks for and its key.
    struct Certificate: Sendable {
        var chain: [NIOSSLCertificate]
        var key: NIOSSLPrivateKey
    }

    private struct Answer {
        var challenge: PendingChallenge
        /// nil: this process's own order; else the storage it was read from.
        var sharedFrom: String?
        var certificate: Certificate?
    }

    /// Keyed by `type` and token (http-01) or name (tls-alpn-01).
    private let answers = NIOLockedValueBox<[String: Answer]>([:])

    private static func key(_ type: ChallengeType, _ name: String) -> String { "\(type.rawValue) \(name)" }

    private static func key(_ challenge: PendingChallenge) -> String {
        self.key(challenge.type, challenge.type == .http01 ? challenge.token : challenge.domain)
    }

    /// Makes `challenge` answered; `sharedFrom` names the storage it came from when another
    /// instance placed it.
    func add(_ challenge: PendingChallenge, sharedFrom: String? = nil) throws {
        var answer = Answer(challenge: challenge, sharedFrom: sharedFrom)
        if challenge.type == .tlsALPN01 {
            let material = try ChallengeCertificate.tlsALPN(
                domain: challenge.domain,
                keyAuthorization: challenge.keyAuthorization
            )
            answer.certificate = Certificate(
                chain: [try NIOSSLCertificate(bytes: material.der, format: .der)],
                key: try NIOSSLPrivateKey(bytes: Array(material.keyPEM.utf8), format: .pem)
            )
        }
        self.answers.withLockedValue { $0[Self.key(challenge)] = answer }
    }

    func remove(_ challenge: PendingChallenge) {
        self.answers.withLockedValue { _ = $0.removeValue(forKey: Self.key(challenge)) }
    }

    /// Replaces what was read from `storage` before with `challenges` (this process's own
    /// answers stay).
    func share(_ challenges: [PendingChallenge], from storage: String) {
        let known = self.answers.withLockedValue { answers in
            answers = answers.filter { $0.value.sharedFrom != storage || challenges.contains($0.value.challenge) }
            return Set(answers.values.map { Self.key($0.challenge) })
        }
        for challenge in challenges where !known.contains(Self.key(challenge)) {
            try? self.add(challenge, sharedFrom: storage)
        }
    }

    /// The key authorization to answer `GET /.well-known/acme-challenge/<token>` with.
    func httpAnswer(token: Substring) -> String? {
        self.answers.withLockedValue { $0[Self.key(.http01, String(token))]?.challenge.keyAuthorization }
    }

    /// The certificate for a handshake offering `acme-tls/1` with this server name.
    func tlsCertificate(serverName: String) -> Certificate? {
        self.answers.withLockedValue { $0[Self.key(.tlsALPN01, serverName.lowercased())]?.certificate }
    }

    /// Whether any answer is pending (tests poll it).
    var isEmpty: Bool { self.answers.withLockedValue { $0.isEmpty } }
}
