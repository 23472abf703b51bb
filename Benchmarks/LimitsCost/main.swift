// What the per-client limits cost on the request path, timed on the real table code (compiled
// with -O by Benchmarks/limits_cost.sh): a request's checks with every limit on (a clock read, the
// client's bucket and its route's), and a counted connection or WebSocket (acquire and release).
// One thread alone, then two threads updating the same client at once (every request from one
// address: the worst case for sharing a slot).
import Dispatch
import Glibc

func now() -> UInt64 {
    var time = timespec()
    clock_gettime(CLOCK_MONOTONIC, &time)
    return UInt64(time.tv_sec) * 1_000_000_000 + UInt64(time.tv_nsec)
}

let operations = Int(CommandLine.arguments.dropFirst().first ?? "") ?? 5_000_000
let rates = ClientRates(capacity: 65_536)
let route = ClientRates(capacity: 16_384)
let counts = ClientCounts(capacity: 65_536)
// A bucket that never runs dry, so every request takes the full path (an update, not a refusal).
let bucket = RateBucket(interval: 1, size: 1_000_000_000)
// Other clients in the tables, as under load.
for index in 0..<20_000 {
    _ = rates.take(for: ClientKey(ipv4: UInt32(truncatingIfNeeded: index &* 2_654_435_761)), bucket: bucket, now: now())
}

func requests(_ client: ClientKey, _ count: Int) -> Int {
    var refused = 0
    for _ in 0..<count {
        let time = now()
        if rates.take(for: client, bucket: bucket, now: time) != nil { refused += 1 }
        if route.take(for: client, bucket: bucket, now: time) != nil { refused += 1 }
    }
    return refused
}

func tunnels(_ client: ClientKey, _ count: Int) {
    for _ in 0..<count {
        if case .held(let index) = counts.acquire(.tunnels, for: client, limit: 1_000_000) {
            counts.release(.tunnels, for: client, at: index)
        }
    }
}

func report(_ what: String, _ body: () -> Void) {
    let start = now()
    body()
    let nanoseconds = Double(now() - start) / Double(operations)
    print(
        String(repeating: " ", count: max(0, 8 - "\(Int(nanoseconds))".count))
            + "\(Int(nanoseconds.rounded())) ns  \(what)"
    )
}

let client = ClientKey(ipv4: 0x7F00_0001)
report("a request, every limit on (clock, client bucket, route bucket), one thread") {
    precondition(requests(client, operations) == 0)
}
report("a counted connection or WebSocket (acquire and release), one thread") { tunnels(client, operations) }
report("a request, two threads at once on the same client (per request, wall time / all requests)") {
    DispatchQueue.concurrentPerform(iterations: 2) { _ in _ = requests(client, operations / 2) }
}
report("a counted WebSocket, two threads at once on the same client") {
    DispatchQueue.concurrentPerform(iterations: 2) { _ in tunnels(client, operations / 2) }
}
// The worst case: a flood of new addresses into a table every slot of which was used and freed,
// so each probe reads its whole window before it takes a slot (or evicts, once the table is full).
let churned = ClientRates(capacity: 65_536)
let start = now()
for index in 0..<(2 * 65_536) {
    _ = churned.take(for: ClientKey(ipv4: UInt32(index)), bucket: bucket, now: start)
}
churned.sweep(now: start + 2_000_000_000)
report("a new address's first request, table of freed slots then full (a flood of new addresses)") {
    for index in 0..<operations {
        _ = churned.take(for: ClientKey(ipv4: 0x8000_0000 + UInt32(index)), bucket: bucket, now: start + 3_000_000_000)
    }
}
precondition(counts.table.occupied == 0, "every count released")
