import Logging
import ServiceLifecycle
import UnixSignals

/// Re-reads TLS certificates on SIGHUP without a restart. The config file is read again; each TLS
/// listener (matched by name) gets the certificates it names now. A file that does not validate, or
/// a certificate that does not load, is refused with a logged error and the old contexts keep serving.
final class CertificateReloader: Service {
    private let configPath: String
    private let boxes: [String: TLSContextBox]
    private let logger: Logger

    init(configPath: String, boxes: [String: TLSContextBox], logger: Logger) {
        self.configPath = configPath
        self.boxes = boxes
        self.logger = logger
    }

    func run() async throws {
        let signals = await UnixSignalsSequence(trapping: .sighup)
        for await _ in signals.cancelOnGracefulShutdown() {
            self.reload()
        }
    }

    /// One reload; returns whether every TLS listener got its certificates.
    @discardableResult
    func reload() -> Bool {
        self.logger.info("SIGHUP: reloading certificates", metadata: ["config": "\(self.configPath)"])
        let outcome = ConfigLoader.load(path: self.configPath)
        guard let config = outcome.config else {
            for error in outcome.errors {
                self.logger.error("reload refused, the running configuration stays: \(error)")
            }
            return false
        }
        var allLoaded = true
        for listener in config.listeners {
            guard let tls = listener.tls, let box = self.boxes[listener.name] else { continue }
            let (contexts, problems) = TLSContextSet.load(tls, alpn: TLSContextSet.alpn(http2: listener.http2))
            for problem in problems where problem.severity == .warning {
                self.logger.warning("\(problem)")
            }
            guard let contexts else {
                allLoaded = false
                for problem in problems where problem.severity == .error {
                    self.logger.error(
                        "certificates of listener \(listener.name) not reloaded, the old ones stay: \(problem)"
                    )
                }
                continue
            }
            box.replace(with: contexts)
            self.logger.info(
                "certificates reloaded",
                metadata: ["listener": "\(listener.name)", "certificates": "\(tls.certificates.count)"]
            )
        }
        return allLoaded
    }
}
