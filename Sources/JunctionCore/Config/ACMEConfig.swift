import JunctionACME
import NIOCore

/// `listeners[].tls.acme`: a certificate Junction obtains and renews itself (RFC 8555).
public struct ACMEConfig: Sendable, Equatable {
    /// Let's Encrypt's production directory, the default.
    public static let letsEncrypt = "https://acme-v02.api.letsencrypt.org/directory"

    /// The names of the one certificate (SAN), lowercased; the first names its storage directory.
    public var domains: [String]
    /// The account's contact address (without `mailto:`), if any.
    public var email: String? = nil
    public var directory: String = Self.letsEncrypt
    /// A PEM file of the CA that signs the directory's HTTPS certificate (nil: the system store).
    public var directoryCA: String? = nil
    public var challenge: ChallengeType = .tlsALPN01
    /// Resolved against the config file's directory.
    public var storage: String
    /// Renew when less than this remains.
    public var renewBefore: TimeAmount = .hours(30 * 24)
    public var keyType: CertificateKeyType = .ecdsaP256
    /// Where the block is in the file, and its key path, for messages.
    public var location: ConfigLocation? = nil
    public var configPath: String = ""

    public init(domains: [String], storage: String) {
        self.domains = domains
        self.storage = storage
    }

    /// The same settings, wherever in the file they are (a reload that only moved the block keeps
    /// the certificate and its schedule).
    func sameSettings(as other: ACMEConfig) -> Bool {
        var mine = self
        mine.location = other.location
        mine.configPath = other.configPath
        return mine == other
    }

    /// What identifies the certificate across reloads: the same names in the same storage from
    /// the same CA are the same certificate.
    var identity: String { "\(self.directory) \(self.storage) \(self.domains.joined(separator: ","))" }
}
