import Logging

import struct NIOConcurrencyHelpers.NIOLockedValueBox

/// Every `tls.acme` certificate of the process, kept across reloads (a reload that keeps a block
/// keeps its certificate, its schedule and its order in flight), and the challenge answers they
/// share with the listeners.
final class ManagedCertificates: Sendable {
    let answers = ChallengeAnswers()
    private let certificates = NIOLockedValueBox<[String: ManagedCertificate]>([:])

    /// The certificate of `config` on `listener`: the one already managed, else a new one (the
    /// stored certificate, or a stand-in).
    func certificate(for config: ACMEConfig, listener: String) throws -> ManagedCertificate {
        let key = "\(listener) \(config.identity)"
        if let existing = self.certificates.withLockedValue({ $0[key] }), existing.config.sameSettings(as: config) {
            return existing
        }
        let created = try ManagedCertificate(config: config, listener: listener)
        self.certificates.withLockedValue { $0[key] = created }
        return created
    }

    /// Forgets the certificates a new configuration no longer has.
    func keep(only kept: [ManagedCertificate]) {
        let ids = Set(kept.map { ObjectIdentifier($0) })
        self.certificates.withLockedValue { $0 = $0.filter { ids.contains(ObjectIdentifier($0.value)) } }
    }

    var all: [ManagedCertificate] {
        self.certificates.withLockedValue { Array($0.values) }.sorted {
            ($0.listener, $0.config.domains[0]) < ($1.listener, $1.config.domains[0])
        }
    }
}
