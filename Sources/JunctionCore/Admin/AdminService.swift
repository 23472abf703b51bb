import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import ServiceLifecycle

import struct NIOConcurrencyHelpers.NIOLockedValueBox

#if canImport(Glibc)
    import Glibc
#endif

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

/// What the admin endpoints report on: the process, the pools and the listeners' connection counts.
struct AdminState: Sendable {
    /// This process's pid, release and start, taken once at start.
    let process: ProcessIdentity
    let runtime: RuntimeBox
    let listeners: ListenerManager
    let metrics: JunctionMetrics
    /// Where drains and rebalances are carried out.
    let drainer: TunnelDrainer
    let logger: Logger

    /// 200 when every pool can take a request; else the pools that cannot.
    var unreadyPools: [String] {
        let runtime = self.runtime.current
        return runtime.config.pools.compactMap { config in
            guard let pool = runtime.pools[config.name], !pool.hasAvailableBackend else { return nil }
            return pool.name
        }
    }

    /// Open connections per listener.
    var listenerConnections: [(name: String, connections: Int)] {
        self.listeners.all.map { ($0.name, $0.counter.value) }
    }

    /// Every certificate the listeners serve, with its expiry (seconds since the epoch).
    var certificates: [JunctionMetrics.CertificateExpiry] {
        self.listeners.all.flatMap { listener in
            let tls = listener.current.tls
            // A stand-in (no certificate issued yet) has no expiry to report.
            let managed = tls?.managed.map(\.current).flatMap { $0.isStandIn ? nil : $0.entry }
            return ((tls?.entries ?? []) + (managed.map { [$0] } ?? [])).map {
                JunctionMetrics.CertificateExpiry(
                    listener: listener.name,
                    certificate: $0.certPath,
                    notValidAfter: $0.notValidAfter
                )
            }
        }
    }

    /// Every certificate the listeners serve, for `/status` and the dashboard.
    var certificateStatus: [StatusReport.CertificateStatus] {
        self.listeners.all.flatMap { listener -> [StatusReport.CertificateStatus] in
            guard let tls = listener.current.tls else { return [] }
            var found = tls.entries.map {
                StatusReport.CertificateStatus(
                    listener: listener.name,
                    names: $0.names,
                    source: "file",
                    state: "served",
                    path: $0.certPath,
                    notAfter: $0.notValidAfter,
                    nextRenewal: nil,
                    lastError: nil
                )
            }
            if let managed = tls.managed {
                let current = managed.current
                found.append(
                    StatusReport.CertificateStatus(
                        listener: listener.name,
                        names: managed.config.domains,
                        source: "acme",
                        state: current.isStandIn ? "temporary" : "issued",
                        path: current.entry.certPath,
                        notAfter: current.isStandIn ? nil : current.entry.notValidAfter,
                        nextRenewal: current.nextRenewal,
                        lastError: current.lastError
                    )
                )
            }
            return found
        }
    }

    /// Every pool to list in `/status` and `/metrics`, removed backends and pools still draining
    /// included.
    var pools: [PoolListing] { PoolListing.all(in: self.runtime.current) }

    /// The `/status` document.
    var status: StatusReport {
        let runtime = self.runtime.current
        let pools = StatusReport.poolStatuses(PoolListing.all(in: runtime), config: runtime.config, now: .now())
        let listeners = Dictionary(
            self.listenerConnections.map { ($0.name, StatusReport.ListenerStatus(connections: $0.connections)) },
            uniquingKeysWith: { first, _ in first }
        )
        return StatusReport(
            process: StatusReport.ProcessStatus(self.process),
            config: StatusReport.ConfigStatus(generation: runtime.generation, loadedAt: runtime.loadedAt),
            admin: StatusReport.AdminStatus(writes: runtime.config.admin?.token != nil),
            pools: pools,
            listeners: listeners,
            certificates: self.certificateStatus,
            clients: runtime.clientLimits.isOn || runtime.routes.hasLimits ? runtime.limiter.usage : nil
        )
    }
}

/// The `/status` JSON: `{"process": {"pid", "version", "started_at"}, "pools": {"<name>":
/// {"backends": [{"address", "healthy", "active", "tunnels", "weight", "state", "removed",
/// "last_check"}]}}}`, where `active` counts in-flight requests plus open tunnels and `state` is
/// `active`, `draining` or `drained`. Backends (and pools) a reload or DNS removed stay listed with
/// `"removed": true` while they have requests or tunnels open.
struct StatusReport: Codable, Sendable {
    /// Which process answers: its pid, release and start (whole seconds since the epoch), so an
    /// upgrade can be followed from outside.
    struct ProcessStatus: Codable, Sendable {
        var pid: Int32
        var version: String
        var startedAt: Int

        enum CodingKeys: String, CodingKey {
            case pid, version
            case startedAt = "started_at"
        }
    }

