import NIOHTTP1
import Testing

@testable import JunctionCore

/// `/.well-known/acme-challenge/<token>`: which request targets carry a token (base64url only, so
/// no path, dot segment or escape gets through), and the answer's head.
@Suite("ACME http-01 challenge path")
struct ACMEChallengePathTests {
    static let longest = String(repeating: "A", count: 256)

    @Test(
        "The token of a challenge target, nil for anything else",
        arguments: [
            (
                "/.well-known/acme-challenge/evaGxfADs6pSRb2LAv9IZf17Dt3juxGJ-PCt92wr-oA",
                "evaGxfADs6pSRb2LAv9IZf17Dt3juxGJ-PCt92wr-oA"
            ),
            ("/.well-known/acme-challenge/tok_en-9?x=1", "tok_en-9"),
            ("/.well-known/acme-challenge/tok?", "tok"),
            ("/.well-known/acme-challenge/\(Self.longest)", Self.longest),
            ("/.well-known/acme-challenge/\(Self.longest)A", nil),
            ("/.well-known/acme-challenge/", nil),
            ("/.well-known/acme-challenge/?tok", nil),
            ("/.well-known/acme-challenge", nil),
            ("/.well-known/acme-challengetok", nil),
            ("/.well-known/acme-challenge/a/b", nil),
            ("/.well-known/acme-challenge/..", nil),
            ("/.well-known/acme-challenge/tok.en", nil),
            ("/.well-known/acme-challenge/tok~en", nil),
            ("/.well-known/acme-challenge/tok%2Fen", nil),
            ("/.well-known/acme-challenge/tok+en", nil),
            ("/.well-known/acme-challenge/tok=", nil),
            ("/.well-known/acme-challenge/tok#frag", nil),
            ("/.well-known/acme-challenge/tök", nil),
            ("/.WELL-KNOWN/acme-challenge/tok", nil),
            ("//.well-known/acme-challenge/tok", nil),
            ("/x/.well-known/acme-challenge/tok", nil),
            ("http://chat.example.com/.well-known/acme-challenge/tok", nil),
            ("/", nil),
            ("*", nil),
        ] as [(String, String?)]
    )
    func token(target: String, expected: String?) {
        #expect(ACMEChallengePath.token(in: target).map(String.init) == expected)
    }

    @Test("The answer: 200, the key authorization's exact length, not cached, an opaque type")
    func responseHead() {
        let keyAuthorization = "evaGxfADs6pSRb2LAv9IZf17Dt3juxGJ-PCt92wr-oA.NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        let head = ACMEChallengePath.responseHead(keyAuthorization)
        #expect(head.status == .ok && head.version == .http1_1)
        #expect(head.headers["Content-Length"] == ["87"])
        #expect(head.headers["Cache-Control"] == ["no-store"])
        #expect(head.headers["Content-Type"] == ["application/octet-stream"])
        #expect(head.headers.count == 3)
    }
}
