import NIOCore
import NIOSSL
import NIOTLS
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// The TLS contexts of one listener: one per certificate, chosen by the client's SNI name against
/// each certificate's DNS names (SAN, else CN; wildcards allowed); the first is the default.
struct TLSContextSet: Sendable {
    /// One certificate's context and the names it serves.
    struct Entry: Sendable {
        let context: NIOSSLContext
        /// Lowercased names; `*.example.com` entries match one label.
        let names: [String]
    }

    let entries: [Entry]

    /// The ALPN protocols a listener offers: `h2` first when HTTP/2 is on.
    static func alpn(http2: Bool) -> [String] {
        http2 ? ["h2", "http/1.1"] : ["http/1.1"]
    }

    /// Loads every certificate of `config`. Problems come back as diagnostics pointing at the entry.
    static func load(_ config: TLSConfig, alpn: [String]) -> (TLSContextSet?, [ConfigDiagnostic]) {
        var entries: [Entry] = []
        var diagnostics: [ConfigDiagnostic] = []
        for certificate in config.certificates {
            switch self.loadEntry(certificate, minVersion: config.minVersion, alpn: alpn) {
            case .success(let (entry, warnings)):
                entries.append(entry)
                diagnostics += warnings
            case .failure(let diagnostic):
                diagnostics.append(diagnostic)
            }
        }
        let ok = entries.count == config.certificates.count && !entries.isEmpty
        return (ok ? TLSContextSet(entries: entries) : nil, diagnostics)
    }

    private static func loadEntry(
        _ certificate: TLSConfig.Certificate,
        minVersion: TLSConfig.MinimumVersion,
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
        var tls = TLSConfiguration.makeServerConfiguration(
            certificateChain: chain.map { .certificate($0) },
            privateKey: .privateKey(key)
        )
        tls.minimumTLSVersion = minVersion == .tls13 ? .tlsv13 : .tlsv12
        tls.applicationProtocols = alpn
        let context: NIOSSLContext
        do {
            context = try NIOSSLContext(configuration: tls)
        } catch NIOSSLError.failedToLoadPrivateKey {
            return .failure(
                problem("key", "\(certificate.keyPath) does not match the certificate in \(certificate.certPath)")
            )
        } catch {
            return .failure(problem("cert", "cannot use \(certificate.certPath) with \(certificate.keyPath): \(error)"))
        }
        var warnings: [ConfigDiagnostic] = []
        let now = time(nil)
        if leaf.notValidAfter < now {
            warnings.append(problem("cert", "the certificate in \(certificate.certPath) has expired", .warning))
        } else if leaf.notValidBefore > now {
            warnings.append(problem("cert", "the certificate in \(certificate.certPath) is not valid yet", .warning))
        }
        let names = self.dnsNames(of: leaf)
        return .success((Entry(context: context, names: names), warnings))
    }

    private static func unreadable(_ path: String) -> String? {
        if access(path, R_OK) == 0 { return nil }
        return "cannot read \(path): \(String(cString: strerror(errno)))"
    }

    /// SAN DNS names, else the subject's common name; lowercased.
    static func dnsNames(of certificate: NIOSSLCertificate) -> [String] {
        var names: [String] = []
        for name in certificate._subjectAlternativeNames() where name.nameType == .dnsName {
            names.append(String(decoding: name.contents, as: UTF8.self).lowercased())
        }
        if names.isEmpty, let range = certificate.description.range(of: "common_name=") {
            // NIOSSL keeps commonName internal; its description carries it.
            let rest = certificate.description[range.upperBound...]
            let name = rest.prefix { $0 != ";" && $0 != ">" }
            if !name.isEmpty { names.append(name.lowercased()) }
        }
        return names
    }

    /// The context for a ClientHello's server name (nil: no SNI).
    func context(forServerName serverName: String?) -> NIOSSLContext {
        guard let serverName = serverName?.lowercased() else { return self.entries[0].context }
        for entry in self.entries where entry.names.contains(where: { Self.name($0, matches: serverName) }) {
            return entry.context
        }
        return self.entries[0].context
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

    /// Adds the TLS handlers to a new connection: the context directly when there is one
    /// certificate, else an SNI sniffer that picks the context from the ClientHello.
    func addHandlers(to channel: Channel) throws {
        let sync = channel.pipeline.syncOperations
        if self.entries.count == 1 {
            try sync.addHandler(NIOSSLServerHandler(context: self.entries[0].context), position: .first)
            return
        }
        let contexts = self
        let sniffer = ByteToMessageHandler(
            SNIHandler { result in
                let serverName: String? =
                    switch result {
                    case .hostname(let name): name
                    case .fallback: nil
                    }
                let handler = NIOSSLServerHandler(context: contexts.context(forServerName: serverName))
                do {
                    // Right after the sniffer, which then hands it the ClientHello bytes it buffered.
                    let sync = channel.pipeline.syncOperations
                    let snifferContext = try sync.context(name: Self.snifferName)
                    try sync.addHandler(handler, position: .after(snifferContext.handler))
                    return channel.eventLoop.makeSucceededVoidFuture()
                } catch {
                    return channel.eventLoop.makeFailedFuture(error)
                }
            }
        )
        try sync.addHandler(sniffer, name: Self.snifferName, position: .first)
    }

    private static let snifferName = "junction.sni"
}

/// A listener's TLS contexts, replaceable while it runs: a certificate reload swaps them, new
/// connections get the new certificates and open connections keep the ones they started with.
final class TLSContextBox: Sendable {
    private let storage: Mutex<TLSContextSet>

    init(_ contexts: TLSContextSet) {
        self.storage = Mutex(contexts)
    }

    /// The contexts new connections use.
    var current: TLSContextSet {
        self.storage.withLock { $0 }
    }

    func replace(with contexts: TLSContextSet) {
        self.storage.withLock { $0 = contexts }
    }
}
