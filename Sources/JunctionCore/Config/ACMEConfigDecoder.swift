import JunctionACME

/// Reads and checks a `tls.acme` block (everything `junction check` can know without the CA).
struct ACMEConfigDecoder {
    let reader: ConfigReader
    /// Resolves a path against the config file's directory.
    let resolvePath: (String) -> String

    static let keys = [
        "domains", "email", "directory", "directory_ca", "challenge", "storage", "renew_before", "key_type",
    ]

    func decode(_ node: ConfigNode) -> ACMEConfig? {
        guard let entries = self.reader.mapping(node, allowed: Self.keys) else { return nil }
        var config = ACMEConfig(domains: [], storage: self.resolvePath("acme"))
        config.location = node.location
        config.configPath = node.path
        var ok = true
        var sawDomains = false
        for (key, value) in entries {
            switch key {
            case "domains":
                sawDomains = true
                guard let domains = self.reader.stringList(value) else {
                    ok = false
                    continue
                }
                config.domains = domains.map { $0.lowercased() }
                if !self.checkDomains(config.domains, node: value) { ok = false }
            case "email":
                // `email: ${ACME_EMAIL:-}` with the variable unset reads as nothing: no contact.
                if value.node.tagName == .null { continue }
                guard let email = self.reader.string(value, allowEmpty: true) else {
                    ok = false
                    continue
                }
                if email.isEmpty { continue }
                let parts = email.split(separator: "@", omittingEmptySubsequences: false)
                guard parts.count == 2, !parts[0].isEmpty, ConfigValueParser.isHostName(parts[1]),
                    !email.contains(where: { $0 == " " || $0 == "," || $0 == ":" })
                else {
                    self.reader.error(value, "expected an email address like ops@example.com, got \"\(email)\"")
                    ok = false
                    continue
                }
                config.email = email
            case "directory":
                guard let directory = self.reader.string(value) else {
                    ok = false
                    continue
                }
                guard Self.isHTTPSURL(directory) else {
                    self.reader.error(value, "expected an https:// URL of an ACME directory, got \"\(directory)\"")
                    ok = false
                    continue
                }
                config.directory = directory
            case "directory_ca":
                guard let path = self.reader.string(value) else {
                    ok = false
                    continue
                }
                config.directoryCA = self.resolvePath(path)
            case "challenge":
                guard let challenge = self.reader.choice(value, as: ChallengeType.self) else {
                    ok = false
                    continue
                }
                config.challenge = challenge
            case "storage":
                guard let storage = self.reader.string(value) else {
                    ok = false
                    continue
                }
                config.storage = self.resolvePath(storage)
            case "renew_before":
                guard let duration = self.reader.duration(value) else {
                    ok = false
                    continue
                }
                config.renewBefore = duration
            case "key_type":
                guard let keyType = self.reader.choice(value, as: CertificateKeyType.self) else {
                    ok = false
                    continue
                }
                config.keyType = keyType
            default:
                break
            }
        }
        if !sawDomains {
            self.reader.error(node, "missing required key \"domains\"")
            ok = false
        }
        return ok ? config : nil
    }

    /// Names a CA can validate by http-01 or tls-alpn-01: host names (no wildcard, which needs
    /// dns-01, and no IP address), each once.
    private func checkDomains(_ domains: [String], node: ConfigNode) -> Bool {
        var seen: Set<String> = []
        for domain in domains {
            if domain.hasPrefix("*.") {
                self.reader.error(
                    node,
                    "\"\(domain)\": a wildcard name needs the dns-01 challenge, which Junction does not answer"
                )
                return false
            }
            let name = Substring(domain)
            guard ConfigValueParser.isHostName(name), !ConfigValueParser.isIPv4Literal(name), domain.contains(".")
            else {
                self.reader.error(node, "\"\(domain)\" is not a DNS name a CA can issue for")
                return false
            }
            guard seen.insert(domain).inserted else {
                self.reader.error(node, "\"\(domain)\" is listed twice")
                return false
            }
        }
        return true
    }

    /// `https://host[:port]/...`.
    static func isHTTPSURL(_ text: String) -> Bool {
        guard text.hasPrefix("https://") else { return false }
        let rest = text.dropFirst("https://".count)
        let authority = rest.prefix { $0 != "/" }
        guard !authority.isEmpty, !authority.contains("@"), !text.contains(" ") else { return false }
        return ConfigValueParser.hostPort(String(authority)).isSuccess
            || ConfigValueParser.isHostName(authority) || ConfigValueParser.isIPv4Literal(authority)
    }
}

extension Result {
    fileprivate var isSuccess: Bool {
        if case .success = self { return true }
        return false
    }
}
