import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle
import UnixSignals

import struct NIOConcurrencyHelpers.NIOLockedValueBox

#if canImport(Glibc)
    import Glibc
#endif

/// SIGUSR2: upgrade in place. Starts the executable found now at the path this process was started
/// from, hands it every listening socket (`Handover`), and once it says it serves, tells systemd
/// its pid, stops accepting and drains: requests finish, tunnels close at each pool's
/// `drain_rate`; the service ends when no connection is left, and with it the process (exit 0).
/// A new process that fails or is not ready in 30 s is logged, and this one goes on serving.
///
/// It also says `STOPPING=1` to systemd when a shutdown begins in a process that has not handed
/// over.
final class UpgradeCoordinator: Service {
    /// How long the new process has to say it serves.
    static let readyTimeout = Duration.seconds(30)
    /// How often the drain after a hand-over says how much is left.
    static let progressInterval = Duration.seconds(10)

    private let command: UpgradeCommand?
    private let listeners: ListenerManager
    private let admin: AdminService?
    private let drainer: TunnelDrainer
    private let notifier: SystemdNotifier
    private let logger: Logger
    private let machine = NIOLockedValueBox(UpgradeStateMachine())
    /// The process this one replaced (an upgrade started it), 0 for none.
    private let predecessor: Int32

    /// `command`: what to start (nil: this process cannot upgrade, e.g. `junction demo`);
    /// `predecessor`: the pid of the process this one replaced, if an upgrade started it.
    init(
        command: UpgradeCommand?,
        predecessor: Int32 = 0,
        listeners: ListenerManager,
        admin: AdminService?,
        drainer: TunnelDrainer,
        notifier: SystemdNotifier,
        logger: Logger
    ) {
        self.command = command
        self.predecessor = predecessor
        self.listeners = listeners
        self.admin = admin
        self.drainer = drainer
        self.notifier = notifier
        self.logger = logger
    }

    func run() async throws {
        let signals = await UnixSignalsSequence(trapping: .sigusr2)
        let (drained, drainedContinuation) = AsyncStream<Void>.makeStream()
        await withGracefulShutdownHandler {
            await cancelWhenGracefulShutdown {
                await withTaskGroup(of: Void.self) { group in
                    group.addTask {
                        for await _ in signals {
                            self.upgradeRequested(whenDrained: drainedContinuation)
                        }
                    }
                    // The hand-over's drain is over: the service ends, and the process with it.
                    group.addTask {
                        for await _ in drained { return }
                    }
                    await group.next()
                    group.cancelAll()
                }
            }
        } onGracefulShutdown: {
            self.shutdownStarted()
        }
    }

    /// Every listener is bound and accepts: from now on a SIGUSR2 may upgrade.
    func ready() {
        self.machine.withLockedValue { $0.ready() }
    }

    /// A SIGUSR2: refused with a log line, or an upgrade starts (in a task of its own, so the next
    /// signal is heard and refused while it runs).
    private func upgradeRequested(whenDrained: AsyncStream<Void>.Continuation) {
        // The process this one replaced is alive while it is still the parent (once it exits,
        // this one is reparented).
        let draining = self.predecessor != 0 && getppid() == self.predecessor ? self.predecessor : nil
        let action = self.machine.withLockedValue { $0.upgradeRequested(pid: getpid(), predecessor: draining) }
        switch action {
        case .refuse(let reason):
            self.logger.warning("SIGUSR2: upgrade refused: \(reason)")
        case .start:
            Task {
                if await self.upgrade() {
                    whenDrained.yield()
                }
            }
        }
    }

    /// One upgrade; true once this process handed over and drained.
    private func upgrade() async -> Bool {
        guard let command = self.command else {
            _ = self.machine.withLockedValue {
                $0.finished(.failed(pid: nil, reason: "this command cannot upgrade"))
            }
            self.logger.warning("SIGUSR2: upgrade refused: only `junction run` upgrades")
            return false
        }
        let spawned: UpgradeChild
        do {
            spawned = try self.spawn(command)
        } catch {
            return await self.finished(.failed(pid: nil, reason: "\(error)"), child: nil)
        }
        if case .stopChild = self.machine.withLockedValue({ $0.spawned(pid: spawned.pid) }) {
            spawned.terminate()
        }
        // A thread of its own: the watch blocks for up to 30 s, and the shared pools serve others
        // (DNS discovery) meanwhile.
        let watcher = NIOThreadPool(numberOfThreads: 1)
        watcher.start()
        let outcome: UpgradeStateMachine.Outcome
        do {
            outcome = try await watcher.runIfActive {
                spawned.watch(timeout: Self.readyTimeout)
            }
        } catch {
            spawned.terminate()
            outcome = .failed(pid: spawned.pid, reason: "\(error)")
        }
        let ready: Bool
        if case .ready = outcome { ready = true } else { ready = false }
        Task {
            // What the new process wrote before it took its real stderr is copied on meanwhile.
            if ready { try? await watcher.runIfActive { spawned.forwardRest() } }
            try? await watcher.shutdownGracefully()
        }
        return await self.finished(outcome, child: spawned)
    }

