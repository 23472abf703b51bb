import Logging
import NIOCore
import NIOEmbedded
import Synchronization
import Testing

@testable import JunctionCore

/// The long-lived member registry: one diff for reloads and DNS, counts and health kept.
@Suite("Backend registry")
struct BackendRegistryTests {
    static func member(_ port: Int, weight: Int = 1, name: String? = nil) -> Backends.Member {
        let address = try! SocketAddress(ipAddress: "127.0.0.1", port: port)
        return Backends.Member(
            address: address,
            label: "127.0.0.1:\(port)",
            configuredAddress: name ?? "127.0.0.1:\(port)",
            weight: weight
        )
    }

    static func check(healthy: Int = 2, unhealthy: Int = 3) -> HealthCheckConfig {
        var check = HealthCheckConfig()
        check.healthyThreshold = healthy
        check.unhealthyThreshold = unhealthy
        return check
    }

    /// One update's effect on a pool that holds 3001 (weight 1) and 3002 (weight 2).
    struct UpdateCase: CustomTestStringConvertible, Sendable {
        var name: String
        var next: [Backends.Member]
        var added: [String]
        var removed: [String]
        var reweighted: [String]
        var testDescription: String { self.name }
    }

    @Test(
        "update: a backend that stays keeps its object; new ones appear, missing ones go, weights change in place",
        arguments: [
            UpdateCase(
                name: "same list",
                next: [member(3001), member(3002, weight: 2)],
                added: [],
                removed: [],
                reweighted: []
            ),
            UpdateCase(
                name: "one added",
                next: [member(3001), member(3002, weight: 2), member(3003)],
                added: ["127.0.0.1:3003"],
                removed: [],
                reweighted: []
            ),
            UpdateCase(
                name: "one removed",
                next: [member(3002, weight: 2)],
                added: [],
                removed: ["127.0.0.1:3001"],
                reweighted: []
            ),
            UpdateCase(
                name: "weight changed",
                next: [member(3001, weight: 5), member(3002, weight: 2)],
                added: [],
                removed: [],
                reweighted: ["127.0.0.1:3001"]
            ),
            UpdateCase(
                name: "same address under another name is another backend",
                next: [member(3001, name: "ddp:3001"), member(3002, weight: 2)],
                added: ["127.0.0.1:3001"],
                removed: ["127.0.0.1:3001"],
                reweighted: []
            ),
            UpdateCase(
                name: "duplicates count once",
                next: [member(3001), member(3001), member(3002, weight: 2)],
                added: [],
                removed: [],
                reweighted: []
            ),
        ]
    )
    func update(_ example: UpdateCase) {
        let pool = Backends(poolName: "p")
        pool.update([Self.member(3001), Self.member(3002, weight: 2)], healthCheck: nil)
        let before = pool.all
        for backend in before { backend.retain() }
        let change = pool.update(example.next, healthCheck: nil)
        #expect(change.added.map(\.label) == example.added)
        #expect(change.removed.map(\.label) == example.removed)
        #expect(change.reweighted.map(\.label) == example.reweighted)
        #expect(!change.healthCheckChanged)
        #expect(pool.all.map(\.label) == Array(Set(example.next.map(\.label))).sorted())
        for backend in pool.all {
            let member = example.next.first {
                $0.label == backend.label && $0.configuredAddress == backend.configuredAddress
            }
            #expect(backend.weight == member?.weight)
            if let kept = before.first(where: { $0 === backend }) {
                #expect(kept.active == 1, "the kept object still counts its request")
            } else {
                #expect(backend.active == 0)
            }
        }
    }

