import JunctionACME
import NIOSSL

/// What `junction check` (and every start and reload) verifies of a `tls.acme` block on this
/// machine, without contacting the CA: the storage can be created and written, and the
/// `directory_ca` file holds a certificate.
enum ACMECheck {
    static func problems(_ config: ACMEConfig) -> [ConfigDiagnostic] {
        var problems: [ConfigDiagnostic] = []
        func problem(_ key: String, _ message: String) {
            problems.append(
                ConfigDiagnostic(
                    severity: .error,
                    location: config.location,
                    path: "\(config.configPath).\(key)",
                    message: message
                )
            )
        }
        do {
            try ACMEStorage(root: config.storage).checkWritable()
        } catch {
            problem("storage", "\(error)")
        }
        if let ca = config.directoryCA {
            do {
                if try NIOSSLCertificate.fromPEMFile(ca).isEmpty {
                    problem("directory_ca", "\(ca) holds no PEM certificate")
                }
            } catch {
                problem("directory_ca", "cannot read a PEM certificate from \(ca): \(error)")
            }
        }
        return problems
    }
}
