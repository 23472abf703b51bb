import Logging
import X509

/// One issuance from start to end (RFC 8555 section 7): the account, the order, one challenge
/// per authorization, the CSR and the certificate.
public struct ACMEIssuer: Sendable {
    /// A new certificate: the chain as the CA sent it and the key, both PEM.
    public struct Issued: Sendable {
        public var chainPEM: String
        public var keyPEM: String
    }

    /// How long the CA may take to validate one authorization, and to issue once finalized.
    public var validationTimeout = Duration.seconds(120)
    public var issuanceTimeout = Duration.seconds(120)

    let client: ACMEClient
    let key: AccountKey
    let logger: Logger

    public init(client: ACMEClient, key: AccountKey, logger: Logger) {
        self.client = client
        self.key = key
        self.logger = logger
    }

    /// Orders a certificate for `domains`, answering each authorization with a `challenge` through
    /// `solver`.
    public func issue(
        domains: [String],
        contact: [String],
        challenge: ChallengeType,
        keyType: CertificateKeyType,
        solver: any ChallengeSolver
    ) async throws -> Issued {
        try await self.client.account(contact: contact)
        let (orderURL, order) = try await self.client.newOrder(domains: domains)
        self.logger.info("acme: order placed", metadata: ["order": "\(orderURL)", "domains": "\(domains)"])
        for url in order.authorizations {
            try await self.authorize(url, challenge: challenge, solver: solver)
        }
        let key = try keyType.generate()
        let csr = try CertificateRequest.der(domains: domains, key: key, keyType: keyType)
        try await self.client.finalize(order, csr: csr)
        let done = try await self.client.waitUntilValid(order: orderURL, timeout: self.issuanceTimeout)
        guard let certificateURL = done.certificate else {
            throw ACMEError.failed(what: "the order", status: done.status, problem: done.error)
        }
        let chain = try await self.client.certificateChain(certificateURL)
        return Issued(chainPEM: chain, keyPEM: try key.pkcs8PEM())
    }

    private func authorize(_ url: String, challenge type: ChallengeType, solver: any ChallengeSolver) async throws {
        let authorization = try await self.client.authorization(url)
        // An authorization the account already holds (reused by the CA) needs nothing.
        if authorization.status == "valid" { return }
        let domain = authorization.identifier.value
        guard let challenge = authorization.challenges.first(where: { $0.type == type.rawValue }),
            let token = challenge.token
        else {
            throw ACMEError.noChallenge(domain: domain, type: type.rawValue)
        }
        let pending = PendingChallenge(
            type: type,
            domain: domain,
            token: token,
            keyAuthorization: self.key.keyAuthorization(token: token)
        )
        do {
            try await solver.present(pending)
            try await self.client.respond(toChallenge: challenge.url)
            try await self.client.waitUntilValid(authorization: url, timeout: self.validationTimeout)
        } catch {
            await solver.remove(pending)
            throw error
        }
        await solver.remove(pending)
        self.logger.info("acme: name validated", metadata: ["domain": "\(domain)", "challenge": "\(type.rawValue)"])
    }
}
