import AsyncHTTPClient
import JunctionACME
import Logging
import NIOCore
import NIOSSL
import ServiceLifecycle
import X509

#if canImport(Glibc)
    import Glibc
#endif

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

/// Obtains and renews every `tls.acme` certificate, in the background (the control plane).
///
/// Each certificate has its own loop, once a second: it loads what another instance stored (a
/// newer certificate; the challenges it is waiting on), and when its certificate is a stand-in or
/// due for renewal, takes the storage's lock and orders. A failure is retried after 1 minute,
/// doubling to 1 hour, while the current certificate keeps serving; the CA's problem documents are
/// logged as they came. New handshakes get a new certificate at once; no connection is closed.
final class CertificateManager: Service {
    /// How often each certificate looks at the shared storage.
    static let pollInterval = Duration.seconds(1)
    /// How often the directory's renewalInfo is asked about a certificate, where it has one.
    static let renewalInfoInterval: TimeInterval = 6 * 3600

    private let certificates: ManagedCertificates
    private let metrics: JunctionMetrics?
    private let logger: Logger
    private let group: EventLoopGroup

    init(certificates: ManagedCertificates, metrics: JunctionMetrics?, group: EventLoopGroup, logger: Logger) {
        self.certificates = certificates
        self.metrics = metrics
        self.group = group
        self.logger = logger
    }

    func run() async throws {
        await cancelWhenGracefulShutdown {
            await withDiscardingTaskGroup { tasks in
                // The certificates with a loop, held so no new one can take a running one's
                // identity. One a reload adds gets its loop within a poll interval; one a reload
                // removed ends its loop by itself.
                var running: [ObjectIdentifier: ManagedCertificate] = [:]
                while !Task.isCancelled {
                    let current = self.certificates.all
                    running = running.filter { entry in current.contains { $0 === entry.value } }
                    for certificate in current where running[ObjectIdentifier(certificate)] == nil {
                        running[ObjectIdentifier(certificate)] = certificate
                        tasks.addTask { await self.manage(certificate) }
                    }
                    try? await Task.sleep(for: Self.pollInterval)
                }
                tasks.cancelAll()
            }
        }
    }

    /// The loop of one certificate, until shutdown or until a reload drops it.
    private func manage(_ certificate: ManagedCertificate) async {
        let config = certificate.config
        let storage = certificate.storage
        let domain = config.domains[0]
        var logger = self.logger
        logger[metadataKey: "domains"] = "\(config.domains.joined(separator: ","))"
        if certificate.current.isStandIn {
            logger.warning(
                "acme: no stored certificate yet, serving a temporary self-signed one until the first is issued"
            )
        } else {
            logger.info("acme: serving the stored certificate", metadata: ["path": "\(storage.chainPath(domain))"])
        }
        // The account key and HTTPS to the CA; a failure here is retried like a failed order.
        var failures = 0
        var setup: (key: AccountKey, http: HTTPClient)?
        while setup == nil, !Task.isCancelled, self.isManaged(certificate) {
            do {
                let key = try self.accountKey(config: config, storage: storage)
                setup = (key, try self.makeHTTPClient(config))
            } catch {
                failures += 1
                self.failed(certificate, "\(error)", failures: failures, logger: logger)
                try? await Task.sleep(for: .seconds(RenewalSchedule.retryDelay(failures: failures)))
            }
        }
        guard let (key, http) = setup else { return }
        let client = ACMEClient(directoryURL: config.directory, http: http, key: key, logger: logger)
        let issuer = ACMEIssuer(client: client, key: key, logger: logger)
        let lock = StorageLock(storage: storage, path: storage.lockPath(domain))
        await self.loop(certificate, client: client, issuer: issuer, lock: lock, logger: logger)
        try? await http.shutdown()
        logger.debug("acme: certificate no longer managed")
    }

    private func isManaged(_ certificate: ManagedCertificate) -> Bool {
        self.certificates.all.contains { $0 === certificate }
    }