    @Test("update: a changed health check keeps a checked backend's state with the new thresholds")
    func healthCheckChange() {
        let pool = Backends(poolName: "p")
        pool.update([Self.member(3001), Self.member(3002)], healthCheck: Self.check(unhealthy: 1))
        let (down, up) = (pool.all[0], pool.all[1])
        down.recordCheck(Backend.CheckResult(passed: false, detail: "status 500", time: 0))
        #expect(!down.isHealthy && up.isHealthy)

        // Thresholds change: the down backend stays down and now needs 3 passes.
        let change = pool.update([Self.member(3001), Self.member(3002)], healthCheck: Self.check(healthy: 3))
        #expect(change.healthCheckChanged && !change.membersChanged)
        #expect(pool.all[0] === down && !down.isHealthy)
        for _ in 0..<2 { down.recordCheck(Backend.CheckResult(passed: true, detail: "status 200", time: 0)) }
        #expect(!down.isHealthy)
        down.recordCheck(Backend.CheckResult(passed: true, detail: "status 200", time: 0))
        #expect(down.isHealthy)

        // The check is removed: checks no longer decide, a passive failure backs off instead.
        down.recordCheck(Backend.CheckResult(passed: false, detail: "status 500", time: 0))
        down.recordCheck(Backend.CheckResult(passed: false, detail: "status 500", time: 0))
        down.recordCheck(Backend.CheckResult(passed: false, detail: "status 500", time: 0))
        #expect(!down.isHealthy)
        pool.update([Self.member(3001), Self.member(3002)], healthCheck: nil)
        #expect(down.isHealthy && !down.isActivelyChecked && down.lastCheck == nil)
        let now = NIODeadline.now()
        down.recordConnectFailure(at: now)
        #expect(!down.isAvailable(at: now) && down.retryAt(after: now) != nil)
    }

    @Test("apply: a reload's generation sets every pool's members and drops pools it no longer has")
    func applyGeneration() throws {
        let registry = BackendRegistry()
        var config = JunctionConfig()
        config.pools = [PoolConfig(name: "a"), PoolConfig(name: "b")]
        let first = RuntimeConfig(
            config: config,
            pools: Self.pools(["a", "b"], registry: registry),
            members: ["a": [Self.member(3001)], "b": [Self.member(3002)]],
            registry: registry,
            generation: 1
        )
        registry.apply(first)
        let kept = try #require(registry.pools["a"]?.all.first)
        kept.retain()
        config.pools = [PoolConfig(name: "a")]
        let second = RuntimeConfig(
            config: config,
            pools: Self.pools(["a"], registry: registry),
            members: ["a": [Self.member(3001), Self.member(3003)]],
            registry: registry,
            generation: 2
        )
        let changes = registry.apply(second)
        #expect(changes["a"]?.added.map(\.label) == ["127.0.0.1:3003"])
        #expect(changes["b"]?.removed.map(\.label) == ["127.0.0.1:3002"])
        #expect(registry.pools.keys.sorted() == ["a"])
        #expect(second.pools["a"]?.backends.first === kept && kept.active == 1)

        // DNS results resolved under generation 1 arrive late: generation 2 wins.
        #expect(registry.update(pool: "a", members: [Self.member(3009)], generation: 1, loops: []) == nil)
        #expect(registry.pools["a"]?.all.map(\.label) == ["127.0.0.1:3001", "127.0.0.1:3003"])
        let dns = registry.update(pool: "a", members: [Self.member(3001)], generation: 2, loops: [])
        #expect(dns?.removed.map(\.label) == ["127.0.0.1:3003"])
        #expect(registry.pools["a"]?.all.first === kept)
    }

    /// Names resolved from a table the test changes.
    final class TableResolver: Resolver {
        let table: Mutex<[String: [Int]]>

        init(_ table: [String: [Int]]) {
            self.table = Mutex(table)
        }

        func resolve(_ hostPort: HostPort) throws -> [SocketAddress] {
            guard let ports = self.table.withLock({ $0[hostPort.host] }), !ports.isEmpty else {
                throw BackendResolver.Failure(description: "cannot resolve \(hostPort.host): no such name")
            }
            // Each "address" is 127.0.0.<n>, so the label changes with the table.
            return try ports.map { try SocketAddress(ipAddress: "127.0.0.\($0)", port: hostPort.port) }
        }
    }

