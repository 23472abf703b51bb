import JunctionACME
import NIOCore
import Testing

@testable import JunctionCore

/// `listeners[].tls.acme` as the config loader reads it: the values and defaults, and one exact
/// diagnostic (file:line:column, key path, message) per kind of mistake.
@Suite("Config: tls.acme")
struct ACMEConfigTests {
    static let valid = """
        listeners:
          - name: web
            address: 127.0.0.1:8443
            tls:
              acme:
                domains: [chat.example.com, WWW.Example.com]
                email: ops@example.com
                directory: https://acme-staging-v02.api.letsencrypt.org/directory
                challenge: http-01
                storage: acme-data
                renew_before: 30d
                key_type: rsa-2048
        routes:
          - name: all
            pool: app
        pools:
          app:
            backends:
              - address: 127.0.0.1:3000
        """

    static func load(_ yaml: String) -> ConfigLoader.Outcome {
        ConfigLoader.parse(yaml: yaml, file: "j.yaml", baseDirectory: "/etc/junction")
    }

    @Test("Every key is read; names are lowercased, the storage resolved, 30d is 30 days")
    func everyKey() throws {
        let outcome = Self.load(Self.valid)
        #expect(outcome.diagnostics.isEmpty, "\(outcome.diagnostics)")
        let acme = try #require(outcome.config?.listeners[0].tls?.acme)
        #expect(acme.domains == ["chat.example.com", "www.example.com"])
        #expect(acme.email == "ops@example.com")
        #expect(acme.directory == "https://acme-staging-v02.api.letsencrypt.org/directory")
        #expect(acme.challenge == .http01)
        #expect(acme.storage == "/etc/junction/acme-data")
        #expect(acme.renewBefore == .hours(30 * 24))
        #expect(acme.keyType == .rsa2048)
        #expect(acme.location?.description == "j.yaml:6:9")
        #expect(acme.configPath == "listeners[0].tls.acme")
    }

    @Test("Only domains is required; the rest has the documented defaults")
    func defaults() throws {
        let yaml = Self.valid.replacingOccurrences(
            of: Self.valid.split(separator: "\n")[6...11].joined(separator: "\n") + "\n",
            with: ""
        )
        #expect(!yaml.contains("email"))
        let outcome = Self.load(yaml)
        #expect(outcome.diagnostics.isEmpty, "\(outcome.diagnostics)")
        let acme = try #require(outcome.config?.listeners[0].tls?.acme)
        #expect(acme.domains == ["chat.example.com", "www.example.com"])
        #expect(acme.email == nil)
        #expect(acme.directory == "https://acme-v02.api.letsencrypt.org/directory")
        #expect(acme.challenge == .tlsALPN01)
        #expect(acme.storage == "/etc/junction/acme")
        #expect(acme.renewBefore == .hours(30 * 24))
        #expect(acme.keyType == .ecdsaP256)
        #expect(outcome.config?.listeners[0].tls?.certificates.isEmpty == true, "acme alone is a TLS setup")
    }

    @Test(
        "Accepted variants",
        arguments: [
            ("domains: [chat.example.com, WWW.Example.com]", "domains: chat.example.com"),
            ("email: ops@example.com", "email: \"\""),
            ("email: ops@example.com", "email: first.last+acme@mail.example.com"),
            (
                "directory: https://acme-staging-v02.api.letsencrypt.org/directory",
                "directory: https://localhost:14000/dir"
            ),
            ("directory: https://acme-staging-v02.api.letsencrypt.org/directory", "directory: https://10.0.0.5/dir"),
            (
                "directory: https://acme-staging-v02.api.letsencrypt.org/directory",
                "directory: \"https://[::1]:14000/dir\""
            ),
            ("challenge: http-01", "challenge: tls-alpn-01"),
            ("renew_before: 30d", "renew_before: 720h"),
            ("key_type: rsa-2048", "key_type: ecdsa-p256"),
        ]
    )
    func accepted(replace: String, with: String) {
        let outcome = Self.load(Self.valid.replacingOccurrences(of: replace, with: with))
        #expect(outcome.errors.isEmpty, "\(with): \(outcome.errors)")
        #expect(outcome.config?.listeners[0].tls?.acme != nil)
    }

    /// One mistake and the only error it must produce.
    struct BadCase: CustomTestStringConvertible, Sendable {
        var name: String
        var replace: String
        var with: String
        var expected: String
        var testDescription: String { self.name }
    }

    static let domains = "[chat.example.com, WWW.Example.com]"

