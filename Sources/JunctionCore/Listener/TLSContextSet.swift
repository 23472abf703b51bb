import NIOCore
import NIOSSL
import X509

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

#if canImport(Glibc)
    import Glibc
#endif

/// The TLS setup of one listener: its certificates, chosen by the client's SNI name against each
/// certificate's DNS names (SAN, else CN; wildcards allowed), the first being the default, and the
/// one context that serves them (BoringSSL's certificate callback swaps in the chosen certificate
/// during the handshake, so no handler has to buffer the ClientHello to read its name).
struct TLSContextSet: Sendable {
    /// One certificate: its chain, its key and the names it serves.
    struct Entry: Sendable {
        let chain: [NIOSSLCertificate]
        let key: NIOSSLPrivateKey
        /// Lowercased names; `*.example.com` entries match one label.
        let names: [String]
        /// The certificate file, for the expiry metric.
        let certPath: String
        /// When the certificate expires, in seconds since the epoch.
        let notValidAfter: Double
    }

    /// How long a close waits for the client's close_notify: the closing phase's deadline.
    static let shutdownTimeout = TimeAmount.seconds(1)

    /// TLS 1.2 suites of Mozilla's "intermediate" profile (ssl-config.mozilla.org, version 5.7):
    /// ECDHE key exchange with AES-GCM or ChaCha20-Poly1305 only; no static RSA, no CBC. BoringSSL
    /// has no finite-field DHE, so the profile's DHE suites are left out.
    public static let intermediateCiphers = [
        "ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-RSA-AES128-GCM-SHA256", "ECDHE-ECDSA-AES256-GCM-SHA384",
        "ECDHE-RSA-AES256-GCM-SHA384", "ECDHE-ECDSA-CHACHA20-POLY1305", "ECDHE-RSA-CHACHA20-POLY1305",
    ].joined(separator: ":")

    let entries: [Entry]
    /// The certificate Junction obtains itself (`tls.acme`), if any: matched by SNI after
    /// `entries`, and the default when there are none.
    let managed: ManagedCertificate?
    /// The context of handshakes that offer `acme-tls/1` (RFC 8737), when the listener answers
    /// tls-alpn-01 challenges: it serves the challenge certificate of the SNI name, and nothing else.
    let challengeContext: NIOSSLContext?
    /// The context every connection of the listener starts with.
    let context: NIOSSLContext

    /// The ALPN protocols a listener offers: `h2` first when HTTP/2 is on.
    static func alpn(http2: Bool) -> [String] {
        http2 ? ["h2", "http/1.1"] : ["http/1.1"]
    }

    /// The protocol a tls-alpn-01 validation negotiates, and only it.
    static let acmeALPN = "acme-tls/1"

    /// Loads every certificate of `config`, and the managed one from `certificates` when the
    /// listener has `acme`. Problems come back as diagnostics pointing at the entry.
    static func load(
        _ config: TLSConfig,
        alpn: [String],
        listener: String = "",
        certificates: ManagedCertificates? = nil
    ) -> (TLSContextSet?, [ConfigDiagnostic]) {
        var entries: [Entry] = []
        var diagnostics: [ConfigDiagnostic] = []
        for certificate in config.certificates {
            switch self.loadEntry(certificate, tls: config, alpn: alpn) {
            case .success(let (entry, warnings)):
                entries.append(entry)
                diagnostics += warnings
            case .failure(let diagnostic):
                diagnostics.append(diagnostic)
            }
        }
        var managed: ManagedCertificate?
        if let acme = config.acme {
            do {
                managed = try (certificates ?? ManagedCertificates()).certificate(for: acme, listener: listener)
            } catch {
                let problem = ConfigDiagnostic(
                    severity: .error,
                    location: acme.location,
                    path: acme.configPath,
                    message: "cannot prepare the certificate of \(acme.domains.joined(separator: ", ")): \(error)"
                )
                return (nil, diagnostics + [problem])
            }
        }
        guard entries.count == config.certificates.count,
            let first = entries.first ?? managed?.current.entry
        else { return (nil, diagnostics) }
        var tls = self.configuration(chain: first.chain, key: first.key, tls: config, alpn: alpn)
        if entries.count > 1 || managed != nil {
            let set = entries
            let managed = managed
            tls.sslContextCallback = { values, promise in
                promise.succeed(Self.override(entries: set, managed: managed, serverName: values.serverHostname))
            }
        }
        var challengeContext: NIOSSLContext?
        let location = config.ciphersLocation ?? config.certificates.first?.location ?? config.acme?.location
        let path =
            config.ciphers == nil
            ? (config.certificates.first?.configPath ?? config.acme?.configPath ?? "") : config.ciphersPath
        do {
            if let acme = config.acme, acme.challenge == .tlsALPN01, let answers = certificates?.answers {
                challengeContext = try self.challengeContext(answers: answers, default: first, tls: config)
            }
            let contexts = TLSContextSet(
                entries: entries,
                managed: managed,
                challengeContext: challengeContext,
                context: try NIOSSLContext(configuration: tls)
            )
            return (contexts, diagnostics)
        } catch {
            let problem = ConfigDiagnostic(
                severity: .error,
                location: location,
                path: path,
                message: "cannot set up TLS: \(error)"
            )
            return (nil, diagnostics + [problem])
        }
    }

