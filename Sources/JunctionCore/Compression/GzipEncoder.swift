import CZlib
import NIOCore

/// Streaming gzip for `compress: true` routes: each body part is deflated and flushed at once
/// (`Z_SYNC_FLUSH`), so a slow or long-lived response is never held back. One zlib stream per
/// compressed response, about 130 KiB (window 2^14, memLevel 7), and at most
/// `GzipBudget.limit` of them per event loop.
final class GzipEncoder {
    /// zlib keeps a pointer back to its `z_stream`: it must not move, so it lives on the heap.
    private let stream: UnsafeMutablePointer<z_stream>
    private let budget: GzipBudget
    private var open = false

    /// nil when the loop's budget is spent or zlib cannot start: the response goes uncompressed.
    init?(budget: GzipBudget) {
        guard budget.acquire() else { return nil }
        self.budget = budget
        self.stream = .allocate(capacity: 1)
        self.stream.initialize(to: z_stream())
        // Level 5: most of level 9's gain for a fraction of its CPU. windowBits 14 + 16: a gzip
        // wrapper around deflate with a 16 KiB window.
        let status = deflateInit2_(
            self.stream,
            5,
            Z_DEFLATED,
            14 + 16,
            7,
            Z_DEFAULT_STRATEGY,
            ZLIB_VERSION,
            Int32(MemoryLayout<z_stream>.size)
        )
        guard status == Z_OK else {
            self.stream.deallocate()
            budget.release()
            return nil
        }
        self.open = true
    }

    deinit {
        if self.open { deflateEnd(self.stream) }
        self.stream.deallocate()
        self.budget.release()
    }

    /// The compressed form of `input`, flushed; nil if zlib failed (the response cannot go on).
    func compress(_ input: ByteBuffer, allocator: ByteBufferAllocator) -> ByteBuffer? {
        self.run(input, flush: Z_SYNC_FLUSH, allocator: allocator)
    }

    /// The end of the gzip stream (the last deflate block and the trailer); nil if zlib failed.
    func finish(allocator: ByteBufferAllocator) -> ByteBuffer? {
        let output = self.run(ByteBuffer(), flush: Z_FINISH, allocator: allocator)
        if self.open {
            deflateEnd(self.stream)
            self.open = false
        }
        return output
    }

    private func run(_ input: ByteBuffer, flush: Int32, allocator: ByteBufferAllocator) -> ByteBuffer? {
        guard self.open else { return nil }
        let stream = self.stream
        var output = allocator.buffer(capacity: Int(deflateBound(stream, UInt(input.readableBytes))) + 64)
        var failed = false
        input.withUnsafeReadableBytes { source in
            // zlib never writes through next_in.
            stream.pointee.next_in = source.baseAddress.map {
                UnsafeMutablePointer(mutating: $0.assumingMemoryBound(to: Bytef.self))
            }
            stream.pointee.avail_in = UInt32(source.count)
            repeat {
                if output.writableBytes < 64 { output.reserveCapacity(minimumWritableBytes: 4096) }
                output.writeWithUnsafeMutableBytes(minimumWritableBytes: 64) { target in
                    stream.pointee.next_out = target.baseAddress?.assumingMemoryBound(to: Bytef.self)
                    stream.pointee.avail_out = UInt32(target.count)
                    let status = deflate(stream, flush)
                    failed = status != Z_OK && status != Z_BUF_ERROR && status != Z_STREAM_END
                    return target.count - Int(stream.pointee.avail_out)
                }
                // With output space left over, deflate has taken all the input and flushed it.
            } while !failed && stream.pointee.avail_out == 0
            stream.pointee.next_in = nil
            stream.pointee.avail_in = 0
        }
        return failed ? nil : output
    }
}