    struct CheckStatus: Codable, Sendable {
        var passed: Bool
        var detail: String
        /// Seconds since the epoch.
        var time: Double
    }

    struct BackendStatus: Codable, Sendable {
        var address: String
        var configured: String
        var healthy: Bool
        var active: Int
        var tunnels: Int
        var weight: Int
        var state: String
        /// Removed by a reload or DNS: listed while it drains, and it takes no admin writes.
        var removed: Bool
        var lastCheck: CheckStatus?

        enum CodingKeys: String, CodingKey {
            case address, configured, healthy, active, tunnels, weight, state, removed
            case lastCheck = "last_check"
        }
    }

    struct PoolStatus: Codable, Sendable {
        /// Absent for a removed pool, which balances nothing any more.
        var balance: String?
        /// Absent for a removed pool.
        var affinity: String?
        /// Removed by a reload: listed while its backends drain.
        var removed: Bool
        var tunnels: Int
        var backends: [BackendStatus]
    }

    struct ListenerStatus: Codable, Sendable {
        var connections: Int
    }

    /// One served certificate: from a file, or obtained by ACME (`temporary` until the first
    /// issuance, then `issued`); times in seconds since the epoch.
    struct CertificateStatus: Codable, Sendable {
        var listener: String
        var names: [String]
        var source: String
        var state: String
        var path: String
        var notAfter: Double?
        var nextRenewal: Double?
        var lastError: String?

        enum CodingKeys: String, CodingKey {
            case listener, names, source, state, path
            case notAfter = "not_after"
            case nextRenewal = "next_renewal"
            case lastError = "last_error"
        }
    }

    /// Which configuration is running: 1 at start, one more per reload that took.
    struct ConfigStatus: Codable, Sendable {
        var generation: Int
        /// Seconds since the epoch.
        var loadedAt: Double

        enum CodingKeys: String, CodingKey {
            case generation
            case loadedAt = "loaded_at"
        }
    }

    /// Whether the write endpoints are on (a token file is configured), for the dashboard.
    struct AdminStatus: Codable, Sendable {
        var writes: Bool
    }

    var process: ProcessStatus
    var config: ConfigStatus
    var admin: AdminStatus
    var pools: [String: PoolStatus]
    var listeners: [String: ListenerStatus]
    /// Every served certificate.
    var certificates: [CertificateStatus]
    /// The per-client tables' use, when a per-client or route limit is on (absent otherwise).
    var clients: ClientLimiter.Usage? = nil
}

extension StatusReport {
    /// The `pools` object: every listed pool by name, each backend as `/status` shows it at `now`.
    static func poolStatuses(
        _ listings: [PoolListing],
        config: JunctionConfig,
        now: NIODeadline
    ) -> [String: PoolStatus] {
        var pools: [String: PoolStatus] = [:]
        for listing in listings where pools[listing.name] == nil {
            pools[listing.name] = PoolStatus(
                balance: listing.pool.map { config.pool(named: $0.name)?.balance.rawValue ?? "least_conn" },
                affinity: listing.pool?.affinity.rawValue,
                removed: listing.isRemoved,
                tunnels: listing.members.tunnelCount.load(ordering: .relaxed),
                backends: listing.backends.map { backend in
                    BackendStatus(
                        address: backend.label,
                        configured: backend.configuredAddress,
                        healthy: backend.isHealthy(at: now),
                        active: backend.active,
                        tunnels: backend.tunnels,
                        weight: backend.weight,
                        state: backend.stateDescription,
                        removed: backend.isRemoved,
                        lastCheck: backend.lastCheck.map {
                            CheckStatus(passed: $0.passed, detail: $0.detail, time: $0.time)
                        }
                    )
                }
            )
        }
        return pools
    }
}

extension StatusReport.ProcessStatus {
    init(_ identity: ProcessIdentity) {
        self.init(pid: identity.pid, version: identity.version, startedAt: identity.startedAt)
    }
}

/// The admin listener (`admin.address`): `GET /` (dashboard), `/healthz`, `/readyz`, `/metrics`,
/// `/status`, and the token-guarded `POST` writes (`AdminWrites`). It never proxies, and the proxy
/// listeners never answer these paths.
final class AdminService: Service {
    private let address: HostPort
    private let group: EventLoopGroup
    private let state: AdminState
    private let logger: Logger
    /// The socket an upgrade handed over, if one was bound at `address`.
    private let inherited: InheritedSockets?
    /// Called once the socket is bound (it accepts once told to, `startAccepting`).
    private let onBound: @Sendable () -> Void
    /// The listening channel and its socket, while it serves.
    private let serving = NIOLockedValueBox<(channel: Channel, descriptor: CInt)?>(nil)

    /// How long an admin connection may send nothing before it is closed.
    static let idleTimeout = TimeAmount.seconds(30)

    init(
        address: HostPort,
        group: EventLoopGroup,
        state: AdminState,
        logger: Logger,
        inherited: InheritedSockets? = nil,
        onBound: @escaping @Sendable () -> Void = {}
    ) {
        self.address = address
        self.group = group
        self.state = state
        self.logger = logger
        self.inherited = inherited
        self.onBound = onBound
    }

