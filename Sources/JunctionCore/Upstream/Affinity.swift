import NIOCore
import NIOHTTP1

#if canImport(Glibc)
    import Glibc
#endif

/// Which backend a request's affinity asks for, worked out from the request before balancing.
///
/// Both kinds are deterministic functions of the request and the config, so several Junction
/// instances with the same config agree without sharing any state.
enum AffinityChoice: Equatable {
    /// No preference: the balancer picks.
    case none
    /// A SockJS session on an HTTP fallback transport: rendezvous hashing of the session id.
    case session(String)
    /// Cookie affinity; the token the request's `junction_<pool>` cookie carried (nil: none).
    case cookie(String?)

    /// The request's choice for a pool with `policy`, from its routing path and Cookie headers.
    static func make(policy: AffinityPolicy, path: Substring, headers: HTTPHeaders, poolName: String) -> AffinityChoice
    {
        switch policy {
        case .none:
            return .none
        case .sockjs:
            return SockJSPath.fallbackSession(in: path).map { .session(String($0)) } ?? .none
        case .cookie:
            return .cookie(AffinityCookie.token(in: headers, poolName: poolName))
        }
    }

    /// The preferred backend among `backends`, if there is one and it is available.
    func backend(among backends: [Backend], now: NIODeadline) -> Backend? {
        switch self {
        case .none, .cookie(nil):
            return nil
        case .session(let id):
            return Rendezvous.pick(key: id, from: backends.filter { $0.isAvailable(at: now) })
        case .cookie(let token?):
            return backends.first { $0.affinityToken == token && $0.isAvailable(at: now) }
        }
    }

    /// The Set-Cookie value to send when the request goes to `backend`: only for cookie affinity and
    /// only when the client does not already hold the right token.
    func setCookie(for backend: Backend, poolName: String, secure: Bool) -> String? {
        guard case .cookie(let token) = self, token != backend.affinityToken else { return nil }
        return AffinityCookie.setCookie(poolName: poolName, token: backend.affinityToken, secure: secure)
    }
}

/// SockJS session URLs: `/<prefix>/<server>/<session>/<transport>` (sockjs-protocol 0.3.3).
enum SockJSPath {
    /// The transports that are not WebSockets: every request of one session must reach one backend.
    static let fallbackTransports: Set<Substring> = [
        "xhr", "xhr_send", "xhr_streaming", "eventsource", "htmlfile", "jsonp", "jsonp_send",
    ]

    /// The session id of a fallback-transport URL, else nil (`/sockjs/info`, `websocket`, raw `/websocket`).
    static func fallbackSession(in path: Substring) -> Substring? {
        let segments = path.split(separator: "/", omittingEmptySubsequences: false)
        // "", prefix..., server, session, transport
        guard segments.count >= 5, let transport = segments.last, Self.fallbackTransports.contains(transport) else {
            return nil
        }
        let session = segments[segments.count - 2]
        let server = segments[segments.count - 3]
        guard !server.isEmpty, !session.isEmpty, !server.contains("."), !session.contains(".") else { return nil }
        return session
    }
}

/// Highest-random-weight (rendezvous) hashing: each key goes to the backend with the highest score,
/// so a key moves only when its backend leaves. Weighted: score = -weight / ln(u).
enum Rendezvous {
    /// MurmurHash3's 64-bit finalizer: FNV-1a leaves its high bits poorly mixed when only the last
    /// bytes differ (backend addresses), and the score uses the high bits.
    static func mix(_ value: UInt64) -> UInt64 {
        var x = value
        x ^= x >> 33
        x &*= 0xff51_afd7_ed55_8ccd
        x ^= x >> 33
        x &*= 0xc4ce_b9fe_1a85_ec53
        x ^= x >> 33
        return x
    }

    static func pick(key: String, from backends: [Backend]) -> Backend? {
        var best: Backend?
        var bestScore = -Double.infinity
        for backend in backends {
            let hash = Self.mix(AffinityToken.fnv1a64(key + "\u{1F}" + backend.label))
            // u in (0, 1): the hash's top 53 bits.
            let unit = (Double(hash >> 11) + 0.5) / Double(UInt64(1) << 53)
            let score = -Double(backend.weight) / log(unit)
            if score > bestScore {
                best = backend
                bestScore = score
            }
        }
        return best
    }
}

/// The `junction_<pool>` cookie of cookie affinity.
enum AffinityCookie {
    static func name(poolName: String) -> String {
        "junction_" + poolName
    }

    /// The token in the request's Cookie headers, if any.
    static func token(in headers: HTTPHeaders, poolName: String) -> String? {
        let wanted = Self.name(poolName: poolName)
        for value in headers["cookie"] {
            for pair in value.split(separator: ";") {
                let trimmed = pair.trimmingOWS()
                guard let equals = trimmed.firstIndex(of: "="), trimmed[..<equals] == wanted else { continue }
                return String(trimmed[trimmed.index(after: equals)...])
            }
        }
        return nil
    }

    static func setCookie(poolName: String, token: String, secure: Bool) -> String {
        "\(Self.name(poolName: poolName))=\(token); Path=/; HttpOnly; SameSite=Lax" + (secure ? "; Secure" : "")
    }
}
