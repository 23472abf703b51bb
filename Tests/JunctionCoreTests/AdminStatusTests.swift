import Foundation
import Logging
import NIOCore
import NIOEmbedded
import NIOHTTP1
import Testing

@testable import JunctionCore

/// What `/status`, `/metrics` and the admin writes show of a backend or pool that a reload or DNS
/// removed while it still has tunnels or requests open, and of the process itself.
@Suite("Admin status: the process, removed backends and pools while they drain")
struct AdminStatusTests {
    static let token = "0123456789abcdef"
    static let identity = ProcessIdentity(pid: 4242, version: "9.9.9", startedAt: 1_800_000_000)

    /// A config with the pools `names` (each routed) and a write token.
    static func config(_ names: [String]) -> JunctionConfig {
        var config = JunctionConfig()
        config.pools = names.map { PoolConfig(name: $0) }
        config.routes = names.map { RouteConfig(name: $0, pool: $0) }
        var admin = AdminConfig()
        admin.token = AdminToken(Self.token)
        config.admin = admin
        return config
    }

    /// Generation `generation` of `registry` with `members` by pool, applied.
    @discardableResult
    static func apply(
        _ members: [String: [Backends.Member]],
        registry: BackendRegistry,
        generation: Int
    ) -> RuntimeConfig {
        let names = members.keys.sorted()
        let runtime = RuntimeConfig(
            config: Self.config(names),
            pools: BackendRegistryTests.pools(names, registry: registry),
            members: members,
            registry: registry,
            generation: generation
        )
        registry.apply(runtime)
        return runtime
    }

    /// The admin endpoints' state over `runtime`, with nothing listening.
    static func adminState(_ runtime: RuntimeConfig, eventLoop: EmbeddedEventLoop) -> AdminState {
        let contexts = BackendRegistryTests.contexts(eventLoop, runtime)
        let logger = Logger(label: "test")
        return AdminState(
            process: Self.identity,
            runtime: RuntimeBox(runtime),
            listeners: ListenerManager(
                settings: [],
                maxConnections: 0,
                shutdownGrace: .seconds(1),
                group: eventLoop,
                contexts: contexts,
                logger: logger
            ),
            metrics: JunctionMetrics(),
            drainer: TunnelDrainer(registry: runtime.registry, logger: logger),
            logger: logger
        )
    }

    /// One authorised admin write.
    static func post(_ state: AdminState, _ path: String, body: String = "") -> HTTPResponseStatus {
        var head = HTTPRequestHead(version: .http1_1, method: .POST, uri: path)
        head.headers.add(name: "Authorization", value: "Bearer \(Self.token)")
        return AdminWrites(state: state).answer(head, body: ByteBuffer(string: body)).status
    }

    static func metrics(_ state: AdminState) -> String {
        String(decoding: state.metrics.render(pools: state.pools, listeners: []), as: UTF8.self)
    }

    @Test("A removed backend is `removed`, `drained` with nothing open; an admin drain is no removal")
    func removedState() {
        let pool = Backends(poolName: "ddp")
        pool.update([BackendRegistryTests.member(3001)], healthCheck: nil)
        let backend = pool.all[0]
        pool.update([], healthCheck: nil)
        #expect(backend.isRemoved && backend.drainState == .removed)
        #expect(backend.stateDescription == "drained", "nothing open")
        let admin = Backends(poolName: "ddp")
        admin.update([BackendRegistryTests.member(3002)], healthCheck: nil)
        admin.all[0].setDrain(.admin)
        #expect(!admin.all[0].isRemoved, "an admin drain is not a removal")
    }

