import JunctionACME
import Logging
import NIOCore
import NIOHTTP1

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

/// The admin write endpoints, each a `POST` with `Authorization: Bearer <token>`:
/// `/pools/{pool}/backends/{address}/drain` (202), `.../enable` (200), `.../weight` with
/// `{"weight": N}` (200), `/pools/{pool}/rebalance` (202 `{"to_close": N}`). 403 without a
/// configured token, 401 with a missing or wrong one, 404 for an unknown pool or backend, 409 for a
/// backend or pool a reload or DNS removed that `/status` still lists while it drains (it leaves by
/// itself once its last tunnel closes: nothing to drain, enable or weigh); every answer is JSON.
/// What they change lives on the long-lived `Backend`, so it holds across reloads.
struct AdminWrites {
    let state: AdminState

    /// What a write path names.
    enum Target: Equatable {
        case backend(pool: String, address: String, action: BackendAction)
        case rebalance(pool: String)
    }

    /// What a write does to one backend.
    enum BackendAction: String, CaseIterable {
        case drain, enable, weight
    }

    /// Parses `/pools/{pool}/backends/{address}/{action}` and `/pools/{pool}/rebalance`, each
    /// segment percent-decoded; nil for anything else.
    static func target(of path: String) -> Target? {
        let segments = path.split(separator: "/", omittingEmptySubsequences: false).dropFirst().map {
            percentDecoded($0)
        }
        guard path.hasPrefix("/"), segments.first == "pools", segments.allSatisfy({ $0 != nil && !$0!.isEmpty })
        else { return nil }
        let parts = segments.map { $0! }
        switch parts.count {
        case 3 where parts[2] == "rebalance":
            return .rebalance(pool: parts[1])
        case 5 where parts[2] == "backends":
            guard let action = BackendAction(rawValue: parts[4]) else { return nil }
            return .backend(pool: parts[1], address: parts[3], action: action)
        default:
            return nil
        }
    }

    /// `%5B::1%5D:3001` → `[::1]:3001`; nil when an escape is malformed or the result is not UTF-8.
    static func percentDecoded(_ segment: Substring) -> String? {
        var bytes: [UInt8] = []
        var iterator = segment.utf8.makeIterator()
        while let byte = iterator.next() {
            guard byte == UInt8(ascii: "%") else {
                bytes.append(byte)
                continue
            }
            guard let high = iterator.next().flatMap(URIBytes.hexValue), let low = iterator.next().flatMap(URIBytes.hexValue) else {
                return nil
            }
            bytes.append(high << 4 | low)
        }
        return String(validating: bytes, as: UTF8.self)
    }

    /// The bearer token of an `Authorization` header, as bytes; nil when there is none.
    static func bearerToken(_ headers: HTTPHeaders) -> [UInt8]? {
        guard let value = headers.first(name: "authorization") else { return nil }
        let bytes = Array(value.utf8)
        let scheme = Array("bearer ".utf8)
        guard bytes.count > scheme.count,
            zip(bytes.prefix(scheme.count), scheme).allSatisfy({ $0 | 0x20 == $1 | 0x20 })
        else { return nil }
        return Array(bytes.dropFirst(scheme.count).drop { $0 == 0x20 })
    }