    /// Once a poll interval: what the storage holds, then an order when one is due.
    private func loop(
        _ certificate: ManagedCertificate,
        client: ACMEClient,
        issuer: ACMEIssuer,
        lock: StorageLock,
        logger: Logger
    ) async {
        let config = certificate.config
        let storage = certificate.storage
        let domain = config.domains[0]
        let retries = RetryRecord(storage: storage, domain: domain)
        var stored = Self.modificationTime(storage.chainPath(domain))
        var renewalInfoAsked = Date.distantPast
        self.schedule(certificate, suggestedStart: nil)
        while !Task.isCancelled, self.isManaged(certificate) {
            // RFC 9773: the CA's suggested window, asked for now and then (it may move it earlier,
            // e.g. before a revocation).
            if !certificate.current.isStandIn, Date().timeIntervalSince(renewalInfoAsked) > Self.renewalInfoInterval {
                renewalInfoAsked = Date()
                await self.refreshRenewalInfo(certificate, client: client)
            }
            // Another instance stored a new certificate: serve it.
            let modified = Self.modificationTime(storage.chainPath(domain))
            if modified != stored, let fresh = ManagedCertificate.loadStored(config: config, storage: storage),
                !fresh.needsReissue
            {
                stored = modified
                if fresh.entry.notValidAfter != certificate.current.entry.notValidAfter {
                    certificate.replace(fresh)
                    self.schedule(certificate, suggestedStart: nil)
                    logger.info("acme: loaded the certificate another instance stored")
                }
            }
            // The challenges another instance placed (and no longer those it took away).
            self.certificates.answers.share(storage.pendingChallenges(), from: storage.root)
            // The instances sharing the storage share the back-off too: one order per attempt.
            let retry = retries.read()
            if !lock.isHeld(), self.isDue(certificate), Date() >= retry.at, (try? lock.tryAcquire()) == true {
                let outcome = await self.order(certificate, issuer: issuer, lock: lock, logger: logger)
                lock.release()
                stored = Self.modificationTime(storage.chainPath(domain))
                // A shutdown in the middle of an order is not a failed order.
                if Task.isCancelled { break }
                if let problem = outcome {
                    self.metrics?.acmeOrder(result: "failed")
                    let failures = retry.failures + 1
                    retries.write(failures: failures, at: Date() + RenewalSchedule.retryDelay(failures: failures))
                    self.failed(certificate, problem, failures: failures, logger: logger)
                } else {
                    retries.clear()
                    renewalInfoAsked = .distantPast
                }
            } else if retry.failures > 0 {
                certificate.update { $0.nextRenewal = retry.at.timeIntervalSince1970 }
            }
            try? await Task.sleep(for: Self.pollInterval)
        }
    }

    /// Logs and shows a failed attempt; the next one comes after the back-off.
    private func failed(_ certificate: ManagedCertificate, _ problem: String, failures: Int, logger: Logger) {
        let delay = RenewalSchedule.retryDelay(failures: failures)
        certificate.update {
            $0.lastError = problem
            $0.nextRenewal = (Date() + delay).timeIntervalSince1970
        }
        logger.error(
            "acme: order failed, retrying in \(Int(delay))s; the current certificate keeps serving",
            metadata: ["error": "\(problem)"]
        )
    }

    /// Places one order under the lock; nil when a certificate was issued and stored, else why not.
    private func order(
        _ certificate: ManagedCertificate,
        issuer: ACMEIssuer,
        lock: StorageLock,
        logger: Logger
    ) async -> String? {
        let config = certificate.config
        let storage = certificate.storage
        // The lock's previous holder may have just stored what this instance was about to order.
        if let fresh = ManagedCertificate.loadStored(config: config, storage: storage), !fresh.needsReissue,
            fresh.entry.notValidAfter > max(certificate.current.entry.notValidAfter, Date().timeIntervalSince1970)
        {
            certificate.replace(fresh)
            self.schedule(certificate, suggestedStart: nil)
            if !self.isDue(certificate) { return nil }
        }
        // Keeps the lock fresh while the order runs; stopped (and waited for) before the lock is
        // released, so a late refresh cannot bring a released lock back.
        let refresher = Task {
            while (try? await Task.sleep(for: .seconds(StorageLock.refreshInterval))) != nil {
                if (try? lock.refresh()) == false {
                    // This instance stalled past the lock's expiry and another took it over.
                    logger.warning("acme: another instance took the storage lock over during this order")
                    return
                }
            }
        }
        let outcome = await self.place(certificate, issuer: issuer, lock: lock, logger: logger)
        refresher.cancel()
        await refresher.value
        return outcome
    }

