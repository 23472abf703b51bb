/// Concurrent connections and WebSockets per client, in a `ClientTable` whose value packs both
/// counts (connections in the low 32 bits, tunnels in the high 32).
///
/// An entry lives while a count is above zero and is freed by the release that empties it, so it
/// needs no expiry. A client whose window is full of clients with open connections is let in
/// uncounted (`untracked`): refusing it would shut a newcomer out for what others hold, and the
/// table's size (`capacity`, far above the open-file limit) makes that take more open connections
/// than a process can hold.
final class ClientCounts: Sendable {
    /// What is counted.
    enum Kind: Sendable {
        case connections
        case tunnels

        fileprivate var unit: UInt64 { self == .connections ? 1 : 1 << 32 }

        fileprivate func count(in value: UInt64) -> UInt64 {
            self == .connections ? value & 0xFFFF_FFFF : value >> 32
        }
    }

    /// What an acquire got.
    enum Admission: Equatable, Sendable {
        /// Counted in slot `index`: release it there.
        case held(index: Int)
        /// The client is at its limit.
        case refused
        /// No room to count it: let in, not counted.
        case untracked
    }

    let table: ClientTable

    init(capacity: Int = 65_536) {
        self.table = ClientTable(capacity: capacity)
    }

    /// Counts one more `kind` for `client` unless it already holds `limit`.
    func acquire(_ kind: Kind, for client: ClientKey, limit: Int) -> Admission {
        // A compare-and-swap fails only when another thread changed the same slot, so every retry
        // follows another thread's progress (lock-free): retried until it settles.
        while true {
            let probe = self.table.probe(client)
            if let (index, entry) = probe.found {
                if kind.count(in: entry.value) >= UInt64(limit) { return .refused }
                let desired = ClientTable.Entry(key: client.value, value: entry.value + kind.unit)
                if self.table.replace(index, expected: entry, with: desired) == nil { return .held(index: index) }
                continue
            }
            guard let (index, entry) = probe.vacancy else { return .untracked }
            let desired = ClientTable.Entry(key: client.value, value: kind.unit)
            if self.table.replace(index, expected: entry, with: desired) == nil { return .held(index: index) }
        }
    }

    /// Uncounts one `kind` of `client` held in slot `index`; the entry is freed when both counts
    /// are zero. (Held counts keep the entry in place: nothing else frees or moves it.)
    func release(_ kind: Kind, for client: ClientKey, at index: Int) {
        var entry = self.table.load(index)
        while true {
            precondition(entry.key == client.value && kind.count(in: entry.value) > 0, "a released count was not held")
            let rest = entry.value - kind.unit
            let desired =
                rest == 0
                ? ClientTable.Entry(key: ClientKey.freed, value: 0)
                : ClientTable.Entry(key: client.value, value: rest)
            guard let now = self.table.replace(index, expected: entry, with: desired) else { return }
            entry = now
        }
    }

    /// `client`'s current count of `kind` (tests, status).
    func count(_ kind: Kind, for client: ClientKey) -> Int {
        self.table.probe(client).found.map { Int(kind.count(in: $0.entry.value)) } ?? 0
    }
}
