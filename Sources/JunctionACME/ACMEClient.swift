import AsyncHTTPClient
import Logging
import NIOCore
import NIOHTTP1

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

/// One account's conversation with one ACME directory (RFC 8555): the directory, a pool of
/// nonces, signed POSTs (a `badNonce` is retried with the fresh nonce the answer carries) and the
/// resources an order goes through. Every problem document the CA sends is logged as it came.
public actor ACMEClient {
    /// An answer: its status, headers and body.
    struct Answer: Sendable {
        var status: Int
        var headers: HTTPHeaders
        var body: [UInt8]

        var location: String? { self.headers.first(name: "Location") }
    }

    /// How long one HTTP exchange with the CA may take.
    static let requestTimeout = TimeAmount.seconds(30)
    /// How many times a POST is sent again after a `badNonce`.
    static let badNonceRetries = 5
    /// Larger answers are refused (a certificate chain is a few kB).
    static let maxBody = 1 << 20

    public let directoryURL: String
    private let http: HTTPClient
    private let key: AccountKey
    private let logger: Logger
    private var cachedDirectory: ACMEDirectory?
    private var nonces: [String] = []
    private var accountURL: String?

    /// `http` is shared and shut down by its owner.
    public init(directoryURL: String, http: HTTPClient, key: AccountKey, logger: Logger) {
        self.directoryURL = directoryURL
        self.http = http
        self.key = key
        self.logger = logger
    }

    // MARK: resources

    /// The directory, fetched once.
    public func directory() async throws -> ACMEDirectory {
        if let cachedDirectory { return cachedDirectory }
        let answer = try await self.send(url: self.directoryURL, method: .GET, body: nil)
        guard answer.status == 200 else { throw self.unexpected(answer, url: self.directoryURL) }
        let directory: ACMEDirectory = try self.decode(answer, url: self.directoryURL)
        self.cachedDirectory = directory
        return directory
    }

    /// The account of this key: created (agreeing to the terms of service) or found again
    /// (RFC 8555 section 7.3: the same key answers 200 with the existing account's URL).
    @discardableResult
    public func account(contact: [String]) async throws -> String {
        if let accountURL { return accountURL }
        let directory = try await self.directory()
        let contacts = contact.map { $0.jsonLiteral }.joined(separator: ",")
        let payload = #"{"termsOfServiceAgreed":true,"contact":[\#(contacts)]}"#
        let answer = try await self.post(url: directory.newAccount, payload: Array(payload.utf8), asKey: true)
        guard answer.status == 200 || answer.status == 201, let location = answer.location else {
            throw self.unexpected(answer, url: directory.newAccount)
        }
        self.accountURL = location
        return location
    }

    /// Places an order for `domains`; returns its URL and the order.
    public func newOrder(domains: [String]) async throws -> (url: String, order: ACMEOrder) {
        let directory = try await self.directory()
        let identifiers = domains.map { #"{"type":"dns","value":\#($0.jsonLiteral)}"# }
        let payload = #"{"identifiers":[\#(identifiers.joined(separator: ","))]}"#
        let answer = try await self.post(url: directory.newOrder, payload: Array(payload.utf8))
        guard answer.status == 201, let location = answer.location else {
            throw self.unexpected(answer, url: directory.newOrder)
        }
        return (location, try self.decode(answer, url: directory.newOrder))
    }

    /// An authorization (POST-as-GET).
    public func authorization(_ url: String) async throws -> ACMEAuthorization {
        let (authorization, _): (ACMEAuthorization, Int?) = try await self.fetch(url)
        return authorization
    }

    /// Tells the CA a challenge is ready to be validated (RFC 8555 section 7.5.1).
    public func respond(toChallenge url: String) async throws {
        let answer = try await self.post(url: url, payload: Array("{}".utf8))
        guard answer.status == 200 else { throw self.unexpected(answer, url: url) }
    }

    /// Polls an authorization until it is valid; `invalid` (or any end other than valid) throws
    /// with the challenge's problem.
    public func waitUntilValid(authorization url: String, timeout: Duration) async throws {
        let end = ContinuousClock.now + timeout
        while true {
            let (authorization, retryAfter): (ACMEAuthorization, Int?) = try await self.fetch(url)
            switch authorization.status {
            case "valid":
                return
            case "pending", "processing":
                try await self.pause(retryAfter: retryAfter, until: end, what: "authorization \(url)")
            default:
                let problem = authorization.challenges.lazy.compactMap(\.error).first
                throw ACMEError.failed(
                    what: "the authorization of \(authorization.identifier.value)",
                    status: authorization.status,
                    problem: problem
                )
            }
        }
    }

    /// Sends the CSR (DER) to the order's finalize URL (RFC 8555 section 7.4).
    public func finalize(_ order: ACMEOrder, csr: [UInt8]) async throws {
        let payload = #"{"csr":"\#(Base64URL.encode(csr))"}"#
        let answer = try await self.post(url: order.finalize, payload: Array(payload.utf8))
        guard answer.status == 200 else { throw self.unexpected(answer, url: order.finalize) }
    }

    /// Polls an order until it is `valid` (its certificate URL set); `invalid` throws.
    public func waitUntilValid(order url: String, timeout: Duration) async throws -> ACMEOrder {
        let end = ContinuousClock.now + timeout
        while true {
            let (order, retryAfter): (ACMEOrder, Int?) = try await self.fetch(url)
            switch order.status {
            case "valid" where order.certificate != nil:
                return order
            case "pending", "ready", "processing", "valid":
                try await self.pause(retryAfter: retryAfter, until: end, what: "order \(url)")
            default:
                throw ACMEError.failed(what: "the order", status: order.status, problem: order.error)
            }
        }
    }

    /// The certificate chain (PEM, leaf first) at `url`.
    public func certificateChain(_ url: String) async throws -> String {
        let answer = try await self.post(url: url, payload: nil)
        guard answer.status == 200 else { throw self.unexpected(answer, url: url) }
        return String(decoding: answer.body, as: UTF8.self)
    }

    /// RFC 9773: the CA's suggested renewal window for the certificate `certificateID`
    /// (base64url(AKI key identifier) "." base64url(serial)); nil when the directory has none.
    public func renewalInfo(certificateID: String) async throws -> ACMERenewalInfo? {
        guard let base = try await self.directory().renewalInfo else { return nil }
        let url = base.hasSuffix("/") ? base + certificateID : base + "/" + certificateID
        let answer = try await self.send(url: url, method: .GET, body: nil)
        guard answer.status == 200 else { throw self.unexpected(answer, url: url) }
        return try self.decode(answer, url: url)
    }

    // MARK: transport

    /// A POST-as-GET, decoded; with the answer's Retry-After in seconds.
    private func fetch<Resource: Decodable>(_ url: String) async throws -> (Resource, Int?) {
        let answer = try await self.post(url: url, payload: nil)
        guard answer.status == 200 else { throw self.unexpected(answer, url: url) }
        return (try self.decode(answer, url: url), answer.headers.first(name: "Retry-After").flatMap { Int($0) })
    }

    /// Waits before the next poll: Retry-After when the CA sent one (at most 10 s), else 1 s.
    private func pause(retryAfter: Int?, until end: ContinuousClock.Instant, what: String) async throws {
        let delay = Duration.seconds(min(max(retryAfter ?? 1, 1), 10))
        guard ContinuousClock.now + delay < end else { throw ACMEError.timedOut(what: what) }
        try await Task.sleep(for: delay)
    }

    /// A signed POST: `asKey` signs with the JWK (new account), else with the account URL.
    private func post(url: String, payload: [UInt8]?, asKey: Bool = false) async throws -> Answer {
        var attempt = 0
        while true {
            let nonce = try await self.nonce()
            let signer: JWS.Signer
            if asKey {
                signer = .jwk(self.key.jwk)
            } else if let accountURL {
                signer = .kid(accountURL)
            } else {
                preconditionFailure("an ACME request before the account was looked up")
            }
            let body = try JWS.body(key: self.key, signer: signer, nonce: nonce, url: url, payload: payload)
            let answer = try await self.send(url: url, method: .POST, body: body)
            if answer.status < 400 { return answer }
            let problem = self.problem(answer)
            if let problem, problem.isBadNonce, attempt < Self.badNonceRetries {
                // The answer carried a fresh nonce (kept by `send`): sign again with it.
                attempt += 1
                self.logger.debug("acme: bad nonce, retrying", metadata: ["url": "\(url)"])
                continue
            }
            throw problem ?? self.unexpected(answer, url: url)
        }
    }

    private func nonce() async throws -> String {
        if let nonce = self.nonces.popLast() { return nonce }
        let url = try await self.directory().newNonce
        let answer = try await self.send(url: url, method: .HEAD, body: nil)
        guard let nonce = self.nonces.popLast() else {
            throw ACMEError.badResponse(url: url, status: answer.status, detail: "no Replay-Nonce header")
        }
        return nonce
    }

    /// One exchange; every Replay-Nonce goes to the pool.
    private func send(url: String, method: HTTPMethod, body: [UInt8]?) async throws -> Answer {
        var request = HTTPClientRequest(url: url)
        request.method = method
        request.headers.add(name: "User-Agent", value: "junction-acme")
        if let body {
            request.headers.add(name: "Content-Type", value: "application/jose+json")
            request.body = .bytes(ByteBuffer(bytes: body))
        }
        let response = try await self.http.execute(request, timeout: Self.requestTimeout)
        let bytes = try await response.body.collect(upTo: Self.maxBody)
        if let nonce = response.headers.first(name: "Replay-Nonce") {
            // A few nonces are plenty: each answer brings the next.
            if self.nonces.count >= 8 { self.nonces.removeFirst() }
            self.nonces.append(nonce)
        }
        return Answer(status: Int(response.status.code), headers: response.headers, body: Array(buffer: bytes))
    }

    /// The answer's problem document, logged as it came.
    private func problem(_ answer: Answer) -> ACMEProblem? {
        let text = String(decoding: answer.body, as: UTF8.self)
        guard var problem = try? JSONDecoder().decode(ACMEProblem.self, from: Data(answer.body)) else { return nil }
        problem.raw = text
        if !problem.isBadNonce {
            self.logger.warning("acme: the CA answered with a problem", metadata: ["problem": "\(text)"])
        }
        return problem
    }

    private func decode<Resource: Decodable>(_ answer: Answer, url: String) throws -> Resource {
        do {
            return try JSONDecoder().decode(Resource.self, from: Data(answer.body))
        } catch {
            throw ACMEError.badResponse(url: url, status: answer.status, detail: "\(error)")
        }
    }

    private func unexpected(_ answer: Answer, url: String) -> Error {
        if let problem = self.problem(answer) { return problem }
        let text = String(decoding: answer.body.prefix(200), as: UTF8.self)
        return ACMEError.badResponse(url: url, status: answer.status, detail: text)
    }
}
