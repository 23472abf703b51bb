import Foundation
import JunctionACME
import NIOSSL
import Testing

@testable import JunctionCore

/// Which certificate a handshake gets by its SNI name when a listener has configured certificates
/// and one Junction obtains itself (`tls.acme`): configured ones first, then the managed one, else
/// the context's own (the first configured, or the managed one when it is alone).
@Suite("TLS certificate choice with a managed certificate")
struct TLSContextSetOverrideTests {
    /// The certificates of one case: configured A and B, a wildcard W, and the managed M.
    struct Fixtures {
        var entries: [String: TLSContextSet.Entry]
        var managed: ManagedCertificate

        init() throws {
            func entry(_ names: [String]) throws -> TLSContextSet.Entry {
                let material = try ChallengeCertificate.standIn(
                    domains: names.map { $0.replacingOccurrences(of: "*", with: "x") }
                )
                return TLSContextSet.Entry(
                    chain: [try NIOSSLCertificate(bytes: material.der, format: .der)],
                    key: try NIOSSLPrivateKey(bytes: Array(material.keyPEM.utf8), format: .pem),
                    names: names,
                    certPath: "/etc/junction/\(names[0]).pem",
                    notValidAfter: 0
                )
            }
            self.entries = [
                "A": try entry(["a.example.com"]),
                "B": try entry(["b.example.com", "*.wild.example.com"]),
                "W": try entry(["*.example.com"]),
            ]
            // No certificate in this storage: the managed certificate starts as its stand-in.
            let config = ACMEConfig(
                domains: ["m.example.com", "mm.example.com"],
                storage: "/nonexistent/junction-acme"
            )
            self.managed = try ManagedCertificate(config: config, listener: "web")
        }

        func entry(_ label: String) -> TLSContextSet.Entry {
            label == "M" ? self.managed.current.entry : self.entries[label]!
        }
    }

    /// Configured labels, whether M is managed, the SNI name, and the label of the certificate
    /// chosen (nil: no override, the context's own certificate).
    @Test(
        "The certificate chosen for a server name",
        arguments: [
            ("AB", false, "a.example.com", nil), ("AB", false, "b.example.com", "B"),
            ("AB", false, "B.Example.COM", "B"),
            ("AB", false, "x.wild.example.com", "B"), ("AB", false, "wild.example.com", nil),
            ("AB", false, "y.x.wild.example.com", nil), ("AB", false, "m.example.com", nil), ("AB", false, nil, nil),
            ("AB", true, "a.example.com", "A"), ("AB", true, "b.example.com", "B"), ("AB", true, "m.example.com", "M"),
            ("AB", true, "MM.example.com", "M"), ("AB", true, "other.example.com", nil), ("AB", true, nil, nil),
            ("", true, "m.example.com", "M"), ("", true, "other.example.com", "M"), ("", true, nil, "M"),
            // A configured wildcard is chosen over the managed certificate's exact name: configured first.
            ("W", true, "m.example.com", "W"), ("W", true, "mm.example.com", "W"), ("W", true, "x.y.example.com", nil),
        ] as [(String, Bool, String?, String?)]
    )
    func choice(configured: String, managed: Bool, serverName: String?, chosen: String?) throws {
        let fixtures = try Fixtures()
        let entries = configured.map { fixtures.entry(String($0)) }
        let override = TLSContextSet.override(
            entries: entries,
            managed: managed ? fixtures.managed : nil,
            serverName: serverName
        )
        if let chosen {
            let entry = fixtures.entry(chosen)
            #expect(override.certificateChain == entry.chain.map { .certificate($0) })
            #expect(override.privateKey == .privateKey(entry.key))
        } else {
            #expect(override.certificateChain == nil && override.privateKey == nil, "no change")
        }
    }

    @Test("A renewed managed certificate is served to the next handshake, without a reload")
    func renewedManagedCertificate() throws {
        let fixtures = try Fixtures()
        let entries = [fixtures.entry("A")]
        let before = TLSContextSet.override(entries: entries, managed: fixtures.managed, serverName: "m.example.com")
        #expect(before.certificateChain == fixtures.managed.current.entry.chain.map { .certificate($0) })
        #expect(fixtures.managed.current.isStandIn)

        let issued = fixtures.entry("B")
        let renewed = TLSContextSet.Entry(
            chain: issued.chain,
            key: issued.key,
            names: ["m.example.com", "mm.example.com"],
            certPath: fixtures.managed.current.entry.certPath,
            notValidAfter: 1_790_000_000
        )
        fixtures.managed.replace(.init(entry: renewed, isStandIn: false, notValidBefore: 0))
        let after = TLSContextSet.override(entries: entries, managed: fixtures.managed, serverName: "m.example.com")
        #expect(after.certificateChain == renewed.chain.map { .certificate($0) })
        #expect(after.privateKey == .privateKey(renewed.key))
        #expect(before.certificateChain != after.certificateChain)
    }
}