    /// The certificate for a ClientHello's server name: a configured one whose names match, else
    /// the managed one when its names match or nothing else is configured, else the first.
    static func override(
        entries: [Entry],
        managed: ManagedCertificate?,
        serverName: String?
    ) -> NIOSSLContextConfigurationOverride {
        let chosen: Entry
        if let index = Self.matchIndex(in: entries, forServerName: serverName) {
            guard index > 0 || managed != nil else { return .noChanges }
            chosen = entries[index]
        } else if let managed,
            entries.isEmpty || Self.matchIndex(in: [managed.current.entry], forServerName: serverName) != nil
        {
            chosen = managed.current.entry
        } else {
            // The context's own certificate is the first configured one.
            return .noChanges
        }
        var override = NIOSSLContextConfigurationOverride()
        override.certificateChain = chosen.chain.map { .certificate($0) }
        override.privateKey = .privateKey(chosen.key)
        return override
    }

    /// The context for tls-alpn-01 validations: ALPN `acme-tls/1` only, and the challenge
    /// certificate of the SNI name; a handshake for a name without a pending challenge fails.
    private static func challengeContext(
        answers: ChallengeAnswers,
        default first: Entry,
        tls config: TLSConfig
    ) throws
        -> NIOSSLContext
    {
        var tls = TLSConfiguration.makeServerConfiguration(
            certificateChain: first.chain.map { .certificate($0) },
            privateKey: .privateKey(first.key)
        )
        tls.minimumTLSVersion = .tlsv12
        tls.applicationProtocols = [Self.acmeALPN]
        tls.shutdownTimeout = Self.shutdownTimeout
        tls.sslContextCallback = { values, promise in
            guard let name = values.serverHostname, let answer = answers.tlsCertificate(serverName: name) else {
                promise.fail(ChallengeMissing())
                return
            }
            var override = NIOSSLContextConfigurationOverride()
            override.certificateChain = answer.chain.map { .certificate($0) }
            override.privateKey = .privateKey(answer.key)
            promise.succeed(override)
        }
        return try NIOSSLContext(configuration: tls)
    }

    /// A handshake offered `acme-tls/1` for a name with no pending challenge.
    struct ChallengeMissing: Error {}

    /// A server configuration for one certificate, with the listener's version floor, suites and ALPN.
    private static func configuration(
        chain: [NIOSSLCertificate],
        key: NIOSSLPrivateKey,
        tls config: TLSConfig,
        alpn: [String]
    ) -> TLSConfiguration {
        var tls = TLSConfiguration.makeServerConfiguration(
            certificateChain: chain.map { .certificate($0) },
            privateKey: .privateKey(key)
        )
        tls.minimumTLSVersion = config.minVersion == .tls13 ? .tlsv13 : .tlsv12
        tls.cipherSuites = config.ciphers ?? Self.intermediateCiphers
        tls.applicationProtocols = alpn
        tls.shutdownTimeout = Self.shutdownTimeout
        return tls
    }

