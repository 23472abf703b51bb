/// A token bucket as the generic cell rate algorithm keeps it: one number per client, the
/// theoretical arrival time (TAT) of its next request, in nanoseconds of a monotonic clock.
///
/// A request at `now` conforms when `max(TAT, now) + interval - now <= size × interval`; it then
/// moves TAT on by one interval. This is exactly a bucket of `size` tokens refilled at one per
/// `interval` (full when TAT <= now, so such an entry is idle and can be forgotten), in one word
/// that a single compare-and-swap updates.
struct RateBucket: Sendable, Equatable {
    /// Nanoseconds per token.
    let interval: UInt64
    /// `size × interval`: how far ahead of now TAT may run.
    let tolerance: UInt64

    /// A bucket of `size` tokens, one back every `interval` nanoseconds. Both are capped at 2^60
    /// nanoseconds (36 years), so no sum with a clock reading can leave 64 bits (`check` refuses
    /// rates that would come near).
    init(interval: UInt64, size: Int) {
        let cap: UInt64 = 1 << 60
        self.interval = min(max(1, interval), cap)
        let (tolerance, overflow) = self.interval.multipliedReportingOverflow(by: UInt64(max(1, size)))
        self.tolerance = overflow ? cap : min(tolerance, cap)
    }

    /// What a request at `now` does to a bucket whose TAT is `tat` (nil: a new, full bucket).
    enum Decision: Equatable {
        /// It conforms; the bucket's TAT becomes this.
        case allow(tat: UInt64)
        /// Over the rate: a token comes back after this many nanoseconds.
        case refuse(waitNanoseconds: UInt64)
    }

    func decide(tat: UInt64?, now: UInt64) -> Decision {
        let next = max(tat ?? now, now) + self.interval
        let ahead = next - now
        if ahead <= self.tolerance { return .allow(tat: next) }
        return .refuse(waitNanoseconds: ahead - self.tolerance)
    }

    /// `Retry-After` for a wait: whole seconds, rounded up, at least 1.
    static func retryAfterSeconds(_ waitNanoseconds: UInt64) -> Int {
        max(1, Int((waitNanoseconds + 999_999_999) / 1_000_000_000))
    }
}
