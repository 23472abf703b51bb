/// A client read a front holds back while the request cannot go on (the upstream cannot take more
/// body, a pipelined request waits its turn) and lets go once it can: the client-side half of the
/// proxy's backpressure. It only decides; the front calls `context.read()` itself, outside any
/// access to this value (a read can deliver data, and so re-enter the front, at once).
struct HeldRead {
    private var pending = false

    /// A read is wanted: whether to pass it on now (else it is held).
    mutating func passes(hold: Bool) -> Bool {
        if hold { self.pending = true }
        return !hold
    }

    /// The reason to hold is gone: whether a held read should go out now.
    mutating func release() -> Bool {
        defer { self.pending = false }
        return self.pending
    }
}
