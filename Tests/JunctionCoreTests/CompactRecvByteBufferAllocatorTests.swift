import NIOCore
import Testing

@testable import JunctionCore

/// The compact read-buffer sizing: NIO's adaptive policy, small enough to live inside a channel.
@Suite("Compact read-buffer allocator")
struct CompactRecvByteBufferAllocatorTests {
    @Test("It fits in an existential's inline buffer (three words), so a channel needs no box for it")
    func fitsInline() {
        #expect(MemoryLayout<CompactRecvByteBufferAllocator>.size <= 3 * MemoryLayout<Int>.size)
        #expect(MemoryLayout<AdaptiveRecvByteBufferAllocator>.size > 3 * MemoryLayout<Int>.size)
    }

    @Test(
        "It sizes buffers as NIO's AdaptiveRecvByteBufferAllocator does, read after read",
        arguments: [
            // (minimum, initial, maximum, bytes read by each read)
            (64, 256, 65536, [256, 512, 1024, 2048, 4096, 8192, 16384, 32768, 65536, 65536, 65536]),
            (64, 256, 16384, [300, 300, 300, 300, 300, 300]),  // full reads of a small buffer grow it, capped at 16 KiB
            (64, 256, 16384, [16384, 16384, 16384, 16384, 16384, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10]),
            (64, 256, 65536, [10, 10, 10, 10, 10, 10]),  // shrinks every second small read, down to the minimum
            (64, 256, 65536, [10, 256, 10, 256, 10, 256]),  // a full read in between resets the decrease
            (64, 256, 65536, [128, 128, 128, 128, 128]),  // exactly half: counts as small
            (0, 0, 0, [0, 1, 5]),  // degenerate sizes round like NIO's
            (100, 300, 5000, [300, 300, 300, 300, 300, 300, 300, 1, 1, 1, 1, 1, 1, 1, 1]),  // rounding of odd sizes
            (1 << 29, 1 << 29, 1 << 31, [1 << 29, 1 << 30, 1 << 30]),  // capped at 1 GiB
        ] as [(Int, Int, Int, [Int])]
    )
    func matchesNIO(minimum: Int, initial: Int, maximum: Int, reads: [Int]) {
        var compact = CompactRecvByteBufferAllocator(minimum: minimum, initial: initial, maximum: maximum)
        var nio = AdaptiveRecvByteBufferAllocator(minimum: minimum, initial: initial, maximum: maximum)
        #expect(compact.nextBufferSize() == nio.nextBufferSize())
        for (index, bytes) in reads.enumerated() {
            let compactMayGrow = compact.record(actualReadBytes: bytes)
            let nioMayGrow = nio.record(actualReadBytes: bytes)
            #expect(compactMayGrow == nioMayGrow, "read \(index) of \(bytes) bytes")
            #expect(compact.nextBufferSize() == nio.nextBufferSize(), "after read \(index) of \(bytes) bytes")
        }
    }

    @Test("The buffer it hands out has the next size's capacity")
    func bufferCapacity() {
        let allocator = CompactRecvByteBufferAllocator(minimum: 64, initial: 256, maximum: 16384)
        #expect(allocator.buffer(allocator: ByteBufferAllocator()).capacity == 256)
    }
}
