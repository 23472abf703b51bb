import struct NIOConcurrencyHelpers.NIOLockedValueBox

/// Every pool's members (`Backends`), for the life of the process: config generations come and go,
/// the registry stays. A reload `apply`s the new generation's member lists, DNS discovery `update`s
/// one pool; both go through `Backends.update`, and whoever watches (`changes`) hears of it.
public final class BackendRegistry: Sendable {
    private let state: NIOLockedValueBox<State>
    private let changeContinuation: AsyncStream<Void>.Continuation
    /// Yields after every change of members or health checks (the health checker's wake-up); a
    /// burst of changes reads as one.
    let changes: AsyncStream<Void>

    private struct State {
        var pools: [String: Backends] = [:]
        /// Pools the config dropped whose backends still have tunnels open: they drain, then go.
        var retired: [Backends] = []
        /// The config generation last applied: DNS results resolved under an older one are stale.
        var generation = 0
    }

    public init() {
        self.state = NIOLockedValueBox(State())
        (self.changes, self.changeContinuation) = AsyncStream.makeStream(bufferingPolicy: .bufferingNewest(1))
    }

    /// The pool named `name`, created empty the first time (a generation being built refers to it
    /// before `apply` fills it).
    func backends(named name: String) -> Backends {
        self.state.withLockedValue { state in
            if let existing = state.pools[name] { return existing }
            // Dropped by an earlier reload and still draining: the same members come back.
            if let index = state.retired.firstIndex(where: { $0.poolName == name }) {
                return state.retired[index]
            }
            let created = Backends(poolName: name)
            state.pools[name] = created
            return created
        }
    }

    /// Every pool, by name.
    var pools: [String: Backends] { self.state.withLockedValue { $0.pools } }

    /// Every pool with tunnels a drain may close: the configured ones and those the config dropped
    /// while their tunnels were open (forgotten once those are closed).
    var drainablePools: [Backends] {
        self.state.withLockedValue { state in
            Array(state.pools.values) + Self.pruneRetired(&state)
        }
    }

    /// The pools the config dropped whose backends still have requests or tunnels open (listed by
    /// `/status` and `/metrics` until the last is gone).
    var retiredPools: [Backends] {
        self.state.withLockedValue { Self.pruneRetired(&$0) }
    }

    /// Forgets the retired pools with nothing left open; returns the others.
    private static func pruneRetired(_ state: inout State) -> [Backends] {
        state.retired.removeAll { $0.departed.isEmpty }
        return state.retired
    }

    /// Makes `runtime`'s member lists current: every pool's `update`, and pools the generation no
    /// longer has are dropped (their open requests and tunnels finish on the objects they hold).
    /// Returns what changed, by pool.
    @discardableResult
    func apply(_ runtime: RuntimeConfig, loops: [LoopContexts.Loop] = []) -> [String: Backends.Change] {
        // Under the registry's lock, so a DNS update cannot slip between the generation check and
        // the members it would overwrite.
        let changes: [String: Backends.Change] = self.state.withLockedValue { state in
            state.generation = max(state.generation, runtime.generation)
            var changes: [String: Backends.Change] = [:]
            for (name, pool) in state.pools where runtime.pools[name] == nil {
                state.pools[name] = nil
                // Every member leaves (and drains, at the pool's last drain rate).
                let change = pool.update([], healthCheck: pool.healthCheck, loops: loops)
                if !pool.departed.isEmpty { state.retired.append(pool) }
                changes[name] = change
            }
            for (name, pool) in runtime.pools {
                state.pools[name] = pool.members
                state.retired.removeAll { $0 === pool.members }
                pool.members.setDrainPolicy(pool.drainPolicy)
                changes[name] = pool.members.update(
                    runtime.members[name] ?? [],
                    healthCheck: pool.healthCheck,
                    loops: loops
                )
            }
            return changes
        }
        self.changeContinuation.yield()
        return changes
    }

    /// DNS discovery found `members` for the pool `name`, resolving names of config generation
    /// `generation`. Ignored when a newer generation was applied since (its own resolution wins) or
    /// the pool is gone.
    func update(
        pool name: String,
        members: [Backends.Member],
        generation: Int,
        loops: [LoopContexts.Loop]
    ) -> Backends.Change? {
        let change: Backends.Change? = self.state.withLockedValue { state in
            guard state.generation <= generation, let pool = state.pools[name] else { return nil }
            return pool.update(members, healthCheck: pool.healthCheck, loops: loops)
        }
        if change?.membersChanged == true { self.changeContinuation.yield() }
        return change
    }
}
