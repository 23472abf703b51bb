import Logging
import NIOCore
import ServiceLifecycle
import UnixSignals

import struct NIOConcurrencyHelpers.NIOLockedValueBox

/// Where the access log goes, as configured.
struct AccessLogTarget: Equatable, Sendable {
    var target: LoggingConfig.AccessLogTarget
    var format: LoggingConfig.Format
}

/// SIGHUP: reload the whole config file without dropping a request or a tunnel. SIGUSR1: reopen the
/// access-log file (after logrotate moved it).
///
/// A reload validates the new file completely first (schema, certificates, backend names, new
/// listener addresses bindable); anything wrong and the running config stays, with the errors
/// logged. Otherwise: new listeners are bound, kept ones (same address) switch settings without
/// touching their socket, removed ones drain; each event loop switches to the new generation on its
/// next turn, so a request in flight finishes on the one it started with; backends that stay keep
/// their counts, health and admin settings; backends the file drops drain at their pool's
/// `drain_rate` (`TunnelDrainer`).
final class ConfigReloader: Service {
    private let configPath: String
    private let runtime: RuntimeBox
    private let listeners: ListenerManager
    /// The `tls.acme` certificates, handed to each new generation.
    private let certificates: ManagedCertificates
    private let loops: [LoopContexts.Loop]
    private let logger: Logger
    private let accessLog: NIOLockedValueBox<AccessLogTarget>
    /// systemd hears `RELOADING=1` and `READY=1` around each reload.
    private let notifier: SystemdNotifier

    init(
        configPath: String,
        runtime: RuntimeBox,
        listeners: ListenerManager,
        certificates: ManagedCertificates,
        loops: [LoopContexts.Loop],
        accessLog: AccessLogTarget,
        notifier: SystemdNotifier = SystemdNotifier(environment: [:]),
        logger: Logger
    ) {
        self.notifier = notifier
        self.configPath = configPath
        self.runtime = runtime
        self.listeners = listeners
        self.certificates = certificates
        self.loops = loops
        self.accessLog = NIOLockedValueBox(accessLog)
        self.logger = logger
    }

    func run() async throws {
        let signals = await UnixSignalsSequence(trapping: .sighup, .sigusr1)
        for await signal in signals.cancelOnGracefulShutdown() {
            if signal == .sigusr1 {
                self.reopenAccessLog()
            } else {
                self.notifier.reloading()
                await self.reload()
                // Refused or applied, the process serves.
                self.notifier.reloaded()
            }
        }
    }

    /// One reload; returns whether the new file took effect.
    @discardableResult
    func reload() async -> Bool {
        let current = self.runtime.current
        self.logger.info(
            "SIGHUP: reloading",
            metadata: ["config": "\(self.configPath)", "generation": "\(current.generation)"]
        )
        let prepared: Junction.Prepared
        switch Junction.prepare(configPath: self.configPath, previous: current, certificates: self.certificates) {
        case .success(let value):
            prepared = value
        case .failure(let error):
            for diagnostic in error.errors {
                self.logger.error("reload refused, generation \(current.generation) keeps serving: \(diagnostic)")
            }
            return false
        }
        for warning in prepared.warnings {
            self.logger.warning("\(warning.description)")
        }
        let config = prepared.config
        if config.effectiveThreads != current.config.effectiveThreads {
            self.logger.warning("threads changed: it takes effect on the next start")
        }
        if config.admin?.address != current.config.admin?.address {
            self.logger.warning("admin address changed: the admin listener keeps its address until the next start")
        }
        let newAccessLog = AccessLogTarget(target: config.logging.accessLog, format: config.logging.format)
        let accessLogChanged = newAccessLog != self.accessLog.withLockedValue { $0 }
        var sink: AccessLogSink?
        if accessLogChanged {
            do {
                sink = try AccessLogSink.open(newAccessLog.target, format: newAccessLog.format)
            } catch {
                self.logger.error("reload refused, generation \(current.generation) keeps serving: \(error)")
                return false
            }
        }
        do {
            try await self.listeners.apply(
                prepared.listenerSettings,
                maxConnections: config.limits.maxConnections,
                shutdownGrace: config.limits.shutdownGrace
            )
        } catch {
            self.logger.error("reload refused, generation \(current.generation) keeps serving: \(error)")
            return false
        }
        self.certificates.adopt(prepared.managed)
        let next = prepared.runtime
        let changes = next.registry.apply(next, loops: self.loops)
        self.runtime.replace(with: next)
        let newSink = sink
        for loop in self.loops {
            loop.execute { context in
                context.runtime = next
                if accessLogChanged { context.replaceAccessLog(with: newSink) }
            }
        }
        self.accessLog.withLockedValue { $0 = newAccessLog }
        LogSettings.shared.apply(level: config.logging.level, format: config.logging.format)
        self.logger.info(
            "config reloaded",
            metadata: [
                "generation": "\(next.generation)", "listeners": "\(config.listeners.count)",
                "pools": "\(config.pools.count)", "routes": "\(config.routes.count)",
            ]
        )
        for (pool, change) in changes.sorted(by: { $0.key < $1.key })
        where change.membersChanged || !change.reweighted.isEmpty {
            self.logger.info("backends changed by reload", metadata: change.logMetadata(pool: pool))
        }
        return true
    }

    /// Opens the access-log file again (logrotate moved the old one away).
    private func reopenAccessLog() {
        let target = self.accessLog.withLockedValue { $0 }
        guard case .file = target.target else { return }
        do {
            let sink = try AccessLogSink.open(target.target, format: target.format)
            for loop in self.loops {
                loop.execute { $0.replaceAccessLog(with: sink) }
            }
            self.logger.info("SIGUSR1: access log reopened")
        } catch {
            self.logger.error("SIGUSR1: cannot reopen the access log, still writing the old file: \(error)")
        }
    }
}