    /// The order itself; nil when a certificate was issued and stored, else why not.
    private func place(
        _ certificate: ManagedCertificate,
        issuer: ACMEIssuer,
        lock: StorageLock,
        logger: Logger
    ) async -> String? {
        let config = certificate.config
        let storage = certificate.storage
        let domain = config.domains[0]
        let solver = ChallengePublisher(
            answers: self.certificates.answers,
            storage: storage,
            propagation: Self.pollInterval * 2
        )
        do {
            let issued = try await issuer.issue(
                domains: config.domains,
                contact: config.email.map { ["mailto:\($0)"] } ?? [],
                challenge: config.challenge,
                keyType: config.keyType,
                solver: solver
            )
            // Only the lock's holder writes: an instance that lost it (it stalled past the expiry)
            // must not mix its files with the new holder's.
            guard lock.isOwned() else {
                throw ACMEStorage.Problem(description: "another instance took the storage lock over; not storing")
            }
            // The key first: a reader between the two renames sees a pair that does not match,
            // which reads as nothing new, never as a wrong pair.
            try storage.write(Array(config.directory.utf8), to: storage.originPath(domain))
            try storage.write(Array(issued.keyPEM.utf8), to: storage.keyPath(domain))
            try storage.write(Array(issued.chainPEM.utf8), to: storage.chainPath(domain))
            guard let served = ManagedCertificate.loadStored(config: config, storage: storage), !served.needsReissue
            else {
                throw ACMEStorage.Problem(
                    description: "the issued certificate in \(storage.chainPath(domain)) cannot be used"
                )
            }
            certificate.replace(served)
            self.schedule(certificate, suggestedStart: nil)
            self.metrics?.acmeOrder(result: "issued")
            logger.info(
                "acme: certificate issued",
                metadata: [
                    "path": "\(storage.chainPath(domain))",
                    "not_after": "\(Date(timeIntervalSince1970: served.entry.notValidAfter))",
                ]
            )
            return nil
        } catch {
            return "\(error)"
        }
    }

    /// Whether the certificate should be ordered now.
    private func isDue(_ certificate: ManagedCertificate) -> Bool {
        let current = certificate.current
        if current.isStandIn || current.needsReissue { return true }
        return Date().timeIntervalSince1970 >= (current.nextRenewal ?? 0)
    }

    /// Sets when the certificate is renewed.
    private func schedule(_ certificate: ManagedCertificate, suggestedStart: Date?) {
        certificate.update { served in
            guard !served.isStandIn else {
                served.nextRenewal = nil
                return
            }
            served.lastError = nil
            served.nextRenewal =
                RenewalSchedule.renewalTime(
                    notBefore: Date(timeIntervalSince1970: served.notValidBefore),
                    notAfter: Date(timeIntervalSince1970: served.entry.notValidAfter),
                    renewBefore: TimeInterval(certificate.config.renewBefore.nanoseconds) / 1e9,
                    suggestedStart: suggestedStart,
                    now: Date()
                ).timeIntervalSince1970
        }
    }

    /// RFC 9773: asks the CA when to renew, where the directory offers renewalInfo.
    private func refreshRenewalInfo(_ certificate: ManagedCertificate, client: ACMEClient) async {
        guard let leaf = certificate.current.entry.chain.first,
            let parsed = try? Certificate(derEncoded: try leaf.toDERBytes()),
            let keyIdentifier = try? parsed.extensions.authorityKeyIdentifier?.keyIdentifier
        else { return }
        let id = "\(Base64URL.encode(keyIdentifier)).\(Base64URL.encode(parsed.serialNumber.bytes))"
        // RFC 3339, with or without fractional seconds (Go CAs send them).
        let withFraction = Date.ISO8601FormatStyle(includingFractionalSeconds: true)
        guard let info = try? await client.renewalInfo(certificateID: id),
            let start = (try? Date(info.suggestedWindow.start, strategy: .iso8601))
                ?? (try? Date(info.suggestedWindow.start, strategy: withFraction))
        else { return }
        self.schedule(certificate, suggestedStart: start)
    }

    /// The account key for the directory: stored, else new and stored.
    private func accountKey(config: ACMEConfig, storage: ACMEStorage) throws -> AccountKey {
        let path = storage.accountKeyPath(directoryURL: config.directory)
        if let bytes = try storage.read(path) {
            do {
                return try AccountKey(pem: String(decoding: bytes, as: UTF8.self))
            } catch {
                throw ACMEStorage.Problem(description: "\(path) holds no P-256 PEM key (\(error))")
            }
        }
        let key = AccountKey()
        try storage.write(Array(key.pem.utf8), to: path)
        return key
    }

    private func makeHTTPClient(_ config: ACMEConfig) throws -> HTTPClient {
        var tls = TLSConfiguration.makeClientConfiguration()
        if let ca = config.directoryCA {
            tls.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(ca))
        }
        return HTTPClient(
            eventLoopGroup: self.group,
            configuration: HTTPClient.Configuration(tlsConfiguration: tls, redirectConfiguration: .disallow)
        )
    }

    private static func modificationTime(_ path: String) -> Int {
        var info = stat()
        guard stat(path, &info) == 0 else { return 0 }
        return info.st_mtim.tv_sec * 1_000_000_000 + info.st_mtim.tv_nsec
    }
}