    private static func loadEntry(
        _ certificate: TLSConfig.Certificate,
        tls config: TLSConfig,
        alpn: [String]
    ) -> Result<(Entry, [ConfigDiagnostic]), ConfigDiagnostic> {
        func problem(
            _ key: String,
            _ message: String,
            _ severity: ConfigDiagnostic.Severity = .error
        ) -> ConfigDiagnostic {
            ConfigDiagnostic(
                severity: severity,
                location: certificate.location,
                path: "\(certificate.configPath).\(key)",
                message: message
            )
        }
        if let error = self.unreadable(certificate.certPath) { return .failure(problem("cert", error)) }
        if let error = self.unreadable(certificate.keyPath) { return .failure(problem("key", error)) }
        let chain: [NIOSSLCertificate]
        do {
            chain = try NIOSSLCertificate.fromPEMFile(certificate.certPath)
        } catch {
            return .failure(problem("cert", "\(certificate.certPath) holds no PEM certificate (\(error))"))
        }
        guard let leaf = chain.first else {
            return .failure(problem("cert", "\(certificate.certPath) holds no PEM certificate"))
        }
        let key: NIOSSLPrivateKey
        do {
            key = try NIOSSLPrivateKey(file: certificate.keyPath, format: .pem)
        } catch {
            return .failure(problem("key", "\(certificate.keyPath) holds no PEM private key (\(error))"))
        }
        // A context of its own checks that the key matches the certificate (with the default
        // suites: a bad `ciphers` is reported at its own key).
        var plain = config
        plain.ciphers = nil
        let tls = self.configuration(chain: chain, key: key, tls: plain, alpn: alpn)
        do {
            _ = try NIOSSLContext(configuration: tls)
        } catch NIOSSLError.failedToLoadPrivateKey {
            return .failure(
                problem("key", "\(certificate.keyPath) does not match the certificate in \(certificate.certPath)")
            )
        } catch {
            return .failure(problem("cert", "cannot use \(certificate.certPath) with \(certificate.keyPath): \(error)"))
        }
        let parsed: Certificate
        do {
            parsed = try Certificate(derEncoded: try leaf.toDERBytes())
        } catch {
            return .failure(problem("cert", "cannot read the certificate in \(certificate.certPath): \(error)"))
        }
        var warnings: [ConfigDiagnostic] = []
        let now = Date()
        if parsed.notValidAfter < now {
            warnings.append(problem("cert", "the certificate in \(certificate.certPath) has expired", .warning))
        } else if parsed.notValidBefore > now {
            warnings.append(problem("cert", "the certificate in \(certificate.certPath) is not valid yet", .warning))
        }
        let entry = Entry(
            chain: chain,
            key: key,
            names: self.dnsNames(of: parsed),
            certPath: certificate.certPath,
            notValidAfter: parsed.notValidAfter.timeIntervalSince1970
        )
        return .success((entry, warnings))
    }

    private static func unreadable(_ path: String) -> String? {
        if access(path, R_OK) == 0 { return nil }
        return "cannot read \(path): \(String(cString: strerror(errno)))"
    }

    /// SAN DNS names, else the subject's common names; lowercased.
    static func dnsNames(of certificate: Certificate) -> [String] {
        var names: [String] = []
        if let alternatives = try? certificate.extensions.subjectAlternativeNames {
            for case .dnsName(let name) in alternatives { names.append(name.lowercased()) }
        }
        if names.isEmpty {
            for relativeName in certificate.subject {
                for attribute in relativeName where attribute.type == .RDNAttributeType.commonName {
                    if let name = String(attribute.value) { names.append(name.lowercased()) }
                }
            }
        }
        return names
    }

    /// The first certificate whose names match the server name; nil without SNI or a match.
    static func matchIndex(in entries: [Entry], forServerName serverName: String?) -> Int? {
        guard let serverName = serverName?.lowercased() else { return nil }
        return entries.firstIndex { $0.names.contains { Self.name($0, matches: serverName) } }
    }

    /// RFC 6125: `*.example.com` matches exactly one label in front of `example.com`.
    static func name(_ pattern: String, matches host: String) -> Bool {
        if pattern.hasPrefix("*.") {
            let suffix = pattern.dropFirst(1)
            guard host.hasSuffix(suffix) else { return false }
            let label = host.dropLast(suffix.count)
            return !label.isEmpty && !label.contains(".")
        }
        return pattern == host
    }

    /// The TLS handler for a new connection.
    func makeHandler() -> NIOSSLServerHandler {
        NIOSSLServerHandler(context: self.context)
    }

    /// The TLS handler for a connection whose ClientHello offers `acme-tls/1`.
    func makeChallengeHandler() -> NIOSSLServerHandler? {
        self.challengeContext.map { NIOSSLServerHandler(context: $0) }
    }
}
