import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle

import struct NIOConcurrencyHelpers.NIOLockedValueBox

#if canImport(Glibc)
    import Glibc
#endif

/// The composition root: a validated config file becomes pools, routes, TLS contexts, listeners,
/// health checks, discovery, the admin listener and the reloader, all run in one `ServiceGroup`.
public final class Junction: Sendable {
    /// A config file that passed every check `junction check` makes: schema, TLS material, backend
    /// names. Holds what `run` (or a reload) needs so nothing is loaded twice.
    public struct Prepared: Sendable {
        /// The validated file.
        public let config: JunctionConfig
        /// Warnings to log (unreachable routes, unused pools, a short tunnel_idle...).
        public let warnings: [ConfigDiagnostic]
        /// The file it came from (re-read on SIGHUP).
        public let configPath: String
        let runtime: RuntimeConfig
        let tlsContexts: [String: TLSContextSet]
        /// The `tls.acme` certificates, shared with the generation before.
        let certificates: ManagedCertificates

        /// The managed certificates this file's listeners serve (`ManagedCertificates.adopt`s
        /// them once the file takes effect).
        var managed: [ManagedCertificate] { self.tlsContexts.values.compactMap(\.managed) }

        /// What each listener applies to new connections. Plain listeners answer http-01
        /// challenges when a certificate is validated by them.
        var listenerSettings: [ListenerSettings] {
            let http01 = self.config.listeners.contains { $0.tls?.acme?.challenge == .http01 }
            return self.config.listeners.map {
                ListenerSettings(
                    config: $0,
                    tls: self.tlsContexts[$0.name],
                    challenges: http01 && $0.tls == nil ? self.certificates.answers : nil
                )
            }
        }
    }

    /// Loads and checks the file at `path`: the YAML schema, the certificates and keys, and that
    /// every backend host name resolves. Errors come back all at once.
    public static func prepare(configPath path: String) -> Result<Prepared, ConfigError> {
        self.prepare(configPath: path, previous: nil, certificates: nil)
    }

    /// As above; a reload passes the running generation (`previous`), whose backend registry the new
    /// one shares, so backends that stay keep their counts and health, and the running
    /// `certificates`, so a certificate that stays keeps its schedule.
    static func prepare(
        configPath path: String,
        previous: RuntimeConfig?,
        certificates running: ManagedCertificates?
    ) -> Result<Prepared, ConfigError> {
        let outcome = ConfigLoader.load(path: path)
        guard let config = outcome.config else {
            return .failure(ConfigError(diagnostics: outcome.diagnostics))
        }
        var diagnostics = outcome.diagnostics
        var tlsContexts: [String: TLSContextSet] = [:]
        let certificates = running ?? ManagedCertificates()
        diagnostics += ACMECheck.problems(listeners: config.listeners)
        for listener in config.listeners {
            guard let tls = listener.tls else { continue }
            if let acme = tls.acme {
                let problems = ACMECheck.problems(acme)
                diagnostics += problems
                if !problems.isEmpty { continue }
            }
            let (contexts, problems) = TLSContextSet.load(
                tls,
                alpn: TLSContextSet.alpn(http2: listener.http2),
                listener: listener.name,
                certificates: certificates
            )
            diagnostics += problems
            if let contexts { tlsContexts[listener.name] = contexts }
        }
        var runtime: RuntimeConfig?
        do {
            runtime = try RuntimeConfig.make(
                config: config,
                registry: previous?.registry ?? BackendRegistry(),
                limiter: previous?.limiter ?? ClientLimiter(),
                generation: (previous?.generation ?? 0) + 1
            )
        } catch {
            diagnostics += error.diagnostics
        }
        let errors = diagnostics.filter { $0.severity == .error }
        guard errors.isEmpty, let runtime else {
            return .failure(ConfigError(diagnostics: diagnostics))
        }
        return .success(
            Prepared(
                config: config,
                warnings: diagnostics.filter { $0.severity == .warning },
                configPath: path,
                runtime: runtime,
                tlsContexts: tlsContexts,
                certificates: certificates
            )
        )
    }

    private let prepared: Prepared
    private let logger: Logger
    private let onListening: (@Sendable () -> Void)?
    private let process: ProcessSetup