    static let badCases: [BadCase] = [
        BadCase(
            name: "missing domains",
            replace: "        domains: \(Self.domains)\n",
            with: "",
            expected: "j.yaml:6:9: listeners[0].tls.acme: missing required key \"domains\""
        ),
        BadCase(
            name: "no domain at all",
            replace: Self.domains,
            with: "[]",
            expected: "j.yaml:6:18: listeners[0].tls.acme.domains: must list at least one value"
        ),
        BadCase(
            name: "wildcard domain",
            replace: Self.domains,
            with: "[chat.example.com, \"*.example.com\"]",
            expected: "j.yaml:6:18: listeners[0].tls.acme.domains: \"*.example.com\": a wildcard name needs the"
                + " dns-01 challenge, which Junction does not answer"
        ),
        BadCase(
            name: "IPv4 address",
            replace: Self.domains,
            with: "[chat.example.com, 192.0.2.10]",
            expected: "j.yaml:6:18: listeners[0].tls.acme.domains: \"192.0.2.10\" is not a DNS name a CA can issue for"
        ),
        BadCase(
            name: "IPv6 address",
            replace: Self.domains,
            with: "[\"2001:db8::1\"]",
            expected: "j.yaml:6:18: listeners[0].tls.acme.domains: \"2001:db8::1\" is not a DNS name a CA can issue for"
        ),
        BadCase(
            name: "single-label name",
            replace: Self.domains,
            with: "localhost",
            expected: "j.yaml:6:18: listeners[0].tls.acme.domains: \"localhost\" is not a DNS name a CA can issue for"
        ),
        BadCase(
            name: "trailing dot",
            replace: Self.domains,
            with: "[chat.example.com.]",
            expected:
                "j.yaml:6:18: listeners[0].tls.acme.domains: \"chat.example.com.\" is not a DNS name a CA can issue for"
        ),
        BadCase(
            name: "underscore",
            replace: Self.domains,
            with: "[a_b.example.com]",
            expected:
                "j.yaml:6:18: listeners[0].tls.acme.domains: \"a_b.example.com\" is not a DNS name a CA can issue for"
        ),
        BadCase(
            name: "duplicate domain, in another case",
            replace: Self.domains,
            with: "[chat.example.com, www.example.com, Chat.Example.COM]",
            expected: "j.yaml:6:18: listeners[0].tls.acme.domains: \"chat.example.com\" is listed twice"
        ),
        BadCase(
            name: "email without @",
            replace: "email: ops@example.com",
            with: "email: ops",
            expected:
                "j.yaml:7:16: listeners[0].tls.acme.email: expected an email address like ops@example.com, got \"ops\""
        ),
        BadCase(
            name: "two email addresses",
            replace: "email: ops@example.com",
            with: "email: ops@example.com,dev@example.com",
            expected: "j.yaml:7:16: listeners[0].tls.acme.email: expected an email address like ops@example.com,"
                + " got \"ops@example.com,dev@example.com\""
        ),
        BadCase(
            name: "email without a domain",
            replace: "email: ops@example.com",
            with: "email: ops@",
            expected:
                "j.yaml:7:16: listeners[0].tls.acme.email: expected an email address like ops@example.com, got \"ops@\""
        ),
        BadCase(
            name: "plain http directory",
            replace: "https://acme-staging-v02",
            with: "http://acme-staging-v02",
            expected: "j.yaml:8:20: listeners[0].tls.acme.directory: expected an https:// URL of an ACME directory,"
                + " got \"http://acme-staging-v02.api.letsencrypt.org/directory\""
        ),
        BadCase(
            name: "directory without a host",
            replace: "https://acme-staging-v02.api.letsencrypt.org/directory",
            with: "https:///directory",
            expected: "j.yaml:8:20: listeners[0].tls.acme.directory: expected an https:// URL of an ACME directory,"
                + " got \"https:///directory\""
        ),
        BadCase(
            name: "unknown challenge",
            replace: "challenge: http-01",
            with: "challenge: dns-01",
            expected:
                "j.yaml:9:20: listeners[0].tls.acme.challenge: expected one of tls-alpn-01 | http-01, got \"dns-01\""
        ),
        BadCase(
            name: "unknown key_type",
            replace: "key_type: rsa-2048",
            with: "key_type: rsa-4096",
            expected:
                "j.yaml:12:19: listeners[0].tls.acme.key_type: expected one of ecdsa-p256 | rsa-2048, got \"rsa-4096\""
        ),
        BadCase(
            name: "renew_before not a duration",
            replace: "renew_before: 30d",
            with: "renew_before: 30 days",
            expected: "j.yaml:11:23: listeners[0].tls.acme.renew_before: expected a duration like 250ms, 5s, 2m, 1h or 30d,"
                + " got \"30 days\""
        ),
        BadCase(
            name: "renew_before zero",
            replace: "renew_before: 30d",
            with: "renew_before: 0d",
            expected: "j.yaml:11:23: listeners[0].tls.acme.renew_before: must be greater than 0"
        ),
        BadCase(
            name: "unknown key",
            replace: "key_type: rsa-2048",
            with: "key_size: 2048",
            expected: "j.yaml:12:9: listeners[0].tls.acme.key_size: unknown key \"key_size\" (expected one of: domains,"
                + " email, directory, directory_ca, challenge, storage, renew_before, key_type)"
        ),
    ]

    @Test("Each mistake gives exactly its one error line, and no config", arguments: Self.badCases)
    func errors(_ bad: BadCase) {
        #expect(Self.valid.contains(bad.replace), "test case must change something")
        let outcome = Self.load(Self.valid.replacingOccurrences(of: bad.replace, with: bad.with))
        #expect(outcome.config == nil)
        #expect(outcome.errors.map(\.description) == [bad.expected])
    }
}
