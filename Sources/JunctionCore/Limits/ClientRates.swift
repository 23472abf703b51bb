/// One request rate per client (`RateBucket`) in a `ClientTable` whose value is the bucket's TAT.
///
/// An entry whose bucket is full again (TAT at or before now) is idle: the next insert that meets
/// it in its window takes its slot, so idle clients expire without a sweep. When a window holds
/// only busy buckets, the one closest to full is evicted: under a flood of more distinct
/// addresses than the table holds, an evicted client starts again with a full bucket (at worst
/// one extra burst), and memory stays `capacity` × 16 bytes.
final class ClientRates: Sendable {
    let table: ClientTable

    init(capacity: Int = 65_536) {
        self.table = ClientTable(capacity: capacity)
    }

    /// Takes a token from `client`'s bucket at `now`: nil when the request conforms, else the
    /// nanoseconds until it would.
    func take(for client: ClientKey, bucket: RateBucket, now: UInt64) -> UInt64? {
        // Retried until a compare-and-swap takes: each failure follows another thread's update.
        while true {
            let probe = self.table.probe(client, expiry: now)
            let index: Int
            let entry: ClientTable.Entry
            let tat: UInt64?
            if let found = probe.found {
                (index, entry, tat) = (found.index, found.entry, found.entry.value)
            } else if let vacancy = probe.vacancy {
                (index, entry, tat) = (vacancy.index, vacancy.entry, nil)
            } else {
                return nil
            }
            switch bucket.decide(tat: tat, now: now) {
            case .refuse(let wait):
                return wait
            case .allow(let next):
                let desired = ClientTable.Entry(key: client.value, value: next)
                if self.table.replace(index, expected: entry, with: desired) == nil { return nil }
            }
        }
    }

    /// Frees every entry whose bucket is full again at `now` (off the data path: a scan of the
    /// whole table); how many it freed.
    @discardableResult
    func sweep(now: UInt64) -> Int {
        var freed = 0
        for index in 0..<self.table.capacity {
            let entry = self.table.load(index)
            guard !entry.isFree, entry.value <= now else { continue }
            let free = ClientTable.Entry(key: ClientKey.freed, value: 0)
            if self.table.replace(index, expected: entry, with: free) == nil { freed += 1 }
        }
        return freed
    }
}
