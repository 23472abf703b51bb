import NIOCore
import Testing

@testable import JunctionCore

/// Per-client limits: the keys clients are counted by, the token bucket and its expiry under an
/// injected clock, the shared tables' bounds, and what `check` says of the settings.
@Suite("Per-client limits")
struct ClientLimitsTests {
    // MARK: keys

    /// Two addresses and whether they are one client.
    struct KeyCase: Sendable, CustomTestStringConvertible {
        var first: String
        var second: String
        var same: Bool
        var testDescription: String { "\(self.first) vs \(self.second)" }
    }

    static let keyCases: [KeyCase] = [
        KeyCase(first: "127.0.0.2", second: "127.0.0.2", same: true),
        KeyCase(first: "127.0.0.2", second: "127.0.0.3", same: false),
        KeyCase(first: "192.0.2.7", second: "::ffff:192.0.2.7", same: true),
        KeyCase(first: "2001:db8:1:2::1", second: "2001:db8:1:2:ffff:ffff:ffff:ffff", same: true),
        KeyCase(first: "2001:db8:1:2::1", second: "2001:db8:1:3::1", same: false),
        KeyCase(first: "::1", second: "::2", same: true),
        KeyCase(first: "0.0.0.1", second: "::1", same: false),
        KeyCase(first: "255.255.255.255", second: "ff00::", same: false),
    ]

    @Test("IPv4 addresses count apart, IPv6 by /64, an IPv4-mapped address as its IPv4", arguments: Self.keyCases)
    func keys(_ pair: KeyCase) throws {
        let first = try #require(ClientKey(text: pair.first))
        let second = try #require(ClientKey(text: pair.second))
        #expect((first == second) == pair.same)
        #expect(first.value != ClientKey.empty && first.value != ClientKey.freed)
    }

    @Test("A socket address gives the same key as its text; garbage and UNIX sockets none")
    func socketKeys() throws {
        let v4 = try SocketAddress(ipAddress: "198.51.100.4", port: 443)
        let v6 = try SocketAddress(ipAddress: "2001:db8::9", port: 443)
        #expect(ClientKey(v4) == ClientKey(text: "198.51.100.4"))
        #expect(ClientKey(v6) == ClientKey(text: "2001:db8::1"))
        #expect(ClientKey(text: "not an address") == nil)
        #expect(ClientKey(text: "") == nil)
        #expect(ClientKey(try SocketAddress(unixDomainSocketPath: "/tmp/x")) == nil)
    }

    // MARK: the bucket

    /// A request at `at` (ms) and what the bucket says.
    struct Step: Sendable {
        var at: UInt64
        var allowed: Bool
        var retryAfter: Int? = nil
    }

    /// A bucket's settings and the requests it meets.
    struct BucketCase: Sendable, CustomTestStringConvertible {
        var name: String
        var rate: Double
        var burst: Int
        var steps: [Step]
        var testDescription: String { self.name }
    }

    static let bucketCases: [BucketCase] = [
        BucketCase(
            name: "1/s, burst 2: two at once, the third waits a second",
            rate: 1,
            burst: 2,
            steps: [
                Step(at: 0, allowed: true), Step(at: 0, allowed: true), Step(at: 0, allowed: false, retryAfter: 1),
                Step(at: 999, allowed: false, retryAfter: 1), Step(at: 1000, allowed: true),
                Step(at: 1000, allowed: false, retryAfter: 1), Step(at: 5000, allowed: true),
                Step(at: 5000, allowed: true), Step(at: 5000, allowed: false),
            ]
        ),
        BucketCase(
            name: "burst 0 is twice the rate",
            rate: 2,
            burst: 0,
            steps: [
                Step(at: 0, allowed: true), Step(at: 0, allowed: true), Step(at: 0, allowed: true),
                Step(at: 0, allowed: true), Step(at: 0, allowed: false, retryAfter: 1),
                Step(at: 500, allowed: true), Step(at: 500, allowed: false),
            ]
        ),
        BucketCase(
            name: "0.1/s: Retry-After rounds up to whole seconds",
            rate: 0.1,
            burst: 1,
            steps: [
                Step(at: 0, allowed: true), Step(at: 1, allowed: false, retryAfter: 10),
                Step(at: 9001, allowed: false, retryAfter: 1), Step(at: 10_000, allowed: true),
            ]
        ),
        BucketCase(
            name: "a steady client at the rate is never refused",
            rate: 10,
            burst: 1,
            steps: (0..<20).map { Step(at: UInt64($0) * 100, allowed: true) }
        ),
    ]

