import NIOCore
import NIOHTTP1
import Testing

@testable import JunctionCore

/// The health flip rule, affinity choices and rendezvous hashing, without I/O.
@Suite("Health and affinity logic")
struct HealthAndAffinityUnitTests {
    @Test("Flip rule: down after N consecutive failures, up after M consecutive passes; a pass resets failures")
    func flipRule() {
        var machine = HealthStateMachine(healthyThreshold: 2, unhealthyThreshold: 3)
        #expect(machine.isHealthy, "a backend starts healthy")
        #expect(machine.checkFailed() == nil)
        #expect(machine.checkFailed() == nil)
        #expect(machine.checkPassed() == nil, "a pass in between resets the count")
        #expect(machine.checkFailed() == nil)
        #expect(machine.checkFailed() == nil)
        #expect(machine.checkFailed() == .becameUnhealthy)
        #expect(!machine.isHealthy)
        #expect(machine.checkFailed() == nil, "a transition is reported once")
        #expect(machine.checkPassed() == nil)
        #expect(machine.checkFailed() == nil, "a failure in between resets the passes")
        #expect(machine.checkPassed() == nil)
        #expect(machine.checkPassed() == .becameHealthy)
        #expect(machine.isHealthy)
    }

    @Test("A refused connect takes a checked backend down at once; only checks bring it back")
    func passiveFailure() {
        var machine = HealthStateMachine(healthyThreshold: 2, unhealthyThreshold: 5)
        #expect(machine.connectFailed() == .becameUnhealthy)
        #expect(machine.connectFailed() == nil)
        #expect(machine.checkPassed() == nil)
        #expect(machine.checkPassed() == .becameHealthy)

        var check = HealthCheckConfig()
        check.healthyThreshold = 1
        let backend = Backend(
            address: try! SocketAddress(ipAddress: "127.0.0.1", port: 1),
            label: "b",
            weight: 1,
            poolName: "p",
            healthCheck: check
        )
        let now = NIODeadline.now()
        #expect(backend.recordConnectFailure(at: now) == .becameUnhealthy)
        #expect(!backend.isAvailable(at: now + .hours(1)), "no back-off expiry with active checks")
        #expect(backend.recordCheck(Backend.CheckResult(passed: true, detail: "status 200", time: 0)) == .becameHealthy)
        #expect(backend.isAvailable(at: now))
        #expect(backend.lastCheck?.detail == "status 200")
    }

    @Test(
        "SockJS fallback URLs yield the session; WebSocket, info and raw DDP do not",
        arguments: [
            ("/sockjs/123/abcdef/xhr", "abcdef"),
            ("/sockjs/000/s1/xhr_send", "s1"),
            ("/sockjs/999/x-y_z/eventsource", "x-y_z"),
            ("/chat/sockjs/7/sess/jsonp_send", "sess"),
            ("/sockjs/123/abcdef/websocket", nil),
            ("/sockjs/info", nil),
            ("/websocket", nil),
            ("/sockjs/1.2/abc/xhr", nil),
            ("/xhr", nil),
        ] as [(String, String?)]
    )
    func sockjsSessions(path: String, session: String?) {
        #expect(SockJSPath.fallbackSession(in: Substring(path)).map(String.init) == session)
    }

    static func backends(_ count: Int, weights: [Int]? = nil) -> [Backend] {
        (0..<count).map { index in
            Backend(
                address: try! SocketAddress(ipAddress: "127.0.0.1", port: 3000 + index),
                label: "127.0.0.1:\(3000 + index)",
                weight: weights?[index] ?? 1,
                poolName: "p"
            )
        }
    }

    @Test("Rendezvous hashing: deterministic, spread, and a removed backend only moves its own sessions")
    func rendezvous() {
        let backends = Self.backends(3)
        let sessions = (0..<3000).map { "session-\($0)" }
        let picks = sessions.map { Rendezvous.pick(key: $0, from: backends)!.label }
        #expect(
            picks == sessions.map { Rendezvous.pick(key: $0, from: Self.backends(3))!.label },
            "the same on every instance"
        )
        let counts = Dictionary(grouping: picks, by: { $0 }).mapValues(\.count)
        #expect(counts.values.allSatisfy { $0 > 800 && $0 < 1200 }, "spread: \(counts)")
        let remaining = Array(backends.dropLast())
        for (session, pick) in zip(sessions, picks) where pick != backends.last!.label {
            #expect(Rendezvous.pick(key: session, from: remaining)!.label == pick)
        }
        let weighted = Self.backends(2, weights: [1, 3])
        let heavy = sessions.filter { Rendezvous.pick(key: $0, from: weighted)!.label == weighted[1].label }.count
        #expect(heavy > 2000 && heavy < 2500, "weight 3 of 4 takes about three quarters: \(heavy)")
    }

    @Test("Cookie affinity: tokens are opaque and stable; a valid cookie picks its backend; a stale one is replaced")
    func cookies() throws {
        let backends = Self.backends(2)
        #expect(backends[0].affinityToken == AffinityToken.make(pool: "p", backend: "127.0.0.1:3000"))
        #expect(backends[0].affinityToken != backends[1].affinityToken)
        #expect(!backends[0].affinityToken.contains("127"))
        let headers = HTTPHeaders([("Cookie", "a=1; junction_p=\(backends[1].affinityToken); b=2")])
        let choice = AffinityChoice.make(policy: .cookie, path: "/", headers: headers, poolName: "p")
        #expect(choice == .cookie(backends[1].affinityToken))
        #expect(choice.backend(among: backends, now: .now()) === backends[1])
        #expect(choice.setCookie(for: backends[1], poolName: "p", secure: true) == nil, "already holds the right token")
        let replaced = choice.setCookie(for: backends[0], poolName: "p", secure: true)
        #expect(replaced == "junction_p=\(backends[0].affinityToken); Path=/; HttpOnly; SameSite=Lax; Secure")
        let none = AffinityChoice.make(
            policy: .cookie,
            path: "/",
            headers: HTTPHeaders([("Cookie", "junction_q=x")]),
            poolName: "p"
        )
        #expect(none == .cookie(nil))
        #expect(none.backend(among: backends, now: .now()) == nil, "the balancer decides")
        #expect(
            AffinityChoice.make(policy: .none, path: "/sockjs/1/s/xhr", headers: HTTPHeaders(), poolName: "p") == .none
        )
    }

    @Test("Pools pick the affinity's backend unless it is down or already tried")
    func poolSelection() {
        let backends = Self.backends(3)
        let pool = Pool(
            name: "p",
            backends: backends,
            balancer: RoundRobinBalancer(),
            timeouts: UpstreamTimeouts(),
            retries: 2,
            healthCheck: nil
        )
        let now = NIODeadline.now()
        let choice = AffinityChoice.session("abc")
        let preferred = choice.backend(among: backends, now: now)!
        for _ in 0..<5 {
            #expect(pool.select(from: pool.backends, affinity: choice, excluding: [], now: now) === preferred)
        }
        #expect(
            pool.select(from: pool.backends, affinity: choice, excluding: [preferred], now: now) !== preferred,
            "a retry goes elsewhere"
        )
        preferred.recordConnectFailure(at: now)
        #expect(choice.backend(among: backends, now: now) !== preferred, "the session moves off a down backend")
    }
}
