import Synchronization

/// A fixed-size table of per-client entries shared by every event loop without a lock: each slot
/// is one 16-byte atomic pair (the client's key, a 64-bit value) changed only by a double-word
/// compare-and-swap, so a key and its value always change together and an update can never land on
/// a slot that another client took in the meantime.
///
/// Open addressing with linear probing, at most `window` slots from a key's home (seeded per
/// table): a lookup stops at the key, at a never-used slot or at the window's end. A freed slot
/// keeps the probe going and is reused by the next insert. The memory is fixed when the table is
/// made (`capacity` × 16 bytes) and never grows; what happens when a window is full is the
/// caller's choice (`ClientCounts`, `ClientRates`). Each probe step is a 16-byte atomic load,
/// which x86-64 does with a locked `cmpxchg16b`: a client's entry is usually at its home or next
/// to it, but a new client in a window crowded with freed slots reads up to 32.
///
/// Error bound: two threads inserting the same new key at the same instant can place it twice when
/// they see different first vacancies (a third thread freed a slot between their probes, or, for
/// buckets, the two clock readings disagree on whether an entry is idle); the two entries then
/// share that client's allowance (at most twice the limit) until one empties or expires. Every
/// other interleaving is exact.
final class ClientTable: @unchecked Sendable {
    /// Slots a probe looks at, from the key's home.
    static let window = 32

    let capacity: Int
    private let mask: Int
    /// Mixed into every key's home, fresh for each table (see `ClientKey.home`).
    private let seed = UInt64.random(in: .min ... .max)
    private let slots: UnsafeMutablePointer<Atomic<WordPair>>

    /// A table of `capacity` slots (rounded up to a power of two).
    init(capacity: Int) {
        var size = 64
        while size < capacity { size <<= 1 }
        self.capacity = size
        self.mask = size - 1
        self.slots = .allocate(capacity: size)
        for index in 0..<size {
            (self.slots + index).initialize(to: Atomic(WordPair(first: UInt(ClientKey.empty), second: 0)))
        }
    }

    deinit {
        self.slots.deinitialize(count: self.capacity)
        self.slots.deallocate()
    }

    /// A slot's key and value as one observation.
    struct Entry: Equatable {
        var key: UInt64
        var value: UInt64

        var isFree: Bool { self.key == ClientKey.empty || self.key == ClientKey.freed }

        fileprivate init(_ pair: WordPair) {
            self.key = UInt64(pair.first)
            self.value = UInt64(pair.second)
        }

        init(key: UInt64, value: UInt64) {
            self.key = key
            self.value = value
        }

        fileprivate var pair: WordPair { WordPair(first: UInt(self.key), second: UInt(self.value)) }
    }

    /// What a probe for a key found.
    struct Probe {
        /// The key's slot and entry, if present.
        var found: (index: Int, entry: Entry)?
        /// Where an insert would go (nil: the window has no room).
        var vacancy: (index: Int, entry: Entry)?
    }

    /// Looks for `key` in its window. Without `expiry`, only free slots are vacancies. With it, the
    /// values are times: an entry whose value is at or before `expiry` is idle and may be taken too,
    /// and when none is, the entry with the earliest value is (evicted).
    @inline(__always)
    func probe(_ key: ClientKey, expiry: UInt64? = nil) -> Probe {
        let home = key.home(mask: self.mask, seed: self.seed)
        var vacancy: (index: Int, entry: Entry)?
        var earliest: (index: Int, entry: Entry)?
        for step in 0..<Self.window {
            let index = (home + step) & self.mask
            let entry = self.load(index)
            if entry.key == key.value { return Probe(found: (index, entry), vacancy: nil) }
            if entry.isFree {
                if vacancy == nil { vacancy = (index, entry) }
                if entry.key == ClientKey.empty { break }
            } else if let expiry {
                if entry.value <= expiry {
                    if vacancy == nil { vacancy = (index, entry) }
                } else if earliest == nil || entry.value < earliest!.entry.value {
                    earliest = (index, entry)
                }
            }
        }
        return Probe(found: nil, vacancy: vacancy ?? earliest)
    }

    /// The entry in slot `index`.
    @inline(__always)
    func load(_ index: Int) -> Entry {
        Entry(self.slots[index].load(ordering: .acquiring))
    }

    /// Replaces slot `index`'s entry with `desired` if it still is `expected`; else the entry
    /// there now.
    @inline(__always)
    func replace(_ index: Int, expected: Entry, with desired: Entry) -> Entry? {
        let (exchanged, original) = self.slots[index].compareExchange(
            expected: expected.pair,
            desired: desired.pair,
            ordering: .acquiringAndReleasing
        )
        return exchanged ? nil : Entry(original)
    }

    /// Entries in use (for the status page and tests; a scan, not for the request path).
    var occupied: Int {
        (0..<self.capacity).reduce(0) { count, index in count + (self.load(index).isFree ? 0 : 1) }
    }
}