    @Test("The bucket allows bursts up to its size and refills at the rate", arguments: Self.bucketCases)
    func bucket(_ test: BucketCase) {
        let bucket = RateBucket(RequestRate(requestsPerSecond: test.rate, burst: test.burst))
        let rates = ClientRates(capacity: 64)
        let client = ClientKey(ipv4: 0x7F00_0002)
        let start: UInt64 = 1_000_000_000_000
        for (index, step) in test.steps.enumerated() {
            let wait = rates.take(for: client, bucket: bucket, now: start + step.at * 1_000_000)
            #expect((wait == nil) == step.allowed, "step \(index) at \(step.at) ms")
            if let retryAfter = step.retryAfter, let wait {
                #expect(RateBucket.retryAfterSeconds(wait) == retryAfter, "step \(index)")
            }
        }
    }

    @Test("Clients have buckets of their own")
    func bucketsApart() {
        let bucket = RateBucket(RequestRate(requestsPerSecond: 1, burst: 1))
        let rates = ClientRates(capacity: 64)
        let now: UInt64 = 5_000_000_000
        #expect(rates.take(for: ClientKey(ipv4: 1), bucket: bucket, now: now) == nil)
        #expect(rates.take(for: ClientKey(ipv4: 1), bucket: bucket, now: now) != nil)
        #expect(rates.take(for: ClientKey(ipv4: 2), bucket: bucket, now: now) == nil)
    }

    // MARK: expiry and bounds

    @Test("An idle bucket expires: the sweep frees it once full again, not before")
    func expiry() {
        let bucket = RateBucket(RequestRate(requestsPerSecond: 1, burst: 3))
        let rates = ClientRates(capacity: 64)
        let now: UInt64 = 10_000_000_000
        for client in 1...5 {
            for _ in 0..<3 { _ = rates.take(for: ClientKey(ipv4: UInt32(client)), bucket: bucket, now: now) }
        }
        #expect(rates.table.occupied == 5)
        #expect(rates.sweep(now: now + 2_999_999_999) == 0, "a bucket still refilling is kept")
        #expect(rates.table.occupied == 5)
        #expect(rates.sweep(now: now + 3_000_000_000) == 5)
        #expect(rates.table.occupied == 0)
        // Forgotten means full: the client starts over with a whole burst.
        for _ in 0..<3 {
            #expect(rates.take(for: ClientKey(ipv4: 1), bucket: bucket, now: now + 3_000_000_000) == nil)
        }
    }

    @Test("A flood of more clients than slots stays in the table's memory and still limits a busy client")
    func flood() {
        let bucket = RateBucket(RequestRate(requestsPerSecond: 1, burst: 2))
        let rates = ClientRates(capacity: 256)
        let now: UInt64 = 1_000_000_000
        let abuser = ClientKey(ipv4: 0x7F00_0002)
        #expect(rates.take(for: abuser, bucket: bucket, now: now) == nil)
        #expect(rates.take(for: abuser, bucket: bucket, now: now) == nil)
        var refusedAbuser = 0
        for client in 0..<10_000 {
            // A stream of distinct addresses, each with one request: idle-ish buckets.
            _ = rates.take(for: ClientKey(ipv4: 0x0A00_0000 + UInt32(client)), bucket: bucket, now: now + 1)
            if client % 100 == 0, rates.take(for: abuser, bucket: bucket, now: now + 1) != nil { refusedAbuser += 1 }
        }
        #expect(rates.table.capacity == 256)
        #expect(rates.table.occupied <= 256)
        // Eviction takes the bucket closest to full: the abuser's (empty) bucket survives most of
        // the flood, so most of its requests are refused.
        #expect(refusedAbuser >= 90, "refused \(refusedAbuser) of 100")
    }

