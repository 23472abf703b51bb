import Logging
import NIOCore
import ServiceLifecycle
import Synchronization

import struct NIOConcurrencyHelpers.NIOLockedValueBox

/// Closes WebSocket tunnels on purpose, so clients move as a trickle, not a storm: those of
/// draining backends (admin drain, removal by reload or DNS) and a rebalance's quota, at each
/// pool's `drain_rate` per second, evenly spaced, oldest first. With `rebalance: auto` it also
/// starts a rebalance when a backend joins or comes back healthy and stays so for `settle`.
///
/// Control plane: one task wakes when the next close is due (or every `idlePoll`), picks the tunnel
/// and asks that tunnel's event loop to close it.
final class TunnelDrainer: Service, Sendable {
    private let registry: BackendRegistry
    private let logger: Logger
    private let state = NIOLockedValueBox(State())
    /// Set once an upgrade handed over: every tunnel of this process is closed, each pool at its
    /// own rate, oldest first.
    private let retiring = Atomic<Bool>(false)

    /// The most tunnels one pool closes in one round (each still on its schedule): a round that
    /// woke late catches up on what came due, a bounded amount at a time.
    static let closesPerRound = 64
    /// How often the drainer looks for work when there is none.
    static let idlePoll = TimeAmount.milliseconds(100)
    /// A backend that triggered an automatic rebalance triggers none for this long (a backend
    /// flapping slowly must not keep tunnels moving).
    static let autoRebalanceCooldown = TimeAmount.seconds(60)

    private struct State {
        var pools: [ObjectIdentifier: PoolState] = [:]
    }

    /// One pool's drain bookkeeping.
    private struct PoolState {
        /// When the next tunnel may be closed.
        var nextClose = NIODeadline.uptimeNanoseconds(0)
        /// What a rebalance still has to close, by backend.
        var quotas: [ObjectIdentifier: Int] = [:]
        /// For `rebalance: auto`: when a backend's join or return to health is due a rebalance.
        var watch = AutoRebalanceWatch<ObjectIdentifier>(cooldown: TunnelDrainer.autoRebalanceCooldown)
        /// Draining backends seen with tunnels, to log when each is drained (a removed one leaves
        /// the pool's lists as its last tunnel closes).
        var draining: [ObjectIdentifier: Backend] = [:]
    }

    init(registry: BackendRegistry, logger: Logger) {
        self.registry = registry
        self.logger = logger
    }

