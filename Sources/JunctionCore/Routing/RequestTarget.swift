/// The form of an HTTP/1.1 request target (RFC 9112 3.2) and what Junction makes of it.
///
/// Origin-form (`/path?query`) is forwarded byte for byte. Absolute-form (`http://host/path`) is
/// routed by its authority and path and forwarded in origin-form, its authority replacing Host
/// (RFC 9112 3.2.2), so one request never carries two authorities upstream. Asterisk-form (`*`)
/// is OPTIONS only. Authority-form is CONNECT's, and Junction is not a forward proxy.
public enum RequestTarget: Equatable, Sendable {
    /// `/path?query`: forwarded as it is.
    case origin
    /// `*` with OPTIONS.
    case asterisk
    /// `http://authority/path?query`: `authority` is the effective Host, `originForm` what goes upstream.
    case absolute(authority: String, originForm: String)

    /// Why a target is refused (400).
    public enum Problem: Error, Equatable, CustomStringConvertible {
        case invalid
        case asteriskWithoutOptions
        case unsupportedScheme
        case invalidAuthority
        case connect

        public var description: String {
            switch self {
            case .invalid: return "invalid request target"
            case .asteriskWithoutOptions: return "request target * is for OPTIONS only"
            case .unsupportedScheme: return "absolute-form request target with a scheme other than http or https"
            case .invalidAuthority: return "invalid authority in the request target"
            case .connect: return "CONNECT is not supported"
            }
        }
    }

    /// Classifies `target` of a request with method `method` (its HTTP/1.1 name).
    public static func parse(_ target: String, method: String) -> Result<RequestTarget, Problem> {
        if method == "CONNECT" { return .failure(.connect) }
        let utf8 = target.utf8
        guard let first = utf8.first else { return .failure(.invalid) }
        if first == UInt8(ascii: "/") { return .success(.origin) }
        if target == "*" { return method == "OPTIONS" ? .success(.asterisk) : .failure(.asteriskWithoutOptions) }
        guard let schemeEnd = utf8.firstRange(of: "://".utf8) else { return .failure(.invalid) }
        let scheme = Substring(target)[..<schemeEnd.lowerBound]
        guard scheme.equalsCaseInsensitive("http") || scheme.equalsCaseInsensitive("https") else {
            return .failure(.unsupportedScheme)
        }
        let afterScheme = Substring(target)[schemeEnd.upperBound...]
        let authorityEnd =
            afterScheme.utf8.firstIndex {
                $0 == UInt8(ascii: "/") || $0 == UInt8(ascii: "?") || $0 == UInt8(ascii: "#")
            } ?? afterScheme.endIndex
        let authority = String(afterScheme[..<authorityEnd])
        // RFC 9110 4.2.1: an http(s) URI with an empty host is invalid.
        guard !authority.isEmpty, !authority.hasPrefix(":"), Authority.isValid(authority) else {
            return .failure(.invalidAuthority)
        }
        let rest = afterScheme[authorityEnd...]
        if rest.utf8.first == UInt8(ascii: "#") { return .failure(.invalid) }
        let originForm = rest.utf8.first == UInt8(ascii: "/") ? String(rest) : "/" + rest
        return .success(.absolute(authority: authority, originForm: originForm))
    }
}