    @Test("Connections and tunnels count to their limits apart; the last release frees the entry")
    func counts() throws {
        let counts = ClientCounts(capacity: 64)
        let client = ClientKey(ipv4: 7)
        var held: [Int] = []
        for _ in 0..<3 {
            guard case .held(let index) = counts.acquire(.connections, for: client, limit: 3) else {
                Issue.record("refused under the limit")
                return
            }
            held.append(index)
        }
        #expect(counts.acquire(.connections, for: client, limit: 3) == .refused)
        guard case .held(let tunnel) = counts.acquire(.tunnels, for: client, limit: 1) else {
            Issue.record("a tunnel refused under its limit")
            return
        }
        #expect(counts.acquire(.tunnels, for: client, limit: 1) == .refused)
        #expect(counts.count(.connections, for: client) == 3 && counts.count(.tunnels, for: client) == 1)
        #expect(counts.acquire(.connections, for: ClientKey(ipv4: 8), limit: 3) != .refused, "another client")
        counts.release(.connections, for: ClientKey(ipv4: 8), at: try #require(Self.slot(counts, ClientKey(ipv4: 8))))
        for index in held { counts.release(.connections, for: client, at: index) }
        #expect(counts.table.occupied == 1, "the tunnel holds the entry")
        counts.release(.tunnels, for: client, at: tunnel)
        #expect(counts.table.occupied == 0)
    }

    static func slot(_ counts: ClientCounts, _ client: ClientKey) -> Int? {
        counts.table.probe(client).found?.index
    }

    @Test("A full table lets a newcomer in uncounted; a client already counted is still limited")
    func fullWindow() {
        let counts = ClientCounts(capacity: 64)
        var held: [ClientKey] = []
        var untracked: [ClientKey] = []
        for client in 0..<200 {
            let key = ClientKey(ipv4: UInt32(client))
            switch counts.acquire(.connections, for: key, limit: 1) {
            case .held: held.append(key)
            case .untracked: untracked.append(key)
            case .refused: Issue.record("client \(client) refused at its first connection")
            }
        }
        #expect(held.count == counts.table.occupied && held.count <= 64)
        #expect(held.count >= 60, "the windows of 200 keys cover the table")
        #expect(!untracked.isEmpty)
        // Every counted client holds its one connection: a second is refused, table full or not.
        for key in held { #expect(counts.acquire(.connections, for: key, limit: 1) == .refused) }
        // Those let in uncounted are let in again (nothing counts them), never refused.
        for key in untracked.prefix(10) { #expect(counts.acquire(.connections, for: key, limit: 1) == .untracked) }
    }

    @Test("Many threads at once: exactly the limit is held, the rest refused; every release lands")
    func concurrent() async {
        let counts = ClientCounts(capacity: 1024)
        let client = ClientKey(ipv4: 42)
        let results = await withTaskGroup(of: [Int].self) { group in
            for _ in 0..<4 {
                group.addTask {
                    var held: [Int] = []
                    for _ in 0..<500 {
                        if case .held(let index) = counts.acquire(.tunnels, for: client, limit: 100) {
                            held.append(index)
                        }
                    }
                    return held
                }
            }
            var all: [[Int]] = []
            for await held in group { all.append(held) }
            return all
        }
        #expect(results.map(\.count).reduce(0, +) == 100, "exactly the limit held across threads")
        #expect(counts.count(.tunnels, for: client) == 100)
        await withTaskGroup(of: Void.self) { group in
            for held in results {
                group.addTask { for index in held { counts.release(.tunnels, for: client, at: index) } }
            }
        }
        #expect(counts.count(.tunnels, for: client) == 0)
        #expect(counts.table.occupied == 0)
    }

    @Test("The slowest rate with the largest burst stays in 64 bits, years ahead")
    func extremes() {
        let slow = RateBucket(RequestRate(requestsPerSecond: 0.001, burst: 1_000_000))
        #expect(slow.interval == 1_000_000_000_000)
        #expect(slow.tolerance == 1_000_000_000_000 * 1_000_000)
        let now: UInt64 = 100 * 365 * 86_400 * 1_000_000_000  // a century of uptime
        #expect(slow.decide(tat: nil, now: now) == .allow(tat: now + slow.interval))
        let clamped = RateBucket(interval: .max, size: .max)
        #expect(clamped.interval == 1 << 60 && clamped.tolerance == 1 << 60)
        #expect(clamped.decide(tat: now, now: now) == .allow(tat: now + (1 << 60)))
    }

    // MARK: settings

    @Test("limits.per_client and a route's limit are read, a reload keeps the tables")
    func settings() throws {
        let yaml = ConfigLoaderTests.valid
            .replacingOccurrences(
                of: "  shutdown_grace: 2m\n",
                with: """
                      shutdown_grace: 2m
                      per_client:
                        max_connections: 20
                        max_tunnels: 4
                        requests_per_second: 2.5

                    """
            )
            .replacingOccurrences(
                of: "    pool: monolith\n",
                with: "    pool: monolith\n    limit:\n      requests_per_second: 1\n      burst: 5\n"
            )
        let outcome = ConfigLoaderTests.load(yaml)
        #expect(outcome.errors.isEmpty, "\(outcome.errors)")
        let config = try #require(outcome.config)
        #expect(config.limits.perClient.maxConnections == 20)
        #expect(config.limits.perClient.maxTunnels == 4)
        #expect(config.limits.perClient.rate == RequestRate(requestsPerSecond: 2.5, burst: 0))
        #expect(config.limits.perClient.rate.size == 5)
        #expect(config.routes[1].limit == RequestRate(requestsPerSecond: 1, burst: 5))
        #expect(config.routes[0].limit == nil)
        let limiter = ClientLimiter(countsCapacity: 64, ratesCapacity: 64, routeCapacity: 64)
        let first = limiter.limits(for: config)
        let second = limiter.limits(for: config)
        #expect(first.perClient.counts === second.perClient.counts)
        #expect(first.perClient.rates === second.perClient.rates)
        #expect(first.routes["monolith"]?.rates === second.routes["monolith"]?.rates)
        #expect(first.routes["ddp"] == nil)
        #expect(!ClientLimiter().limits(for: JunctionConfig()).perClient.isOn)
    }

    /// A bad setting and the error `check` gives.
    struct BadCase: Sendable, CustomTestStringConvertible {
        var name: String
        var perClient: String?
        var routeLimit: String?
        var expected: String
        var testDescription: String { self.name }
    }

    static let badCases: [BadCase] = [
        BadCase(
            name: "unknown key",
            perClient: "    max_requests: 3",
            expected: "limits.per_client.max_requests: unknown key \"max_requests\""
        ),
        BadCase(
            name: "negative connections",
            perClient: "    max_connections: -1",
            expected: "limits.per_client.max_connections: must be between 0 and 1000000, got -1"
        ),
        BadCase(
            name: "rate not a number",
            perClient: "    requests_per_second: lots",
            expected: "limits.per_client.requests_per_second: expected a number, got \"lots\""
        ),
        BadCase(
            name: "a rate too small",
            perClient: "    requests_per_second: 0.0001",
            expected: "limits.per_client.requests_per_second: must be 0 (off) or at least 0.001, got 0.0001"
        ),
        BadCase(
            name: "burst without a rate",
            perClient: "    burst: 4",
            expected: "limits.per_client.burst: burst needs requests_per_second above 0"
        ),
        BadCase(
            name: "a route's limit without a rate",
            routeLimit: "      burst: 4",
            expected: "routes[1].limit: a route's limit needs requests_per_second above 0"
        ),
        BadCase(
            name: "a route's limit with another key",
            routeLimit: "      requests_per_second: 1\n      max_tunnels: 2",
            expected: "routes[1].limit.max_tunnels: unknown key \"max_tunnels\""
        ),
    ]

    @Test("check refuses bad limits with position and key path", arguments: Self.badCases)
    func errors(_ bad: BadCase) {
        var yaml = ConfigLoaderTests.valid
        if let perClient = bad.perClient {
            yaml = yaml.replacingOccurrences(
                of: "  shutdown_grace: 2m\n",
                with: "  shutdown_grace: 2m\n  per_client:\n" + perClient + "\n"
            )
        }
        if let routeLimit = bad.routeLimit {
            yaml = yaml.replacingOccurrences(
                of: "    pool: monolith\n",
                with: "    pool: monolith\n    limit:\n" + routeLimit + "\n"
            )
        }
        let outcome = ConfigLoaderTests.load(yaml)
        #expect(outcome.config == nil)
        let messages = outcome.errors.map(\.description)
        #expect(messages.contains { $0.hasPrefix("j.yaml:") && $0.contains(bad.expected) }, "got \(messages)")
    }

    @Test("A 429 carries Retry-After in whole seconds and the standard one-line body")
    func answer() {
        let failure = ProxyFailure.tooManyRequests(.requestRate, retryAfter: 3)
        let body = failure.body(requestID: "abc")
        #expect(
            body == "429 Too Many Requests: this client exceeds limits.per_client.requests_per_second (request abc)\n"
        )
        let head = failure.responseHead(bodyLength: body.utf8.count)
        #expect(head.status == .tooManyRequests)
        #expect(head.headers["Retry-After"] == ["3"])
        let tunnels = ProxyFailure.tooManyRequests(.tunnels, retryAfter: nil).responseHead(bodyLength: 1)
        #expect(tunnels.headers["Retry-After"].isEmpty)
    }
}
