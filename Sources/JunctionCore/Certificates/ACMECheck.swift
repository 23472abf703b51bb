import JunctionACME
import NIOSSL

/// What `junction check` (and every start and reload) verifies of a `tls.acme` block on this
/// machine, without contacting the CA: the storage can be created and written, and the
/// `directory_ca` file holds a certificate.
enum ACMECheck {
    /// What the blocks need of the file as a whole: a plain listener to answer http-01, and a
    /// storage place of their own (two certificates with one first name in one storage would
    /// overwrite each other's files and share a lock).
    static func problems(listeners: [ListenerConfig]) -> [ConfigDiagnostic] {
        var problems: [ConfigDiagnostic] = []
        var places: [String: String] = [:]
        let plain = listeners.contains { $0.tls == nil }
        for listener in listeners {
            guard let acme = listener.tls?.acme else { continue }
            if acme.challenge == .http01 && !plain {
                problems.append(
                    ConfigDiagnostic(
                        severity: .error,
                        location: acme.location,
                        path: "\(acme.configPath).challenge",
                        message: "http-01 is answered on a plain listener (port 80 for the CA), and there is none"
                    )
                )
            }
            let place = "\(acme.storage)/certificates/\(acme.domains[0])"
            if let other = places[place] {
                problems.append(
                    ConfigDiagnostic(
                        severity: .error,
                        location: acme.location,
                        path: "\(acme.configPath).domains",
                        message: "listener \(other) already keeps a certificate for \(acme.domains[0]) in this storage"
                    )
                )
            }
            places[place] = listener.name
        }
        return problems
    }

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