    func answer(_ head: HTTPRequestHead, body: ByteBuffer) -> SimpleHTTPResponder.Answer {
        let runtime = self.state.runtime.current
        guard let token = runtime.config.admin?.token else {
            return Self.json(.forbidden, error: "writes are off: admin.token_file is not configured")
        }
        guard let presented = Self.bearerToken(head.headers), token.matches(presented) else {
            var answer = Self.json(.unauthorized, error: "missing or wrong bearer token")
            answer.headers.append(("WWW-Authenticate", "Bearer realm=\"junction admin\""))
            return answer
        }
        guard let target = Self.target(of: head.pathWithoutQuery) else {
            return Self.json(
                .notFound,
                error:
                    "no such write: POST /pools/{pool}/backends/{address}/drain|enable|weight or /pools/{pool}/rebalance"
            )
        }
        switch target {
        case .rebalance(let poolName):
            guard let pool = runtime.pools[poolName] else {
                return Self.noPool(poolName, in: runtime)
            }
            let toClose = self.state.drainer.rebalance(pool.members)
            return Self.json(
                .accepted,
                ["pool": poolName.jsonLiteral, "to_close": String(toClose), "drain_rate": "\(pool.drainPolicy.rate)"]
            )
        case .backend(let poolName, let address, let action):
            guard let pool = runtime.pools[poolName] else {
                return Self.noPool(poolName, backend: address, in: runtime)
            }
            // A host name resolving to one address twice lists it twice: act on each.
            let backends = pool.backends.filter { $0.label == address }
            guard let backend = backends.first else {
                if let removed = pool.members.departed.first(where: { $0.label == address }) {
                    return Self.removed(removed)
                }
                return Self.json(
                    .notFound,
                    error: "pool \(poolName) has no backend \(address) (addresses are host:port as /status shows them)"
                )
            }
            switch action {
            case .drain:
                for backend in backends where backend.drainState != .removed { backend.setDrain(.admin) }
                self.log("backend draining by admin", backend)
                return Self.json(.accepted, Self.describe(backend))
            case .enable:
                for backend in backends { backend.setDrain(.none) }
                self.log("backend enabled by admin", backend)
                return Self.json(.ok, Self.describe(backend))
            case .weight:
                guard let weight = Self.weight(in: body) else {
                    return Self.json(.badRequest, error: "the body must be {\"weight\": N} with N from 1 to 100")
                }
                for backend in backends { backend.setRuntimeWeight(weight) }
                self.log("backend weight set by admin", backend)
                return Self.json(.ok, Self.describe(backend))
            }
        }
    }

    /// The answer for a pool the running config does not have: 409 when a reload removed it and its
    /// backends (the one at `address`, for a backend's write) still drain, else 404.
    private static func noPool(
        _ name: String,
        backend address: String? = nil,
        in runtime: RuntimeConfig
    ) -> SimpleHTTPResponder.Answer {
        guard let retired = runtime.registry.retiredPools.first(where: { $0.poolName == name }) else {
            return Self.json(.notFound, error: "no pool named \(name)")
        }
        if let address {
            guard let backend = retired.departed.first(where: { $0.label == address }) else {
                return Self.json(.notFound, error: "pool \(name) was removed by a reload and has no backend \(address)")
            }
            return Self.removed(backend)
        }
        return Self.json(
            .conflict,
            error:
                "pool \(name) was removed by a reload: its backends drain and leave once their last tunnel closes; it takes no writes"
        )
    }

    /// 409 for a backend a reload or DNS removed: it drains and leaves by itself.
    private static func removed(_ backend: Backend) -> SimpleHTTPResponder.Answer {
        var fields = Self.describe(backend)
        fields["error"] =
            "backend \(backend.label) of pool \(backend.poolName) was removed by a reload or DNS: it drains and leaves once its last tunnel closes; it takes no writes"
            .jsonLiteral
        return Self.json(.conflict, fields)
    }

    /// `{"weight": N}` with N an integer in 1...100.
    static func weight(in body: ByteBuffer) -> Int? {
        struct Body: Decodable { var weight: Int }
        guard let decoded = try? JSONDecoder().decode(Body.self, from: Data(body.readableBytesView)),
            (1...100).contains(decoded.weight)
        else { return nil }
        return decoded.weight
    }

    private func log(_ message: Logger.Message, _ backend: Backend) {
        self.state.logger.info(
            message,
            metadata: [
                "pool": "\(backend.poolName)", "backend": "\(backend.label)", "weight": "\(backend.weight)",
                "tunnels": "\(backend.tunnels)",
            ]
        )
    }

    /// The backend as the answer shows it (values already JSON).
    private static func describe(_ backend: Backend) -> [String: String] {
        [
            "pool": backend.poolName.jsonLiteral, "address": backend.label.jsonLiteral,
            "state": backend.stateDescription.jsonLiteral, "weight": String(backend.weight),
            "tunnels": String(backend.tunnels),
        ]
    }

    private static func json(_ status: HTTPResponseStatus, error: String) -> SimpleHTTPResponder.Answer {
        self.json(status, ["error": error.jsonLiteral])
    }

    /// A one-line JSON object of `fields`, whose values are JSON already.
    private static func json(_ status: HTTPResponseStatus, _ fields: [String: String]) -> SimpleHTTPResponder.Answer {
        let members = fields.sorted { $0.key < $1.key }.map { "\($0.key.jsonLiteral): \($0.value)" }
        return .init(status: status, contentType: "application/json", "{" + members.joined(separator: ", ") + "}\n")
    }
}
