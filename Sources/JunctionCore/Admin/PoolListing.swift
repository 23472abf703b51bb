/// One pool as `/status` and `/metrics` list it: a pool of the running config with its members and,
/// after them, the backends a reload or DNS removed that still have requests or tunnels open; or a
/// pool a reload removed, with its departed backends, while any of them is left. A removed backend
/// stays listed so its tunnels can be watched while the `TunnelDrainer` closes them, and leaves the
/// list with its last tunnel or request.
struct PoolListing {
    /// The pool's name.
    let name: String
    /// The running config's pool; nil for a pool a reload removed.
    let pool: Pool?
    /// Its long-lived members, where the pool's tunnel count lives.
    let members: Backends
    /// The configured members, then the removed ones still open (`Backend.isRemoved`).
    let backends: [Backend]

    /// Whether a reload removed the pool (it is listed only while its backends drain).
    var isRemoved: Bool { self.pool == nil }

    /// A pool of the running config.
    init(_ pool: Pool) {
        let listed = pool.members.listed
        self.name = pool.name
        self.pool = pool
        self.members = pool.members
        self.backends = listed.members + listed.departed
    }

    /// A pool a reload removed: only its departed backends are left.
    init(removed members: Backends) {
        self.name = members.poolName
        self.pool = nil
        self.members = members
        self.backends = members.departed
    }

    /// Every pool of `runtime` by name, then the pools a reload removed that still drain.
    static func all(in runtime: RuntimeConfig) -> [PoolListing] {
        let configured = runtime.pools.values.sorted { $0.name < $1.name }.map(PoolListing.init)
        // A name the running config has again is listed as configured (its members came back);
        // a removed pool whose last backend left since the registry was asked is not listed empty.
        let removed = runtime.registry.retiredPools
            .filter { runtime.pools[$0.poolName] == nil }
            .map(PoolListing.init(removed:))
            .filter { !$0.backends.isEmpty }
        return configured + removed.sorted { $0.name < $1.name }
    }
}