    @Test(
        "A backend a reload removes with a tunnel open stays in /status (draining, removed) and /metrics, takes no writes (409), and leaves with its tunnel; so does a removed pool"
    )
    func removedBackendAndPool() throws {
        let registry = BackendRegistry()
        let first = Self.apply(
            ["ddp": [BackendRegistryTests.member(3001), BackendRegistryTests.member(3002)]],
            registry: registry,
            generation: 1
        )
        let pool = try #require(first.pools["ddp"])
        let leaving = try #require(pool.backends.first { $0.label == "127.0.0.1:3001" })
        let tunnel = try HandlerTests.makeTunnel(backend: leaving, pool: pool)
        #expect(leaving.tunnels == 1 && pool.members.tunnelCount.load(ordering: .relaxed) == 1)

        // The reload removes 3001: it drains, and stays listed after the configured 3002.
        let second = Self.apply(["ddp": [BackendRegistryTests.member(3002)]], registry: registry, generation: 2)
        let eventLoop = EmbeddedEventLoop()
        let state = Self.adminState(second, eventLoop: eventLoop)
        let status = state.status
        #expect(status.process.pid == 4242 && status.process.version == "9.9.9")
        #expect(status.process.startedAt == 1_800_000_000)
        let ddp = try #require(status.pools["ddp"])
        #expect(!ddp.removed && ddp.balance == "least_conn" && ddp.affinity == "none" && ddp.tunnels == 1)
        #expect(ddp.backends.map(\.address) == ["127.0.0.1:3002", "127.0.0.1:3001"])
        #expect(ddp.backends.map(\.state) == ["active", "draining"])
        #expect(ddp.backends.map(\.removed) == [false, true])
        #expect(ddp.backends[1].tunnels == 1 && ddp.backends[1].active == 1)

        // The JSON: the process with its integer start, `removed` on each backend.
        let encoded = try JSONSerialization.jsonObject(with: JSONEncoder().encode(status)) as? [String: Any]
        let process = encoded?["process"] as? [String: Any]
        #expect(process?["pid"] as? Int == 4242 && process?["version"] as? String == "9.9.9")
        #expect(process?["started_at"] as? Int == 1_800_000_000)
        let backends =
            ((encoded?["pools"] as? [String: Any])?["ddp"] as? [String: Any])?["backends"] as? [[String: Any]]
        #expect(backends?.map { $0["removed"] as? Bool } == [false, true])

        var metrics = Self.metrics(state)
        for series in ["junction_upstream_active_connections", "junction_backend_tunnels"] {
            #expect(metrics.contains("\(series){pool=\"ddp\",backend=\"127.0.0.1:3001\"} 1"), "\(series): \(metrics)")
        }
        // No longer checked: no health series that would freeze the health alerts.
        #expect(!metrics.contains("junction_backend_healthy{pool=\"ddp\",backend=\"127.0.0.1:3001\"}"), "\(metrics)")
        #expect(metrics.contains("junction_tunnels_active{pool=\"ddp\"} 1"), "\(metrics)")

        // The writes: a removed backend takes none; an unknown one is still 404.
        for action in ["drain", "enable"] {
            #expect(Self.post(state, "/pools/ddp/backends/127.0.0.1:3001/\(action)") == .conflict, "\(action)")
        }
        #expect(Self.post(state, "/pools/ddp/backends/127.0.0.1:3001/weight", body: "{\"weight\": 3}") == .conflict)
        #expect(leaving.isRemoved && leaving.weight == 1, "nothing changed on it")
        #expect(Self.post(state, "/pools/ddp/backends/127.0.0.1:3999/drain") == .notFound)
        #expect(Self.post(state, "/pools/ddp/rebalance") == .accepted)

        // A reload removes the pool: it stays listed, with the backend still draining only.
        let third = Self.apply(["other": [BackendRegistryTests.member(3003)]], registry: registry, generation: 3)
        state.runtime.replace(with: third)
        let removed = try #require(state.status.pools["ddp"])
        #expect(removed.removed && removed.balance == nil && removed.affinity == nil && removed.tunnels == 1)
        #expect(removed.backends.map(\.address) == ["127.0.0.1:3001"], "3002 had nothing open")
        #expect(removed.backends.first?.state == "draining" && removed.backends.first?.removed == true)
        #expect(state.status.pools["other"]?.removed == false)
        let removedJSON = try JSONSerialization.jsonObject(with: JSONEncoder().encode(state.status)) as? [String: Any]
        let removedPool = (removedJSON?["pools"] as? [String: Any])?["ddp"] as? [String: Any]
        #expect(removedPool?["removed"] as? Bool == true && removedPool?["balance"] == nil)
        metrics = Self.metrics(state)
        #expect(metrics.contains("junction_backend_tunnels{pool=\"ddp\",backend=\"127.0.0.1:3001\"} 1"), "\(metrics)")
        #expect(!metrics.contains("backend=\"127.0.0.1:3002\""), "\(metrics)")
        #expect(Self.post(state, "/pools/ddp/rebalance") == .conflict)
        #expect(Self.post(state, "/pools/ddp/backends/127.0.0.1:3001/drain") == .conflict)
        #expect(Self.post(state, "/pools/ddp/backends/127.0.0.1:3002/drain") == .notFound)
        #expect(Self.post(state, "/pools/nope/rebalance") == .notFound)

        // The tunnel ends: the backend, then the pool, leave /status and /metrics.
        _ = try? tunnel.client.close().wait()
        _ = try? tunnel.upstream.finish()
        #expect(leaving.tunnels == 0 && leaving.active == 0)
        #expect(state.status.pools.keys.sorted() == ["other"])
        metrics = Self.metrics(state)
        #expect(!metrics.contains("pool=\"ddp\""), "\(metrics)")
        #expect(metrics.contains("junction_backend_tunnels{pool=\"other\",backend=\"127.0.0.1:3003\"} 0"), "\(metrics)")
        #expect(registry.retiredPools.isEmpty)
        #expect(Self.post(state, "/pools/ddp/rebalance") == .notFound)
    }

    @Test(
        "A backend DNS removes with a request in flight is listed (drained, removed) until it ends; one address under two names is one metric series"
    )
    func removedByDNSWithRequest() throws {
        let registry = BackendRegistry()
        let runtime = Self.apply(["p": [BackendRegistryTests.member(3001)]], registry: registry, generation: 1)
        let old = try #require(registry.pools["p"]?.all.first)
        old.retain()
        let change = registry.update(
            pool: "p",
            members: [BackendRegistryTests.member(3001, name: "p.internal:3001")],
            generation: 1,
            loops: []
        )
        #expect(change?.removed.first === old && change?.added.count == 1)
        let state = Self.adminState(runtime, eventLoop: EmbeddedEventLoop())
        let listed = try #require(state.status.pools["p"]?.backends)
        #expect(listed.map(\.configured) == ["p.internal:3001", "127.0.0.1:3001"])
        #expect(listed.map(\.state) == ["active", "drained"], "no tunnel: drained, still listed")
        #expect(listed.map(\.removed) == [false, true] && listed.map(\.active) == [0, 1])
        var metrics = Self.metrics(state)
        let series = "junction_upstream_active_connections{pool=\"p\",backend=\"127.0.0.1:3001\"}"
        #expect(metrics.components(separatedBy: series).count == 2, "one series: \(metrics)")
        #expect(metrics.contains(series + " 1"), "the counts added: \(metrics)")

        old.release()
        #expect(state.status.pools["p"]?.backends.map(\.configured) == ["p.internal:3001"])
        metrics = Self.metrics(state)
        #expect(metrics.contains(series + " 0"), "\(metrics)")
    }
}