    func run() async throws {
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                let wait = self.step(now: .now())
                try? await Task.sleep(for: .nanoseconds(wait.nanoseconds))
            }
        }
    }

    /// The process handed over to a new one: from now on every open tunnel is closed at its pool's
    /// `drain_rate`, evenly spread, oldest first, as if every backend drained (a rate of 0 leaves
    /// them to end by themselves). Returns how many are open.
    @discardableResult
    func retire() -> Int {
        self.retiring.store(true, ordering: .relaxed)
        let pools = self.registry.drainablePools
        let open = pools.reduce(0) { $0 + $1.tunnelCount.load(ordering: .relaxed) }
        self.logger.info(
            "closing this process's tunnels at each pool's drain_rate",
            metadata: [
                "tunnels": "\(open)",
                "drain_rate":
                    "\(pools.map { "\($0.poolName)=\($0.drainPolicy.rate)" }.sorted().joined(separator: ","))",
            ]
        )
        return open
    }

    /// How long a backend must stay available before an automatic rebalance moves tunnels to it:
    /// two check intervals (at least 2 s), so a backend flipping health never triggers one.
    static func settle(for healthCheck: HealthCheckConfig?) -> TimeAmount {
        max(.seconds(2), (healthCheck?.interval ?? .seconds(1)) * 2)
    }

    /// Time between two closes at `rate` per second (at least 100 µs: the config allows up to
    /// 10,000 per second).
    static func interval(rate: Double) -> TimeAmount {
        .nanoseconds(Int64(max(1e9 / max(rate, 0.01), 100_000)))
    }

    /// Plans a rebalance of `pool` now; returns how many tunnels it will close (0 when the pool is
    /// balanced or its drain rate is 0).
    @discardableResult
    func rebalance(_ pool: Backends, now: NIODeadline = .now()) -> Int {
        let quotas = self.plan(pool, now: now)
        self.state.withLockedValue { state in
            state.pools[ObjectIdentifier(pool), default: PoolState()].quotas = quotas
        }
        return self.logRebalance(pool, quotas)
    }

    /// Logs a rebalance that starts; returns how many tunnels it closes.
    @discardableResult
    private func logRebalance(_ pool: Backends, _ quotas: [ObjectIdentifier: Int]) -> Int {
        let total = quotas.values.reduce(0, +)
        self.logger.info(
            "rebalance",
            metadata: ["pool": "\(pool.poolName)", "to_close": "\(total)", "drain_rate": "\(pool.drainPolicy.rate)"]
        )
        return total
    }

    /// What each backend above its share closes, by backend; empty when the rate is 0.
    private func plan(_ pool: Backends, now: NIODeadline) -> [ObjectIdentifier: Int] {
        guard pool.drainPolicy.rate > 0 else { return [:] }
        let members = pool.all
        let closes = RebalancePlan.toClose(
            members.map {
                RebalancePlan.Entry(tunnels: $0.tunnels, weight: $0.weight, eligible: $0.isAvailable(at: now))
            }
        )
        var quotas: [ObjectIdentifier: Int] = [:]
        for (backend, count) in zip(members, closes) where count > 0 {
            quotas[ObjectIdentifier(backend)] = count
        }
        return quotas
    }

    /// One round: closes the tunnels that are due, starts automatic rebalances; returns how long to
    /// sleep.
    func step(now: NIODeadline) -> TimeAmount {
        let pools = self.registry.drainablePools
        var wait = Self.idlePoll
        var autoRebalances: [(pool: Backends, quotas: [ObjectIdentifier: Int])] = []
        var drained: [Backend] = []
        let retiring = self.retiring.load(ordering: .relaxed)
        self.state.withLockedValue { state in
            let live = Set(pools.map(ObjectIdentifier.init))
            state.pools = state.pools.filter { live.contains($0.key) }
            for pool in pools {
                let key = ObjectIdentifier(pool)
                var poolState = state.pools[key] ?? PoolState()
                defer { state.pools[key] = poolState }
                let policy = pool.drainPolicy
                let members = pool.all
                if policy.autoRebalance, !retiring,
                    let quotas = self.watch(members, in: &poolState, pool: pool, now: now)
                {
                    poolState.quotas = quotas
                    autoRebalances.append((pool, quotas))
                }
                // Retiring, every tunnel is closed as a drain; a rebalance has nothing left to do.
                if retiring { poolState.quotas = [:] }
                let draining = members.filter { retiring || $0.isDraining } + pool.departed
                for backend in draining where backend.tunnels > 0 {
                    poolState.draining[ObjectIdentifier(backend)] = backend
                }
                for (key, backend) in poolState.draining where backend.tunnels == 0 || !backend.isDraining && !retiring
                {
                    poolState.draining[key] = nil
                    if backend.isDraining { drained.append(backend) }
                }
                guard policy.rate > 0 else {
                    poolState.quotas = [:]
                    continue
                }
                let interval = Self.interval(rate: policy.rate)
                guard now >= poolState.nextClose else {
                    wait = min(wait, poolState.nextClose - now)
                    continue
                }
                // Paced from the previous close, not from when this round woke, so the rate holds
                // at any speed; after a pause the schedule starts over instead of catching up in a
                // burst.
                if now - poolState.nextClose > interval { poolState.nextClose = now }
                var budget = Self.closesPerRound
                var workLeft = true
                while budget > 0, now >= poolState.nextClose {
                    budget -= 1
                    let quotas = poolState.quotas
                    let rebalancing = members.filter { !$0.isDraining && (quotas[ObjectIdentifier($0)] ?? 0) > 0 }
                    let candidates =
                        draining.map { ($0, TunnelLedger.CloseReason.drain) } + rebalancing.map { ($0, .rebalance) }
                    // The candidate whose oldest open tunnel is the oldest of all.
                    let next = candidates.compactMap { candidate in candidate.0.oldestTunnelID.map { (candidate, $0) } }
                        .min { $0.1 < $1.1 }?.0
                    guard let (backend, reason) = next, let handle = backend.takeOldestTunnel() else {
                        // Nothing left to close: a quota still open has nothing to give.
                        poolState.quotas = [:]
                        workLeft = false
                        break
                    }
                    handle.close(reason: reason)
                    if reason == .rebalance { poolState.quotas[ObjectIdentifier(backend)]! -= 1 }
                    poolState.nextClose = poolState.nextClose + interval
                }
                // Idle pools wake the drainer only every `idlePoll`.
                if workLeft { wait = min(wait, max(poolState.nextClose - now, .zero)) }
            }
        }
        for backend in drained {
            self.logger.info(
                "backend drained",
                metadata: ["pool": "\(backend.poolName)", "backend": "\(backend.label)"]
            )
        }
        for (pool, quotas) in autoRebalances {
            self.logRebalance(pool, quotas)
        }
        return max(wait, .microseconds(100))
    }

    /// Follows each member's availability (`AutoRebalanceWatch`); when a join or a return to health
    /// is due a rebalance that moves tunnels, returns its quotas.
    private func watch(
        _ members: [Backend],
        in poolState: inout PoolState,
        pool: Backends,
        now: NIODeadline
    ) -> [ObjectIdentifier: Int]? {
        let due = poolState.watch.observe(
            members.map { (ObjectIdentifier($0), $0.isAvailable(at: now)) },
            now: now,
            settle: Self.settle(for: pool.healthCheck)
        )
        // While a rebalance is still closing tunnels the event waits (it stays due).
        guard !due.isEmpty, poolState.quotas.values.allSatisfy({ $0 <= 0 }) else { return nil }
        // A pool balanced already settles the event without a cooldown.
        let quotas = self.plan(pool, now: now)
        for key in due { poolState.watch.settle(key, rebalanced: !quotas.isEmpty, at: now) }
        return quotas.isEmpty ? nil : quotas
    }
}
