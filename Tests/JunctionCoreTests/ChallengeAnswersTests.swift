import Crypto
import JunctionACME
import NIOSSL
import Testing
import X509

@testable import JunctionCore

/// The answers the listeners give to pending challenges: http-01 by token, tls-alpn-01 by name,
/// and the answers shared by other instances through the storage, replaced as it changes.
@Suite("ACME challenge answers")
struct ChallengeAnswersTests {
    static func http(_ token: String, _ keyAuthorization: String? = nil) -> PendingChallenge {
        PendingChallenge(
            type: .http01,
            domain: "chat.example.com",
            token: token,
            keyAuthorization: keyAuthorization ?? "\(token).thumb"
        )
    }

    static func tls(_ domain: String, _ token: String = "tls-token") -> PendingChallenge {
        PendingChallenge(type: .tlsALPN01, domain: domain, token: token, keyAuthorization: "\(token).thumb")
    }

    @Test("http-01: the key authorization by token, nothing for another token or a tls-alpn-01 name")
    func httpAnswers() throws {
        let answers = ChallengeAnswers()
        #expect(answers.isEmpty)
        try answers.add(Self.http("tokA"))
        try answers.add(Self.tls("www.example.com", "tokB"))
        #expect(answers.httpAnswer(token: "tokA") == "tokA.thumb")
        #expect(answers.httpAnswer(token: "tokB") == nil, "a tls-alpn-01 challenge is not answered over HTTP")
        #expect(answers.httpAnswer(token: "toka") == nil, "tokens are case-sensitive")
        #expect(answers.tlsCertificate(serverName: "chat.example.com") == nil, "no tls-alpn-01 challenge for it")
        answers.remove(Self.http("tokA"))
        #expect(answers.httpAnswer(token: "tokA") == nil)
        #expect(!answers.isEmpty)
        answers.remove(Self.tls("www.example.com", "tokB"))
        #expect(answers.isEmpty)
    }

    @Test("tls-alpn-01: the RFC 8737 certificate for the name (any case), with the key that signs for it")
    func tlsAnswers() throws {
        let answers = ChallengeAnswers()
        let challenge = Self.tls("chat.example.com")
        try answers.add(challenge)
        let answer = try #require(answers.tlsCertificate(serverName: "Chat.Example.COM"))
        #expect(answers.tlsCertificate(serverName: "www.example.com") == nil)
        #expect(answer.chain.count == 1)
        let certificate = try Certificate(derEncoded: try answer.chain[0].toDERBytes())
        let names = try #require(try certificate.extensions.subjectAlternativeNames)
        #expect(Array(names) == [.dnsName("chat.example.com")])
        let identifier = try #require(certificate.extensions[oid: ChallengeCertificateTests.acmeIdentifier])
        #expect(
            Array(identifier.value) == [0x04, 0x20] + Array(SHA256.hash(data: Array(challenge.keyAuthorization.utf8)))
        )
        // The key is the certificate's: a context with both loads (BoringSSL checks the pair).
        var server = TLSConfiguration.makeServerConfiguration(
            certificateChain: answer.chain.map { .certificate($0) },
            privateKey: .privateKey(answer.key)
        )
        server.applicationProtocols = ["acme-tls/1"]
        #expect(throws: Never.self) { try NIOSSLContext(configuration: server) }
        let stranger = try NIOSSLPrivateKey(
            bytes: Array(P256.Signing.PrivateKey().pemRepresentation.utf8),
            format: .pem
        )
        server.privateKey = .privateKey(stranger)
        #expect(throws: (any Error).self) { try NIOSSLContext(configuration: server) }
    }

    @Test("share: another instance's challenges are answered, and dropped once gone from its storage")
    func share() throws {
        let answers = ChallengeAnswers()
        answers.share([Self.http("tokA"), Self.http("tokB"), Self.tls("www.example.com")], from: "/srv/acme")
        #expect(answers.httpAnswer(token: "tokA") == "tokA.thumb")
        #expect(answers.httpAnswer(token: "tokB") == "tokB.thumb")
        let first = try #require(answers.tlsCertificate(serverName: "www.example.com"))

        answers.share([Self.http("tokB"), Self.tls("www.example.com")], from: "/srv/acme")
        #expect(answers.httpAnswer(token: "tokA") == nil, "gone from the storage: no longer answered")
        #expect(answers.httpAnswer(token: "tokB") == "tokB.thumb")
        let again = try #require(answers.tlsCertificate(serverName: "www.example.com"))
        #expect(again.chain == first.chain, "an unchanged challenge keeps its certificate")

        // The same name with a new key authorization (a new order) gets a new certificate.
        answers.share([Self.tls("www.example.com", "newer")], from: "/srv/acme")
        let renewed = try #require(answers.tlsCertificate(serverName: "www.example.com"))
        #expect(renewed.chain != first.chain)
        #expect(answers.httpAnswer(token: "tokB") == nil)

        answers.share([], from: "/srv/acme")
        #expect(answers.isEmpty)
    }

    @Test("share never drops this process's own answers or another storage's, nor overrides them")
    func shareKeepsOthers() throws {
        let answers = ChallengeAnswers()
        try answers.add(Self.http("own", "own.mine"))
        answers.share([Self.http("fromA")], from: "/srv/a")
        answers.share([Self.http("fromB")], from: "/srv/b")
        answers.share([Self.http("own", "own.theirs")], from: "/srv/a")
        #expect(answers.httpAnswer(token: "own") == "own.mine", "this process's order answers")
        #expect(answers.httpAnswer(token: "fromA") == nil)
        #expect(answers.httpAnswer(token: "fromB") == "fromB.thumb")
        answers.share([], from: "/srv/a")
        answers.share([], from: "/srv/b")
        #expect(answers.httpAnswer(token: "own") == "own.mine")
        #expect(answers.httpAnswer(token: "fromB") == nil)
    }
}
