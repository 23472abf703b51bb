import Logging
import NIOCore
import NIOHTTP1
import Testing

@testable import JunctionCore

/// Runtime control of backends, as pure logic: WebSocket frame boundaries, the rebalance plan,
/// when `rebalance: auto` fires, and what the admin API changes on a backend (and keeps across
/// reloads).
@Suite("Drain and rebalance")
struct DrainTests {
    // MARK: WebSocketFrameTracker

    /// A byte stream from the backend and where it leaves the tracker.
    struct FrameCase: CustomTestStringConvertible, Sendable {
        var name: String
        var bytes: [UInt8]
        var betweenFrames: Bool
        var sawClose = false
        var lost = false
        var testDescription: String { self.name }
    }

    static let frameCases: [FrameCase] = [
        FrameCase(name: "nothing yet", bytes: [], betweenFrames: true),
        FrameCase(name: "one small text frame", bytes: [0x81, 0x02, 0x68, 0x69], betweenFrames: true),
        FrameCase(name: "an empty frame", bytes: [0x89, 0x00], betweenFrames: true),
        FrameCase(name: "half a header", bytes: [0x81], betweenFrames: false),
        FrameCase(name: "inside a payload", bytes: [0x81, 0x05, 0x68], betweenFrames: false),
        FrameCase(
            name: "16-bit length, whole",
            bytes: [0x82, 0x7E, 0x01, 0x00] + Array(repeating: 0, count: 256),
            betweenFrames: true
        ),
        FrameCase(
            name: "16-bit length, one byte short",
            bytes: [0x82, 0x7E, 0x01, 0x00] + Array(repeating: 0, count: 255),
            betweenFrames: false
        ),
        FrameCase(
            name: "64-bit length, whole",
            bytes: [0x82, 0x7F, 0, 0, 0, 0, 0, 1, 0, 0] + Array(repeating: 0, count: 65536),
            betweenFrames: true
        ),
        FrameCase(name: "64-bit length, header cut", bytes: [0x82, 0x7F, 0, 0, 0], betweenFrames: false),
        FrameCase(
            name: "masked frame (a client's)",
            bytes: [0x81, 0x82, 1, 2, 3, 4, 0x69, 0x6B],
            betweenFrames: true
        ),
        FrameCase(name: "masked header cut in the key", bytes: [0x81, 0x82, 1, 2], betweenFrames: false),
        FrameCase(
            name: "fragments and a ping between them",
            bytes: [0x01, 0x01, 0x61, 0x89, 0x00, 0x80, 0x01, 0x62],
            betweenFrames: true
        ),
        FrameCase(name: "the backend's close", bytes: [0x88, 0x02, 0x03, 0xE8], betweenFrames: true, sawClose: true),
        FrameCase(
            name: "a length with the top bit set",
            bytes: [0x82, 0x7F, 0x80, 0, 0, 0, 0, 0, 0, 0, 0x81, 0x00],
            betweenFrames: false,
            lost: true
        ),
    ]

    @Test("Frame boundaries are followed from the headers alone, however the bytes are cut", arguments: frameCases)
    func frameTracker(_ test: FrameCase) {
        var whole = WebSocketFrameTracker()
        whole.observe(ByteBuffer(bytes: test.bytes))
        #expect(whole.isBetweenFrames == test.betweenFrames)
        #expect(whole.sawClose == test.sawClose)
        #expect((whole.phase == .lost) == test.lost)
        // Cut in two at every point, and byte by byte: the same place.
        for cut in 0...test.bytes.count {
            var split = WebSocketFrameTracker()
            split.observe(ByteBuffer(bytes: test.bytes[..<cut]))
            split.observe(ByteBuffer(bytes: test.bytes[cut...]))
            #expect(split == whole, "cut at \(cut)")
        }
        var bytewise = WebSocketFrameTracker()
        for byte in test.bytes { bytewise.observe(ByteBuffer(bytes: [byte])) }
        #expect(bytewise == whole)
    }

    @Test("The close frame Junction sends: unmasked, FIN, opcode 8, the code, a reason cut to fit")
    func closeFrame() {
        #expect(WebSocketFrameTracker.closeFrame(code: 1001, reason: "") == [0x88, 0x02, 0x03, 0xE9])
        let long = WebSocketFrameTracker.closeFrame(code: 1001, reason: String(repeating: "x", count: 300))
        #expect(long.count == 127 && long[1] == 125, "a control frame's payload is at most 125 bytes")
        var tracker = WebSocketFrameTracker()
        tracker.observe(ByteBuffer(bytes: long))
        #expect(tracker.isBetweenFrames && tracker.sawClose)
    }

    // MARK: OpenTunnels

