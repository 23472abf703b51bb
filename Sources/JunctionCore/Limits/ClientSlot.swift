/// One count held in a `ClientCounts` table, released exactly once by its holder. (Laid out in
/// 21 bytes: an idle WebSocket's tunnel keeps one.)
struct ClientSlot: Sendable {
    let counts: ClientCounts
    let client: ClientKey
    let index: UInt32
    let kind: ClientCounts.Kind

    func release() {
        self.counts.release(self.kind, for: self.client, at: Int(self.index))
    }
}