    func run() async throws {
        let state = self.state
        let taken = self.inherited?.takeAdmin(address: self.address)
        let descriptor: CInt
        do {
            descriptor = try ListeningSocket.open(self.address, inherited: taken)
        } catch {
            throw ListenerError(description: "cannot bind the admin listener to \(self.address): \(error)")
        }
        let channel: Channel
        do {
            // From here NIO owns the descriptor (and closes it if registering fails).
            channel = try await ServerBootstrap(group: self.group)
                .serverChannelOption(.autoRead, value: false)
                .serverChannelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture { ListeningSocket.relisten(descriptor) }
                }
                .childChannelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        // A connection that sends nothing for this long (a stalled head or body,
                        // an idle keep-alive) is closed by the responder.
                        try channel.pipeline.syncOperations.addHandler(
                            IdleStateHandler(readTimeout: AdminService.idleTimeout)
                        )
                        try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                        try channel.pipeline.syncOperations.addHandler(
                            SimpleHTTPResponder { head, body in AdminAnswers.answer(head, body: body, state: state) }
                        )
                    }
                }
                .withBoundSocket(descriptor)
                .get()
            self.serving.withLockedValue { $0 = (channel, descriptor) }
        } catch {
            throw ListenerError(description: "cannot listen on the admin listener (\(self.address)): \(error)")
        }
        let bound =
            channel.localAddress.flatMap { address in
                address.ipAddress.map { HostPort(host: $0, port: address.port ?? 0).description }
            } ?? self.address.description
        LineWriter.standardOutput.writeLine("listening name=admin address=\(bound) tls=off h2=off")
        self.logger.info(
            "listener started",
            metadata: ["listener": "admin", "address": "\(bound)", "socket": "\(taken == nil ? "bound" : "inherited")"]
        )
        self.onBound()
        try? await gracefulShutdown()
        await self.stopAccepting()
    }

    /// Starts accepting (the process is ready).
    func startAccepting() {
        self.serving.withLockedValue { $0 }?.channel.setOption(.autoRead, value: true).whenFailure { _ in }
    }

    /// The listening socket for an upgrade, as a close-on-exec copy numbered `minimum` or above.
    func handoverSocket(minimum: CInt) throws -> Handover.Socket? {
        try self.serving.withLockedValue { serving in
            guard let serving else { return nil }
            return Handover.Socket(
                descriptor: try ListeningSocket.duplicate(serving.descriptor, minimum: minimum),
                kind: .admin,
                name: "",
                address: self.address.description
            )
        }
    }

    /// Stops accepting: after a hand-over the new process answers here (the socket stays open
    /// there); at shutdown it closes.
    func stopAccepting() async {
        let channel = self.serving.withLockedValue { serving in
            defer { serving = nil }
            return serving?.channel
        }
        try? await channel?.close()
    }
}

/// The admin endpoints' answers.
private enum AdminAnswers {
    static func answer(_ head: HTTPRequestHead, body: ByteBuffer, state: AdminState) -> SimpleHTTPResponder.Answer {
        if head.method == .POST {
            return AdminWrites(state: state).answer(head, body: body)
        }
        guard head.method == .GET || head.method == .HEAD else {
            return .init(
                status: .methodNotAllowed,
                "405 Method Not Allowed: the admin endpoints answer GET, and POST for writes\n"
            )
        }
        switch head.pathWithoutQuery {
        case "/", "/index.html":
            return .init(contentType: "text/html; charset=utf-8", AdminDashboard.html)
        case "/healthz":
            return .init("ok\n")
        case "/readyz":
            let unready = state.unreadyPools
            if unready.isEmpty { return .init("ready\n") }
            return .init(
                status: .serviceUnavailable,
                "not ready: no healthy backend in pool \(unready.sorted().joined(separator: ", "))\n"
            )
        case "/metrics":
            let body = state.metrics.render(
                pools: state.pools,
                listeners: state.listenerConnections,
                certificates: state.certificates
            )
            return .init(contentType: "text/plain; version=0.0.4; charset=utf-8", body: body)
        case "/status":
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .prettyPrinted]
            let body: [UInt8] = (try? encoder.encode(state.status)).map { Array($0) + [0x0A] } ?? []
            return .init(contentType: "application/json", body: body)
        case let path where AdminWrites.target(of: path) != nil:
            var answer = SimpleHTTPResponder.Answer(
                status: .methodNotAllowed,
                "405 Method Not Allowed: writes are POST with Authorization: Bearer <token>\n"
            )
            answer.headers.append(("Allow", "POST"))
            return answer
        default:
            return .init(
                status: .notFound,
                "404 Not Found: admin paths are / (dashboard), /healthz, /readyz, /metrics, /status\n"
            )
        }
    }
}
