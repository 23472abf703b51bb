import JunctionACME
import NIOCore
import NIOSSL
import X509

import struct NIOConcurrencyHelpers.NIOLockedValueBox

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

/// One certificate Junction obtains and renews itself (`tls.acme`): what handshakes for its names
/// are served now, replaced as the `CertificateManager` gets a new one, and what `/status` and the
/// metrics show of it. New handshakes read `current`; open connections keep theirs.
final class ManagedCertificate: Sendable {
    /// What is served now.
    struct Served: Sendable {
        var entry: TLSContextSet.Entry
        /// A temporary self-signed certificate until the first issuance.
        var isStandIn: Bool
        /// When the certificate was issued (its notBefore), seconds since the epoch.
        var notValidBefore: Double
        /// When the manager renews it, seconds since the epoch (nil: not scheduled yet).
        var nextRenewal: Double?
        /// The last failed attempt's reason, until one succeeds.
        var lastError: String?
        /// A stored certificate that serves on but no longer fits the block (a name was added,
        /// another `key_type` or directory): a new one is ordered at once.
        var needsReissue = false
    }

    let config: ACMEConfig
    /// The listener that serves it.
    let listener: String
    let storage: ACMEStorage
    private let served: NIOLockedValueBox<Served>

    /// Loads the stored certificate if there is a usable one, else makes a stand-in.
    init(config: ACMEConfig, listener: String) throws {
        self.config = config
        self.listener = listener
        self.storage = ACMEStorage(root: config.storage)
        // A stored certificate that is still valid serves, even one that no longer fits the
        // block (it is replaced at once): better than a self-signed one while the order runs.
        if let stored = Self.loadStored(config: config, storage: self.storage),
            stored.entry.notValidAfter > Date().timeIntervalSince1970
        {
            self.served = NIOLockedValueBox(stored)
        } else {
            self.served = NIOLockedValueBox(try Self.standIn(config: config, storage: self.storage))
        }
    }

    var current: Served { self.served.withLockedValue { $0 } }

    /// Serves `served` from now on.
    func replace(_ served: Served) {
        self.served.withLockedValue { $0 = served }
    }

    func update(_ change: (inout Served) -> Void) {
        self.served.withLockedValue { change(&$0) }
    }

    /// The certificate in the storage, nil when there is none, it is unreadable (a half-written
    /// pair, whose key does not match its certificate yet, reads as none) or covers none of the
    /// names; `needsReissue` when it does not fit the block.
    static func loadStored(config: ACMEConfig, storage: ACMEStorage) -> Served? {
        let domain = config.domains[0]
        guard let chainBytes = try? storage.read(storage.chainPath(domain)),
            let keyBytes = try? storage.read(storage.keyPath(domain)),
            let chain = try? NIOSSLCertificate.fromPEMBytes(chainBytes), let leaf = chain.first,
            let key = try? NIOSSLPrivateKey(bytes: keyBytes, format: .pem),
            let parsed = try? Certificate(derEncoded: try leaf.toDERBytes()),
            let privateKey = try? Certificate.PrivateKey(pemEncoded: String(decoding: keyBytes, as: UTF8.self)),
            privateKey.publicKey == parsed.publicKey
        else { return nil }
        // A certificate for other names (the list changed), of another key type, or from another
        // directory (staging before production) does not fit: a new one is ordered.
        let names = Set(TLSContextSet.dnsNames(of: parsed))
        guard !names.isDisjoint(with: config.domains) else { return nil }
        var fits = Set(config.domains).isSubset(of: names) && config.keyType.matches(parsed.publicKey)
        if let origin = try? storage.read(storage.originPath(domain)),
            String(decoding: origin, as: UTF8.self) != config.directory
        {
            fits = false
        }
        let entry = TLSContextSet.Entry(
            chain: chain,
            key: key,
            names: config.domains,
            certPath: storage.chainPath(domain),
            notValidAfter: parsed.notValidAfter.timeIntervalSince1970
        )
        return Served(
            entry: entry,
            isStandIn: false,
            notValidBefore: parsed.notValidBefore.timeIntervalSince1970,
            needsReissue: !fits
        )
    }

    private static func standIn(config: ACMEConfig, storage: ACMEStorage) throws -> Served {
        let material = try ChallengeCertificate.standIn(domains: config.domains)
        let entry = TLSContextSet.Entry(
            chain: [try NIOSSLCertificate(bytes: material.der, format: .der)],
            key: try NIOSSLPrivateKey(bytes: Array(material.keyPEM.utf8), format: .pem),
            names: config.domains,
            certPath: storage.chainPath(config.domains[0]),
            notValidAfter: 0
        )
        return Served(entry: entry, isStandIn: true, notValidBefore: 0)
    }
}