    @Test(
        "DNS discovery through the registry: a new address joins, the kept one keeps its count, a failure keeps the last set"
    )
    func discovery() async throws {
        var config = JunctionConfig()
        var pool = PoolConfig(name: "ddp")
        pool.backends = [PoolConfig.Backend(address: HostPort(host: "ddp.internal", port: 3000), weight: 2)]
        config.pools = [pool]
        config.routes = [RouteConfig(name: "all", pool: "ddp")]
        let resolver = TableResolver(["ddp.internal": [1]])
        let registry = BackendRegistry()
        let runtime = try RuntimeConfig.make(config: config, registry: registry, resolver: resolver)
        registry.apply(runtime)
        let first = try #require(registry.pools["ddp"]?.all.first)
        #expect(first.label == "127.0.0.1:3000" && first.weight == 2 && first.configuredAddress == "ddp.internal:3000")
        first.retain()

        let eventLoop = EmbeddedEventLoop()
        let contexts = Self.contexts(eventLoop, runtime)
        let discovery = BackendDiscovery(
            runtime: RuntimeBox(runtime),
            loops: contexts.all,
            logger: Logger(label: "test"),
            resolver: resolver
        )
        resolver.table.withLock { $0["ddp.internal"] = [1, 2] }
        await discovery.refresh(pool, in: runtime)
        let after = registry.pools["ddp"]?.all ?? []
        #expect(after.map(\.label) == ["127.0.0.1:3000", "127.0.0.2:3000"])
        #expect(after.first === first && first.active == 1, "the address that stayed kept its object and count")
        #expect(after.last?.weight == 2)

        // The name stops resolving: the last addresses stay.
        resolver.table.withLock { $0["ddp.internal"] = [] }
        await discovery.refresh(pool, in: runtime)
        #expect(registry.pools["ddp"]?.all.map(\.label) == ["127.0.0.1:3000", "127.0.0.2:3000"])

        // The first address goes away.
        resolver.table.withLock { $0["ddp.internal"] = [2] }
        await discovery.refresh(pool, in: runtime)
        #expect(registry.pools["ddp"]?.all.map(\.label) == ["127.0.0.2:3000"])
        eventLoop.run()
        let members = try #require(registry.pools["ddp"])
        #expect(contexts.context(for: eventLoop).members(of: members).map(\.label) == ["127.0.0.2:3000"])
    }

    @Test("A loop's view of a pool: taken when its context is made, then changed on the loop by each update")
    func loopView() throws {
        let registry = BackendRegistry()
        var config = JunctionConfig()
        config.routes = [RouteConfig(name: "all", pool: "p")]
        let pools = Self.pools(["p"], registry: registry)
        let runtime = RuntimeConfig(config: config, pools: pools, members: ["p": [Self.member(3001)]], registry: registry)
        registry.apply(runtime)
        let eventLoop = EmbeddedEventLoop()
        let contexts = Self.contexts(eventLoop, runtime)
        let members = try #require(registry.pools["p"])
        let context = contexts.context(for: eventLoop)
        #expect(context.members(of: members).map(\.label) == ["127.0.0.1:3001"], "the members at hand")
        members.update([Self.member(3001), Self.member(3002)], healthCheck: nil, loops: contexts.all)
        #expect(context.members(of: members).count == 1, "not before the loop's next turn")
        eventLoop.run()
        #expect(context.members(of: members).map(\.label) == ["127.0.0.1:3001", "127.0.0.1:3002"])
        #expect(context.members(of: Backends(poolName: "unknown")).isEmpty)
    }

    /// The data path's one loop context, on `eventLoop`.
    static func contexts(_ eventLoop: EmbeddedEventLoop, _ runtime: RuntimeConfig) -> LoopContexts {
        LoopContexts(group: eventLoop, runtime: runtime, accessLogSink: nil, metrics: nil, logger: Logger(label: "test"))
    }

    static func pools(_ names: [String], registry: BackendRegistry) -> [String: Pool] {
        Dictionary(
            uniqueKeysWithValues: names.map { name in
                (
                    name,
                    Pool(
                        name: name,
                        members: registry.backends(named: name),
                        balancer: LeastConnectionsBalancer(),
                        timeouts: UpstreamTimeouts(),
                        retries: 0,
                        healthCheck: nil
                    )
                )
            }
        )
    }
}
