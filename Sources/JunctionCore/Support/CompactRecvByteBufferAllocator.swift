import NIOCore

/// NIO's adaptive read-buffer sizing (`AdaptiveRecvByteBufferAllocator`: powers of two, double
/// after a read that filled the buffer, halve after two reads in a row that used half or less),
/// stored in 13 bytes instead of 33.
///
/// Why: a channel keeps its allocator in an existential, whose inline buffer holds 24 bytes. NIO's
/// own struct does not fit, so every socket carried a separately allocated ~56-byte box for it,
/// 110 bytes of each idle WebSocket tunnel. This one fits inline.
struct CompactRecvByteBufferAllocator: RecvByteBufferAllocator {
    let minimum: UInt32
    let maximum: UInt32
    private var next: UInt32
    private var decreaseNow = false

    /// `minimum` and `initial` are rounded down to a power of two and `maximum` up, as NIO does;
    /// sizes are capped at 1 GiB.
    init(minimum: Int, initial: Int, maximum: Int) {
        precondition(minimum >= 0 && initial >= minimum && maximum >= initial, "\(minimum) \(initial) \(maximum)")
        let cap = 1 << 30
        self.minimum = UInt32(Self.previousPowerOf2(min(minimum, cap)))
        self.maximum = UInt32(Self.nextPowerOf2(min(maximum, cap)))
        self.next = UInt32(Self.previousPowerOf2(min(initial, cap)))
    }

    func buffer(allocator: ByteBufferAllocator) -> ByteBuffer {
        allocator.buffer(capacity: Int(self.next))
    }

    func nextBufferSize() -> Int? {
        Int(self.next)
    }

    mutating func record(actualReadBytes: Int) -> Bool {
        let lower = self.next >> 1
        let upper = self.next << 1  // at most 2 GiB: `next` is at most 1 GiB
        if actualReadBytes <= Int(lower) && lower >= self.minimum {
            if self.decreaseNow {
                self.next = lower
                self.decreaseNow = false
            } else {
                self.decreaseNow = true
            }
            return false
        }
        self.decreaseNow = false
        if actualReadBytes >= Int(self.next) && upper <= self.maximum && upper != self.next {
            self.next = upper
            return true
        }
        return false
    }

    /// The largest power of two at most `n` (0 and 1 stay as they are).
    private static func previousPowerOf2(_ n: Int) -> Int {
        n <= 1 ? n : 1 << (Int.bitWidth - 1 - n.leadingZeroBitCount)
    }

    /// The smallest power of two at least `n` (1 for 0, as NIO rounds it).
    private static func nextPowerOf2(_ n: Int) -> Int {
        n <= 1 ? 1 : 1 << (Int.bitWidth - (n - 1).leadingZeroBitCount)
    }
}