    @Test("Open tunnels come out oldest first, closed ones skipped; the queue stays bounded under churn")
    func openTunnels() {
        var tunnels = OpenTunnels<String>()
        for id in UInt64(1)...5 { tunnels.add("t\(id)", id: id) }
        tunnels.remove(1)
        tunnels.remove(3)
        #expect(tunnels.oldestID() == 2)
        #expect(tunnels.takeOldest()?.target == "t2")
        #expect(tunnels.takeOldest()?.target == "t4", "3 closed by itself meanwhile")
        tunnels.add("t6", id: 6)
        #expect(tunnels.takeOldest()?.id == 5)
        #expect(tunnels.takeOldest()?.id == 6)
        #expect(tunnels.takeOldest() == nil && tunnels.count == 0)

        // A backend whose tunnels open and close by the thousand, never drained: no growth.
        var churn = OpenTunnels<Int>()
        churn.add(0, id: 1)
        for id in UInt64(2)...100_000 {
            churn.add(Int(id), id: id)
            churn.remove(id)
        }
        #expect(churn.count == 1 && churn.queued < 200, "\(churn.queued) ids queued")
        #expect(churn.takeOldest()?.id == 1)
    }

    // MARK: RebalancePlan

    /// Tunnels and weights of a pool, and what a rebalance closes on each backend.
    struct PlanCase: CustomTestStringConvertible, Sendable {
        var name: String
        var entries: [RebalancePlan.Entry]
        var toClose: [Int]
        var testDescription: String { self.name }
    }

    static func entry(_ tunnels: Int, weight: Int = 1, eligible: Bool = true) -> RebalancePlan.Entry {
        RebalancePlan.Entry(tunnels: tunnels, weight: weight, eligible: eligible)
    }

    static let planCases: [PlanCase] = [
        PlanCase(name: "20/0 closes 10", entries: [entry(20), entry(0)], toClose: [10, 0]),
        PlanCase(name: "balanced within 10%", entries: [entry(105), entry(95)], toClose: [0, 0]),
        PlanCase(name: "one tunnel of slack at least", entries: [entry(3), entry(2)], toClose: [0, 0]),
        PlanCase(name: "3/0 moves one", entries: [entry(3), entry(0)], toClose: [1, 0]),
        PlanCase(name: "weights 3:1", entries: [entry(0, weight: 3), entry(40)], toClose: [0, 30]),
        PlanCase(name: "three backends", entries: [entry(30), entry(0), entry(0)], toClose: [20, 0, 0]),
        PlanCase(
            name: "a draining or down backend neither shares nor gives",
            entries: [entry(20), entry(0), entry(50, eligible: false)],
            toClose: [10, 0, 0]
        ),
        PlanCase(name: "a single backend", entries: [entry(20)], toClose: [0]),
        PlanCase(name: "no tunnels", entries: [entry(0), entry(0)], toClose: [0, 0]),
        PlanCase(
            name: "only one eligible",
            entries: [entry(20), entry(0, eligible: false)],
            toClose: [0, 0]
        ),
    ]

    @Test("A rebalance closes, on each backend above its weighted share, down to the share", arguments: planCases)
    func rebalancePlan(_ test: PlanCase) {
        #expect(RebalancePlan.toClose(test.entries) == test.toClose)
    }

    // MARK: AutoRebalanceWatch

    /// Availability samples of one backend (one per second) and the seconds at which it triggers.
    struct WatchCase: CustomTestStringConvertible, Sendable {
        var name: String
        var available: [Bool]
        var triggers: [Int]
        var rebalances = true
        /// Seconds before which the caller is busy (an earlier rebalance still closing) and leaves
        /// the event due.
        var busyUntil = 0
        var testDescription: String { self.name }
    }

    static let watchCases: [WatchCase] = [
        WatchCase(
            name: "joins and stays: once, after settle",
            available: Array(repeating: true, count: 10),
            triggers: [3]
        ),
        WatchCase(
            name: "flips every second: never",
            available: (0..<20).map { $0 % 2 == 0 },
            triggers: []
        ),
        WatchCase(
            name: "comes back within the cooldown: not again",
            available: [true, true, true, true, false, true, true, true, true, true],
            triggers: [3]
        ),
        WatchCase(
            name: "a rebalance that moved nothing starts no cooldown",
            available: [true, true, true, true, false, true, true, true, true, true],
            triggers: [3, 8],
            rebalances: false
        ),
        WatchCase(
            name: "an event during a rebalance in progress waits for it, not lost",
            available: Array(repeating: true, count: 10),
            triggers: [6],
            busyUntil: 6
        ),
    ]

    @Test(
        "rebalance: auto fires once per join or return to health, after settle, never for flapping",
        arguments: watchCases
    )
    func autoRebalanceWatch(_ test: WatchCase) {
        var watch = AutoRebalanceWatch<Int>(cooldown: .seconds(60))
        var triggers: [Int] = []
        for (second, available) in test.available.enumerated() {
            let now = NIODeadline.uptimeNanoseconds(UInt64(second + 1) * 1_000_000_000)
            let due = watch.observe([(key: 1, available: available)], now: now, settle: .seconds(3))
            if !due.isEmpty, second >= test.busyUntil {
                triggers.append(second)
                watch.settle(1, rebalanced: test.rebalances, at: now)
            }
        }
        #expect(triggers == test.triggers)
    }

