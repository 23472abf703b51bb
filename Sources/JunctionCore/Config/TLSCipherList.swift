/// Checks a `tls.ciphers` list (OpenSSL syntax, as BoringSSL reads it) before BoringSSL sees it:
/// swift-nio-ssl stops the process on a list BoringSSL selects nothing from, so a bad list must
/// be a config error instead.
///
/// The accepted syntax is the common subset of OpenSSL's: rules separated by `:`, each an exact
/// suite name or aliases joined by `+`, optionally prefixed by `!` (remove for good), `-` (remove)
/// or `+` (move to the end), and `@STRENGTH`. A name BoringSSL would silently skip is refused here
/// (a typo should not pass). The selection is computed as BoringSSL computes it, over its TLS 1.2
/// suites (the deprecated 3DES ones left out: no alias here names them), and must hold at least
/// one suite a certificate can serve (not only PSK ones). TLS 1.3 suites are fixed and not affected.
public enum TLSCipherList {
    /// Key exchange, authentication, cipher and MAC of a suite, as bits (BoringSSL's masks).
    struct Suite: Sendable {
        let name: String
        /// The IANA code point.
        let code: UInt16
        let kx: UInt8
        let auth: UInt8
        let cipher: UInt8
        let mac: UInt8
        /// BoringSSL adds it only when it is named exactly (its CBC-SHA256 suites).
        var deprecated = false
    }

    static let rsaKx: UInt8 = 1
    static let ecdheKx: UInt8 = 2
    static let pskKx: UInt8 = 4
    static let rsaAuth: UInt8 = 1
    static let ecdsaAuth: UInt8 = 2
    static let pskAuth: UInt8 = 4
    static let aes128: UInt8 = 1
    static let aes256: UInt8 = 2
    static let aes128GCM: UInt8 = 4
    static let aes256GCM: UInt8 = 8
    static let chacha20: UInt8 = 16
    static let sha1: UInt8 = 1
    static let sha256: UInt8 = 2
    static let aead: UInt8 = 4

    /// BoringSSL's TLS 1.2 suites (but 3DES).
    static let suites: [Suite] = [
        Suite(name: "PSK-AES128-CBC-SHA", code: 0x008C, kx: pskKx, auth: pskAuth, cipher: aes128, mac: sha1),
        Suite(name: "PSK-AES256-CBC-SHA", code: 0x008D, kx: pskKx, auth: pskAuth, cipher: aes256, mac: sha1),
        Suite(
            name: "ECDHE-PSK-AES128-CBC-SHA",
            code: 0xC035,
            kx: ecdheKx,
            auth: pskAuth,
            cipher: aes128,
            mac: sha1
        ),
        Suite(
            name: "ECDHE-PSK-AES256-CBC-SHA",
            code: 0xC036,
            kx: ecdheKx,
            auth: pskAuth,
            cipher: aes256,
            mac: sha1
        ),
        Suite(
            name: "ECDHE-PSK-CHACHA20-POLY1305",
            code: 0xCCAC,
            kx: ecdheKx,
            auth: pskAuth,
            cipher: chacha20,
            mac: aead
        ),
        Suite(name: "AES128-SHA", code: 0x002F, kx: rsaKx, auth: rsaAuth, cipher: aes128, mac: sha1),
        Suite(name: "AES256-SHA", code: 0x0035, kx: rsaKx, auth: rsaAuth, cipher: aes256, mac: sha1),
        Suite(
            name: "AES128-GCM-SHA256",
            code: 0x009C,
            kx: rsaKx,
            auth: rsaAuth,
            cipher: aes128GCM,
            mac: aead
        ),
        Suite(
            name: "AES256-GCM-SHA384",
            code: 0x009D,
            kx: rsaKx,
            auth: rsaAuth,
            cipher: aes256GCM,
            mac: aead
        ),
        Suite(
            name: "ECDHE-ECDSA-AES128-SHA",
            code: 0xC009,
            kx: ecdheKx,
            auth: ecdsaAuth,
            cipher: aes128,
            mac: sha1
        ),
        Suite(
            name: "ECDHE-ECDSA-AES256-SHA",
            code: 0xC00A,
            kx: ecdheKx,
            auth: ecdsaAuth,
            cipher: aes256,
            mac: sha1
        ),
        Suite(
            name: "ECDHE-RSA-AES128-SHA",
            code: 0xC013,
            kx: ecdheKx,
            auth: rsaAuth,
            cipher: aes128,
            mac: sha1
        ),
        Suite(
            name: "ECDHE-RSA-AES256-SHA",
            code: 0xC014,
            kx: ecdheKx,
            auth: rsaAuth,
            cipher: aes256,
            mac: sha1
        ),
        Suite(
            name: "ECDHE-ECDSA-AES128-SHA256",
            code: 0xC023,
            kx: ecdheKx,
            auth: ecdsaAuth,
            cipher: aes128,
            mac: sha256,
            deprecated: true
        ),
        Suite(
            name: "ECDHE-RSA-AES128-SHA256",
            code: 0xC027,
            kx: ecdheKx,
            auth: rsaAuth,
            cipher: aes128,
            mac: sha256,
            deprecated: true
        ),
        Suite(
            name: "ECDHE-ECDSA-AES128-GCM-SHA256",
            code: 0xC02B,
            kx: ecdheKx,
            auth: ecdsaAuth,
            cipher: aes128GCM,
            mac: aead
        ),
        Suite(
            name: "ECDHE-ECDSA-AES256-GCM-SHA384",
            code: 0xC02C,
            kx: ecdheKx,
            auth: ecdsaAuth,
            cipher: aes256GCM,
            mac: aead
        ),
        Suite(
            name: "ECDHE-RSA-AES128-GCM-SHA256",
            code: 0xC02F,
            kx: ecdheKx,
            auth: rsaAuth,
            cipher: aes128GCM,
            mac: aead
        ),
        Suite(
            name: "ECDHE-RSA-AES256-GCM-SHA384",
            code: 0xC030,
            kx: ecdheKx,
            auth: rsaAuth,
            cipher: aes256GCM,
            mac: aead
        ),
        Suite(
            name: "ECDHE-RSA-CHACHA20-POLY1305",
            code: 0xCCA8,
            kx: ecdheKx,
            auth: rsaAuth,
            cipher: chacha20,
            mac: aead
        ),
        Suite(
            name: "ECDHE-ECDSA-CHACHA20-POLY1305",
            code: 0xCCA9,
            kx: ecdheKx,
            auth: ecdsaAuth,
            cipher: chacha20,
            mac: aead
        ),
    ]

