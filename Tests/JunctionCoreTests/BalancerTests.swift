import NIOCore
import Testing

@testable import JunctionCore

/// least_conn (weights, rotating ties, tunnels counted), round_robin, and the passive back-off.
@Suite("Balancing")
struct BalancerTests {
    static func backends(_ weights: [Int]) -> [Backend] {
        weights.enumerated().map { index, weight in
            Backend(
                address: try! SocketAddress(ipAddress: "127.0.0.1", port: 3000 + index),
                label: "b\(index)",
                weight: weight,
                poolName: "p"
            )
        }
    }

    @Test("least_conn picks the lowest active count divided by weight")
    func leastConnWeights() {
        let backends = Self.backends([1, 3])
        let balancer = LeastConnectionsBalancer()
        let now = NIODeadline.now()
        // b1 has weight 3: it takes three for each one b0 takes.
        var picks: [String: Int] = [:]
        for _ in 0..<40 {
            let chosen = balancer.select(from: backends, excluding: [], now: now)!
            chosen.retain()  // held, like an open tunnel
            picks[chosen.label, default: 0] += 1
        }
        #expect(picks == ["b0": 10, "b1": 30])
    }

    @Test("Open tunnels count: a backend holding them gets no new ones until the other catches up")
    func tunnelsCounted() {
        let backends = Self.backends([1, 1])
        let balancer = LeastConnectionsBalancer()
        let now = NIODeadline.now()
        for _ in 0..<5 { backends[0].retain() }  // five tunnels open on b0
        var picks: [String] = []
        for _ in 0..<5 {
            let chosen = balancer.select(from: backends, excluding: [], now: now)!
            chosen.retain()
            picks.append(chosen.label)
        }
        #expect(picks == Array(repeating: "b1", count: 5))
        // Tunnels on b0 close: it is the emptier one now.
        for _ in 0..<5 { backends[0].release() }
        #expect(balancer.select(from: backends, excluding: [], now: now)?.label == "b0")
    }

    @Test("Ties rotate instead of always picking the first backend")
    func tiesRotate() {
        let backends = Self.backends([1, 1, 1])
        let balancer = LeastConnectionsBalancer()
        let now = NIODeadline.now()
        let labels = (0..<6).map { _ in balancer.select(from: backends, excluding: [], now: now)!.label }
        #expect(Set(labels) == ["b0", "b1", "b2"], "short requests (released at once) spread: \(labels)")
    }

    @Test("Retries prefer backends not tried yet; a down backend is skipped")
    func excludingAndDown() {
        let backends = Self.backends([1, 1])
        let now = NIODeadline.now()
        for balancer in [LeastConnectionsBalancer(), RoundRobinBalancer()] as [any Balancer] {
            for _ in 0..<4 {
                #expect(balancer.select(from: backends, excluding: [backends[0]], now: now) === backends[1])
            }
            // Every backend tried: an available one may be used again.
            #expect(balancer.select(from: backends, excluding: backends, now: now) != nil)
        }
        backends[1].recordConnectFailure(at: now)
        for balancer in [LeastConnectionsBalancer(), RoundRobinBalancer()] as [any Balancer] {
            for _ in 0..<4 {
                #expect(balancer.select(from: backends, excluding: [], now: now) === backends[0])
            }
            #expect(balancer.select(from: backends, excluding: [backends[0]], now: now) === backends[0])
        }
        backends[0].recordConnectFailure(at: now)
        #expect(LeastConnectionsBalancer().select(from: backends, excluding: [], now: now) == nil)
    }

    @Test("round_robin gives each backend its weight's share, in turn")
    func roundRobinWeights() {
        let backends = Self.backends([1, 2, 1])
        let balancer = RoundRobinBalancer()
        let now = NIODeadline.now()
        var picks: [String: Int] = [:]
        for _ in 0..<400 {
            picks[balancer.select(from: backends, excluding: [], now: now)!.label, default: 0] += 1
        }
        #expect(picks == ["b0": 100, "b1": 200, "b2": 100])
    }

    @Test("Passive back-off: 1 s, doubling, capped at 30 s; a success resets it")
    func backoff() {
        #expect(
            (1...8).map { Backend.backoff(afterFailures: $0) } == [
                .seconds(1), .seconds(2), .seconds(4), .seconds(8), .seconds(16), .seconds(30), .seconds(30),
                .seconds(30),
            ]
        )
        let backend = Self.backends([1])[0]
        let now = NIODeadline.now()
        #expect(backend.isAvailable(at: now))
        backend.recordConnectFailure(at: now)
        #expect(!backend.isAvailable(at: now + .milliseconds(999)))
        #expect(backend.isAvailable(at: now + .seconds(1)))
        backend.recordConnectFailure(at: now + .seconds(1))
        #expect(!backend.isAvailable(at: now + .milliseconds(2999)))
        #expect(backend.retryAt(after: now + .seconds(2)) == now + .seconds(3))
        backend.recordConnectSuccess()
        #expect(backend.isAvailable(at: now + .seconds(1)))
        #expect(backend.retryAt(after: now) == nil)
    }

    @Test("Retry-After: the time until the first back-off ends, at least a second; or the check interval")
    func retryAfter() {
        let backends = Self.backends([1, 1])
        let now = NIODeadline.now()
        let pool = Pool(
            name: "p",
            backends: backends,
            balancer: LeastConnectionsBalancer(),
            timeouts: UpstreamTimeouts(),
            retries: 0,
            healthCheck: nil
        )
        backends[0].recordConnectFailure(at: now)
        backends[1].recordConnectFailure(at: now)
        backends[1].recordConnectFailure(at: now)
        #expect(pool.retryAfterSeconds(now: now) == 1)
        var check = HealthCheckConfig()
        check.interval = .milliseconds(4500)
        let checked = Pool(
            name: "p",
            backends: backends,
            balancer: LeastConnectionsBalancer(),
            timeouts: UpstreamTimeouts(),
            retries: 0,
            healthCheck: check
        )
        #expect(checked.retryAfterSeconds(now: now) == 5)
    }
}