    /// How the process came to be and what it may do: the sockets an upgrade handed it, what an
    /// upgrade of its own starts, systemd's notify socket.
    public struct ProcessSetup: Sendable {
        /// The hand-over from the process this one replaces (nil: a plain start).
        public var handover: Handover?
        /// What SIGUSR2 starts (nil: this process cannot upgrade).
        public var upgrade: UpgradeCommand?
        /// systemd's notify socket (inactive without `NOTIFY_SOCKET`).
        public var notifier: SystemdNotifier

        public init(
            handover: Handover? = nil,
            upgrade: UpgradeCommand? = nil,
            notifier: SystemdNotifier = SystemdNotifier(environment: [:])
        ) {
            self.handover = handover
            self.upgrade = upgrade
            self.notifier = notifier
        }
    }

    /// `onListening` runs once every listener is bound (`junction demo` prints its URLs then).
    public init(
        prepared: Prepared,
        logger: Logger,
        process: ProcessSetup = ProcessSetup(),
        onListening: (@Sendable () -> Void)? = nil
    ) {
        self.prepared = prepared
        self.logger = logger
        self.process = process
        self.onListening = onListening
    }

    /// Serves until SIGTERM or SIGINT (or, after an upgrade handed over, until the last connection
    /// closed), then drains and returns. Throws if a listener cannot start.
    public func run() async throws {
        // Once, as the process starts to serve: `/status` shows it.
        let identity = ProcessIdentity()
        let config = self.prepared.config
        for warning in self.prepared.warnings {
            self.logger.warning("\(warning.description)")
        }
        // A client gone mid-write must not end the process; nor may the old process of an upgrade
        // going away while this one still writes to the stderr pipe it reads.
        signal(SIGPIPE, SIG_IGN)
        let group = MultiThreadedEventLoopGroup(numberOfThreads: config.effectiveThreads)
        let sink = try AccessLogSink.open(config.logging.accessLog, format: config.logging.format)
        let metrics = JunctionMetrics()
        self.prepared.runtime.registry.apply(self.prepared.runtime)
        self.prepared.certificates.adopt(self.prepared.managed)
        let runtime = RuntimeBox(self.prepared.runtime)
        let contexts = LoopContexts(
            group: group,
            runtime: self.prepared.runtime,
            accessLogSink: sink,
            metrics: metrics,
            logger: self.logger
        )
        let handover = self.process.handover
        let inherited = handover.map { InheritedSockets($0.sockets) }
        let notifier = self.process.notifier
        // Every listener and the admin listener bound: they accept from now on, and the process
        // says it serves (stdout's listening lines are out already).
        let readiness = Readiness(parts: config.admin == nil ? 1 : 2)
        let listeners = ListenerManager(
            settings: self.prepared.listenerSettings,
            maxConnections: config.limits.maxConnections,
            shutdownGrace: config.limits.shutdownGrace,
            group: group,
            contexts: contexts,
            logger: self.logger,
            inherited: inherited,
            onBound: { readiness.partReady() }
        )
        var services: [any Service] = [listeners]
        services.append(
            ConfigReloader(
                configPath: self.prepared.configPath,
                runtime: runtime,
                listeners: listeners,
                certificates: self.prepared.certificates,
                loops: contexts.all,
                accessLog: AccessLogTarget(target: config.logging.accessLog, format: config.logging.format),
                notifier: notifier,
                logger: self.logger
            )
        )
        // Always there: a reload may add a `tls.acme` block.
        services.append(
            CertificateManager(
                certificates: self.prepared.certificates,
                metrics: metrics,
                group: group,
                logger: self.logger
            )
        )
        services.append(HealthChecker(registry: self.prepared.runtime.registry, group: group, logger: self.logger))
        services.append(BackendDiscovery(runtime: runtime, loops: contexts.all, logger: self.logger))
        services.append(ClientExpiry(runtime: runtime))
        let drainer = TunnelDrainer(registry: self.prepared.runtime.registry, logger: self.logger)
        services.append(drainer)
        var adminService: AdminService?
        if let admin = config.admin {
            let state = AdminState(
                process: identity,
                runtime: runtime,
                listeners: listeners,
                metrics: metrics,
                drainer: drainer,
                logger: self.logger
            )
            adminService = AdminService(
                address: admin.address,
                group: group,
                state: state,
                logger: self.logger,
                inherited: inherited,
                onBound: { readiness.partReady() }
            )
            services.append(adminService!)
        }
        let coordinator = UpgradeCoordinator(
            command: self.process.upgrade,
            predecessor: handover?.previousPID ?? 0,
            listeners: listeners,
            admin: adminService,
            drainer: drainer,
            notifier: notifier,
            logger: self.logger
        )
        let onListening = self.onListening
        let logger = self.logger
        let admin = adminService
        let accept: @Sendable () -> Void = {
            listeners.startAccepting()
            admin?.startAccepting()
            onListening?()
            notifier.notify("READY=1")
            coordinator.ready()
        }
        readiness.whenReady {
            guard let handover, let inherited else { return accept() }
            for socket in inherited.closeRest() {
                logger.info(
                    "inherited socket closed: no longer configured",
                    metadata: ["kind": "\(socket.kind.rawValue)", "address": "\(socket.address)"]
                )
            }
            Self.reportReady(handover, logger: logger)
            guard let go = handover.goDescriptor else { return accept() }
            // The old process stops accepting, then says go: never both on one socket. The
            // wait blocks, so on a thread of its own.
            let waiter = NIOThreadPool(numberOfThreads: 1)
            waiter.start()
            Task {
                let start = try? await waiter.runIfActive {
                    HandoverGo.wait(on: go, previousPID: handover.previousPID)
                }
                try? await waiter.shutdownGracefully()
                switch start ?? .accept("the wait failed") {
                case .accept(let reason):
                    accept()
                    logger.notice("upgrade: accepting", metadata: ["pid": "\(getpid())", "because": "\(reason)"])
                case .stop:
                    logger.warning(
                        "upgrade: the old process called the hand-over off; not accepting (it stops this process)"
                    )
                }
            }
        }
        self.logger.info(
            "junction starting",
            metadata: [
                "threads": "\(config.effectiveThreads)", "listeners": "\(config.listeners.count)",
                "pools": "\(config.pools.count)",
            ]
        )
        // The coordinator's end (the drain after a hand-over) ends the process, gracefully.
        let serviceGroup = ServiceGroup(
            configuration: ServiceGroupConfiguration(
                services: services.map { ServiceGroupConfiguration.ServiceConfiguration(service: $0) }
                    + [.init(service: coordinator, successTerminationBehavior: .gracefullyShutdownGroup)],
                gracefulShutdownSignals: [.sigterm, .sigint],
                logger: self.logger
            )
        )
        var failure: Error?
        do {
            try await serviceGroup.run()
        } catch {
            failure = error
        }
        var writers: [LineWriter] = []
        for loop in contexts.all {
            let writer = try? await loop.submit { context in
                context.connections.closeAll()
                context.accessLog?.flush()
                return context.accessLog?.sink.writer
            }.get()
            if let writer = writer ?? nil, !writers.contains(where: { $0 === writer }) { writers.append(writer) }
        }
        // The last lines of an access-log file go out before the exit (stdout and stderr are
        // flushed by the command line).
        for writer in writers { writer.flush() }
        try? await group.shutdownGracefully()
        if let failure { throw failure }
        self.logger.info("junction stopped")
    }

    /// Tells the process that started this one (an upgrade) that it serves: `ready <pid>` on the
    /// pipe; then this process's stderr becomes the real one (until now a pipe to the old process,
    /// which logs its tail if the start fails).
    private static func reportReady(_ handover: Handover, logger: Logger) {
        let message = Array("ready \(getpid())\n".utf8)
        let written = message.withUnsafeBytes { write(handover.readyDescriptor, $0.baseAddress, $0.count) }
        close(handover.readyDescriptor)
        if let standardError = handover.standardErrorDescriptor {
            dup2(standardError, STDERR_FILENO)
            close(standardError)
        }
        logger.notice(
            "upgrade: took over the listeners",
            metadata: [
                "from_pid": "\(handover.previousPID)", "pid": "\(getpid())",
                "reported": "\(written == message.count ? "ready" : "nothing: the old process is gone")",
            ]
        )
    }
}
