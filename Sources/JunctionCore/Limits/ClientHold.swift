/// A WebSocket's count held for as long as the hold lives (the request, then its tunnel): not
/// copyable, so it is released exactly once however its owner ends.
struct ClientHold: ~Copyable {
    private let slot: ClientSlot

    init(_ slot: ClientSlot) {
        self.slot = slot
    }

    deinit {
        self.slot.release()
    }
}