    /// Starts the new process with copies of every listening socket.
    private func spawn(_ command: UpgradeCommand) throws -> UpgradeChild {
        // Copies numbered above the new process's range, which `UpgradeChild` lays out from 3.
        let minimum: CInt = 64
        var sockets = try self.listeners.handoverSockets(minimum: minimum)
        defer { for socket in sockets { close(socket.descriptor) } }
        if let admin = try self.admin?.handoverSocket(minimum: minimum) { sockets.append(admin) }
        self.logger.info(
            "SIGUSR2: starting the new process",
            metadata: [
                "executable": "\(command.executable)", "sockets": "\(sockets.count)", "pid": "\(getpid())",
            ]
        )
        return try UpgradeChild.spawn(
            executable: command.executable,
            arguments: command.arguments,
            sockets: sockets
        )
    }

    /// Carries out what the new process's outcome means; true once this process handed over and
    /// drained.
    private func finished(_ outcome: UpgradeStateMachine.Outcome, child: UpgradeChild?) async -> Bool {
        switch self.machine.withLockedValue({ $0.finished(outcome) }) {
        case .handOver(let pid):
            guard let child, await self.handOver(to: pid, child: child) else {
                self.machine.withLockedValue { $0.handOverFailed() }
                return false
            }
            return true
        case .carryOn(let reason):
            self.logger.error("upgrade failed, this process (pid \(getpid())) goes on serving: \(reason)")
            return false
        case .stopChild(let pid):
            self.logger.warning("shutting down: stopping the new process (pid \(pid)) too")
            kill(pid, SIGTERM)
            child?.go(accept: false)
            return false
        case .none:
            return false
        }
    }

    /// The new process serves: systemd hears its pid, this process stops accepting, its requests
    /// finish and its tunnels close at each pool's pace; returns once no connection is left.
    @discardableResult
    private func handOver(to pid: Int32, child: UpgradeChild) async -> Bool {
        // systemd must hear of the new main process before this one exits, or it would read the
        // exit as the service's end and stop the new one with it. READY=1 rides along: a reload
        // of this process still running would leave the unit "reloading" otherwise.
        guard self.notifier.notifyReliably("MAINPID=\(pid)\nREADY=1") else {
            self.logger.error(
                "upgrade failed, this process (pid \(getpid())) goes on serving: systemd could not be told the new main pid; stopping the new process (pid \(pid))"
            )
            kill(pid, SIGTERM)
            child.go(accept: false)
            return false
        }
        // From here on the new process is the service: this one's exit must not read as a stop.
        self.notifier.silence()
        self.logger.notice(
            "upgrade: handed over to the new process",
            metadata: ["from_pid": "\(getpid())", "to_pid": "\(pid)"]
        )
        // This process stops accepting first, then the new one starts: never both on one socket
        // (two processes woken for one connection; the kernel queue holds it meanwhile).
        await self.admin?.stopAccepting()
        let handedOver = await self.listeners.stopAccepting()
        child.go(accept: true)
        // Then the first tunnel is closed, on the drainer's next round: its client reconnects to
        // the new process.
        self.drainer.retire()
        async let drained: Bool = handedOver ? self.listeners.waitUntilDrained() : false
        let progress = Task {
            while !Task.isCancelled {
                try await Task.sleep(for: Self.progressInterval)
                self.logger.info(
                    "draining after the hand-over",
                    metadata: ["connections": "\(self.listeners.openConnections)"]
                )
            }
        }
        let completed = await drained
        progress.cancel()
        if completed {
            self.logger.notice("every connection is closed; exiting", metadata: ["to_pid": "\(pid)"])
        }
        return true
    }

    /// SIGTERM/SIGINT (or the group ending): tell systemd, and stop a new process still starting.
    private func shutdownStarted() {
        switch self.machine.withLockedValue({ $0.shutdownStarted() }) {
        case .notifyStopping:
            self.notifier.notify("STOPPING=1")
        case .notifyStoppingAndStopChild(let pid):
            self.notifier.notify("STOPPING=1")
            // SIGTERM ends it at once until it traps the signal, and drains it if it began to
            // accept meanwhile.
            self.logger.warning("shutting down: stopping the new process (pid \(pid)) still starting")
            kill(pid, SIGTERM)
        case .none:
            break
        }
    }
}