    // MARK: TunnelDrainer

    @Test("With nothing to close the drainer sleeps its idle poll, not its pacing interval")
    func idleDrainerSleeps() {
        let registry = BackendRegistry()
        let pool = registry.backends(named: "ddp")
        pool.update([BackendRegistryTests.member(3001), BackendRegistryTests.member(3002)], healthCheck: nil)
        pool.setDrainPolicy(Backends.DrainPolicy(rate: 20, autoRebalance: true))
        pool.all[0].setDrain(.admin)
        let drainer = TunnelDrainer(registry: registry, logger: Logger(label: "test"))
        var now = NIODeadline.now()
        for _ in 0..<5 {
            #expect(drainer.step(now: now) == TunnelDrainer.idlePoll)
            now = now + .milliseconds(100)
        }
        #expect(drainer.rebalance(pool, now: now) == 0, "no tunnels: nothing to move")
    }

    // MARK: Backend state across reloads

    @Test(
        "Admin drain and weight stay through a reload that keeps the backend; a removed backend drains and can come back"
    )
    func adminStateAcrossReloads() {
        let pool = Backends(poolName: "ddp")
        pool.update([BackendRegistryTests.member(3001), BackendRegistryTests.member(3002)], healthCheck: nil)
        let (first, second) = (pool.all[0], pool.all[1])
        first.setDrain(.admin)
        second.setRuntimeWeight(7)
        #expect(!first.isAvailable(at: .now()) && first.isHealthy(at: .now()), "drained, still healthy")
        #expect(first.stateDescription == "drained", "no tunnels open")

        // The reload changes the configured weights: the runtime weight still wins.
        let change = pool.update(
            [BackendRegistryTests.member(3001, weight: 2), BackendRegistryTests.member(3002, weight: 4)],
            healthCheck: nil
        )
        #expect(change.reweighted.count == 2)
        #expect(pool.all[0] === first && first.drainState == .admin && first.weight == 2)
        #expect(pool.all[1] === second && second.weight == 7 && second.configuredWeight == 4)

        // Dropped: it drains (and, without tunnels, leaves at once).
        let dropped = pool.update([BackendRegistryTests.member(3001, weight: 2)], healthCheck: nil)
        #expect(dropped.removed.map(\.label) == ["127.0.0.1:3002"])
        #expect(second.drainState == .removed)
        #expect(pool.departed.isEmpty, "no tunnels to wait for")
    }

    // MARK: Admin writes

    @Test(
        "Write paths: pool and backend, percent-decoded; anything else is not a write",
        arguments: [
            ("/pools/ddp/rebalance", AdminWrites.Target.rebalance(pool: "ddp")),
            (
                "/pools/ddp/backends/127.0.0.1:3001/drain",
                .backend(pool: "ddp", address: "127.0.0.1:3001", action: .drain)
            ),
            (
                "/pools/ddp/backends/%5B::1%5D:3001/enable",
                .backend(pool: "ddp", address: "[::1]:3001", action: .enable)
            ),
            ("/pools/my%20pool/backends/a:1/weight", .backend(pool: "my pool", address: "a:1", action: .weight)),
            ("/pools/ddp/backends/a:1/explode", nil),
            ("/pools/ddp", nil),
            ("/pools//rebalance", nil),
            ("/pools/ddp/backends/a:1/drain/", nil),
            ("/pools/%zz/rebalance", nil),
            ("/status", nil),
        ] as [(String, AdminWrites.Target?)]
    )
    func writePaths(_ path: String, _ target: AdminWrites.Target?) {
        #expect(AdminWrites.target(of: path) == target)
    }

    @Test(
        "Bearer tokens: the scheme in any case, compared whole",
        arguments: [
            ("Bearer 0123456789abcdef", true),
            ("bearer 0123456789abcdef", true),
            ("Bearer  0123456789abcdef", true),
            ("Bearer 0123456789abcde", false),
            ("Bearer 0123456789abcdefg", false),
            ("Bearer 0123456789abcdeF", false),
            ("Basic 0123456789abcdef", false),
            ("0123456789abcdef", false),
            ("Bearer ", false),
        ]
    )
    func bearer(_ header: String, _ accepted: Bool) {
        let token = AdminToken("0123456789abcdef")
        let presented = AdminWrites.bearerToken(HTTPHeaders([("Authorization", header)]))
        #expect((presented.map { token.matches($0) } ?? false) == accepted)
    }

    @Test(
        "The weight body: {\"weight\": N} with N from 1 to 100",
        arguments: [
            ("{\"weight\": 3}", 3), ("{\"weight\":100}", 100), ("{\"weight\": 0}", nil), ("{\"weight\": 101}", nil),
            ("{\"weight\": 2.5}", nil), ("{\"weight\": \"3\"}", nil), ("", nil), ("{}", nil), ("[3]", nil),
        ] as [(String, Int?)]
    )
    func weightBody(_ body: String, _ weight: Int?) {
        #expect(AdminWrites.weight(in: ByteBuffer(string: body)) == weight)
    }
}
