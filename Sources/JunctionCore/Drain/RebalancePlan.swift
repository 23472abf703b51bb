/// How many open tunnels each backend of a pool gives up in a rebalance: none while every
/// backend taking traffic is within 10% (at least one tunnel) of its weighted share of the pool's
/// tunnels; otherwise each backend above its share closes down to it, and the clients, as they
/// reconnect, land by least connections on the backends below.
enum RebalancePlan {
    /// One backend as the plan sees it.
    struct Entry: Equatable, Sendable {
        var tunnels: Int
        var weight: Int
        /// Takes new tunnels (healthy, not draining): only these share the pool's tunnels.
        var eligible: Bool
    }

    /// Tunnels to close per entry, in the entries' order.
    static func toClose(_ entries: [Entry]) -> [Int] {
        var result = Array(repeating: 0, count: entries.count)
        let eligible = entries.indices.filter { entries[$0].eligible }
        let total = eligible.reduce(0) { $0 + entries[$1].tunnels }
        let weights = eligible.reduce(0) { $0 + max(entries[$1].weight, 1) }
        guard eligible.count > 1, total > 0 else { return result }
        let shares = eligible.map { Double(total) * Double(max(entries[$0].weight, 1)) / Double(weights) }
        let balanced = zip(eligible, shares).allSatisfy { index, share in
            abs(Double(entries[index].tunnels) - share) <= max(1, share * 0.1)
        }
        guard !balanced else { return result }
        for (index, share) in zip(eligible, shares) {
            result[index] = max(0, entries[index].tunnels - Int(share.rounded()))
        }
        return result
    }
}
