import Logging

import struct NIOConcurrencyHelpers.NIOLockedValueBox

/// Every `tls.acme` certificate of the process, kept across reloads (a reload that keeps a block
/// keeps its certificate, its schedule and its order in flight), and the challenge answers they
/// share with the listeners.
final class ManagedCertificates: Sendable {
    let answers = ChallengeAnswers()
    private let certificates = NIOLockedValueBox<[String: ManagedCertificate]>([:])

    /// The certificate of `config` on `listener`: the one already managed, else a new one (the
    /// stored certificate, or a stand-in), which is managed only once its configuration takes
    /// effect (`adopt`): a refused reload changes nothing here.
    func certificate(for config: ACMEConfig, listener: String) throws -> ManagedCertificate {
        let key = Self.key(config, listener)
        if let existing = self.certificates.withLockedValue({ $0[key] }), existing.config.sameSettings(as: config) {
            return existing
        }
        return try ManagedCertificate(config: config, listener: listener)
    }

    /// The certificates of the configuration that now serves: managed from now on; those it no
    /// longer has are forgotten (their loops end).
    func adopt(_ serving: [ManagedCertificate]) {
        self.certificates.withLockedValue { certificates in
            certificates = Dictionary(
                serving.map { (Self.key($0.config, $0.listener), $0) },
                uniquingKeysWith: { first, _ in first }
            )
        }
    }

    private static func key(_ config: ACMEConfig, _ listener: String) -> String {
        "\(listener) \(config.identity)"
    }

    var all: [ManagedCertificate] {
        self.certificates.withLockedValue { Array($0.values) }.sorted {
            ($0.listener, $0.config.domains[0]) < ($1.listener, $1.config.domains[0])
        }
    }
}
