import NIOSSL
import Testing

@testable import JunctionCore

/// `tls.ciphers` is checked before BoringSSL sees it, and what the check computes is what BoringSSL
/// selects.
@Suite("TLS cipher lists")
struct TLSCipherListTests {
    /// What BoringSSL itself selects from `list` (TLS 1.2 suites only).
    static func boringSSLSelection(_ list: String) throws -> Set<UInt16> {
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.cipherSuites = list
        let tls13: Set<UInt16> = [0x1301, 0x1302, 0x1303]
        return Set(configuration.cipherSuiteValues.map(\.rawValue)).subtracting(tls13)
    }

    @Test(
        "Accepted lists select exactly what BoringSSL selects",
        arguments: [
            TLSContextSet.intermediateCiphers, "ECDHE+AESGCM:ECDHE+CHACHA20", "ECDHE+CHACHA20", "ALL", "HIGH:!aRSA",
            "ECDHE:!SHA1:!SHA", "AES128", "AES256+ECDSA", "RSA", "kRSA:-AES128", "ALL:!kRSA:-ECDSA:ECDSA+AESGCM",
            "ECDHE-RSA-AES128-GCM-SHA256", "AESGCM:@STRENGTH", "+AES:CHACHA20", "EECDH+AES128:kEECDH",
            "ALL:!ECDHE-RSA-AES128-SHA", "ECDHE-ECDSA-AES128-SHA256:ECDHE-RSA-AES128-SHA256",
        ]
    )
    func matchesBoringSSL(list: String) throws {
        let computed = try TLSCipherList.selection(list).get()
        let actual = try Self.boringSSLSelection(list)
        #expect(
            computed == actual,
            "\(list): only ours \(computed.subtracting(actual).map { String($0, radix: 16) }), only BoringSSL \(actual.subtracting(computed).map { String($0, radix: 16) })"
        )
    }

    @Test(
        "Refused lists",
        arguments: [
            ("NO-SUCH-SUITE", TLSCipherList.Problem.unknownName("NO-SUCH-SUITE")),
            ("ECDHE+SHA256", .unknownName("SHA256")),
            ("DEFAULT", .unknownName("DEFAULT")),
            ("TLSv1.2+ECDHE", .unknownName("TLSv1.2")),
            ("PSK", .selectsNothing),
            ("!ALL", .selectsNothing),
            ("ECDHE:-ECDHE", .selectsNothing),
            ("AESGCM+CHACHA20", .selectsNothing),
            ("!ECDHE:ECDHE", .selectsNothing),
            ("", .selectsNothing),
            ("[ECDHE|RSA]", .syntax("[ECDHE|RSA]")),
            ("ECDHE AESGCM", .syntax("ECDHE AESGCM")),
            ("@SECLEVEL=0", .syntax("@SECLEVEL=0")),
        ] as [(String, TLSCipherList.Problem)]
    )
    func refused(list: String, problem: TLSCipherList.Problem) {
        #expect(TLSCipherList.selection(list) == .failure(problem), "\(list)")
    }

    @Test("The default is Mozilla's intermediate profile: ECDHE with AES-GCM or ChaCha20 only")
    func intermediate() throws {
        let selected = try TLSCipherList.selection(TLSContextSet.intermediateCiphers).get()
        #expect(selected == [0xC02B, 0xC02C, 0xC02F, 0xC030, 0xCCA8, 0xCCA9])
    }
}