    /// BoringSSL's aliases (ssl_cipher.cc) for these suites: each word selects the suites it holds for.
    static let aliases: [String: @Sendable (Suite) -> Bool] = [
        "ALL": { _ in true }, "HIGH": { _ in true }, "FIPS": { _ in true },
        "kRSA": { $0.kx == rsaKx }, "RSA": { $0.kx == rsaKx && $0.auth == rsaAuth },
        "kPSK": { $0.kx == pskKx }, "aPSK": { $0.auth == pskAuth }, "PSK": { $0.kx == pskKx && $0.auth == pskAuth },
        "kECDHE": { $0.kx == ecdheKx }, "kEECDH": { $0.kx == ecdheKx }, "ECDH": { $0.kx == ecdheKx },
        "ECDHE": { $0.kx == ecdheKx }, "EECDH": { $0.kx == ecdheKx },
        "aRSA": { $0.auth == rsaAuth }, "aECDSA": { $0.auth == ecdsaAuth }, "ECDSA": { $0.auth == ecdsaAuth },
        "AES128": { $0.cipher == aes128 || $0.cipher == aes128GCM },
        "AES256": { $0.cipher == aes256 || $0.cipher == aes256GCM },
        "AES": { $0.cipher != chacha20 },
        "AESGCM": { $0.cipher == aes128GCM || $0.cipher == aes256GCM },
        "CHACHA20": { $0.cipher == chacha20 },
        "SHA1": { $0.mac == sha1 }, "SHA": { $0.mac == sha1 },
        // Not "TLSv1.2": BoringSSL skips any rule that combines it with a word after it.
    ]

    /// Why a list is refused.
    public enum Problem: Error, Equatable, CustomStringConvertible {
        case unknownName(String)
        case syntax(String)
        case selectsNothing

        public var description: String {
            switch self {
            case .unknownName(let name): return "unknown cipher suite or alias \"\(name)\""
            case .syntax(let rule): return "cannot read \"\(rule)\" (rules are separated by \":\")"
            case .selectsNothing: return "selects no TLS 1.2 cipher suite a certificate can serve"
            }
        }
    }

    /// The IANA codes of the suites `list` selects, as BoringSSL would select them.
    public static func selection(_ list: String) -> Result<Set<UInt16>, Problem> {
        var selected = Set<UInt16>()
        var killed = Set<UInt16>()
        for rule in list.split(separator: ":", omittingEmptySubsequences: true) {
            if rule == "@STRENGTH" { continue }
            var body = rule
            let operation = body.first.flatMap { "!-+".contains($0) ? $0 : nil }
            if operation != nil { body = body.dropFirst() }
            guard !body.isEmpty, body.allSatisfy({ $0.isLetter || $0.isNumber || "-+.".contains($0) }) else {
                return .failure(.syntax(String(rule)))
            }
            let matched: Set<UInt16>
            if let suite = self.suites.first(where: { $0.name == body }) {
                matched = [suite.code]
            } else {
                var predicates: [@Sendable (Suite) -> Bool] = []
                for word in body.split(separator: "+", omittingEmptySubsequences: false) {
                    guard let predicate = self.aliases[String(word)] else {
                        return .failure(.unknownName(String(word)))
                    }
                    predicates.append(predicate)
                }
                // Adding by alias leaves BoringSSL's deprecated suites out; removing takes them too.
                let includeDeprecated = operation != nil
                matched = Set(
                    self.suites.filter { suite in
                        (includeDeprecated || !suite.deprecated) && predicates.allSatisfy { $0(suite) }
                    }.map(\.code)
                )
            }
            switch operation {
            case "!":
                selected.subtract(matched)
                killed.formUnion(matched)
            case "-":
                selected.subtract(matched)
            case "+":
                break  // reorders, selects nothing
            default:
                selected.formUnion(matched.subtracting(killed))
            }
        }
        let servable = self.suites.contains { selected.contains($0.code) && $0.auth != pskAuth }
        return servable ? .success(selected) : .failure(.selectsNothing)
    }
}
