import CZlib
import NIOCore

/// Streaming gzip for `compress: true` routes: each body part is deflated and flushed at once
/// (`Z_SYNC_FLUSH`), so a slow or long-lived response is never held back, and memory stays one
/// zlib stream per response.
final class GzipEncoder {
    private var stream = z_stream()
    private var open = false

    /// Level 5: most of level 9's gain for a fraction of its CPU.
    init?(level: Int32 = 5) {
        // windowBits 15 + 16: a gzip wrapper, not raw deflate or zlib.
        let status = deflateInit2_(
            &self.stream,
            level,
            Z_DEFLATED,
            15 + 16,
            8,
            Z_DEFAULT_STRATEGY,
            ZLIB_VERSION,
            Int32(MemoryLayout<z_stream>.size)
        )
        guard status == Z_OK else { return nil }
        self.open = true
    }

    deinit {
        if self.open { deflateEnd(&self.stream) }
    }

    /// The compressed form of `input`, flushed.
    func compress(_ input: ByteBuffer, allocator: ByteBufferAllocator) -> ByteBuffer {
        self.run(input, flush: Z_SYNC_FLUSH, allocator: allocator)
    }

    /// The end of the gzip stream (the last deflate block and the trailer).
    func finish(allocator: ByteBufferAllocator) -> ByteBuffer {
        let output = self.run(ByteBuffer(), flush: Z_FINISH, allocator: allocator)
        deflateEnd(&self.stream)
        self.open = false
        return output
    }

    private func run(_ input: ByteBuffer, flush: Int32, allocator: ByteBufferAllocator) -> ByteBuffer {
        guard self.open else { return ByteBuffer() }
        var input = input
        var output = allocator.buffer(capacity: Int(deflateBound(&self.stream, UInt(input.readableBytes))) + 64)
        input.withUnsafeMutableReadableBytes { source in
            self.stream.next_in = source.baseAddress?.assumingMemoryBound(to: Bytef.self)
            self.stream.avail_in = UInt32(source.count)
            repeat {
                if output.writableBytes < 64 { output.reserveCapacity(minimumWritableBytes: 4096) }
                output.writeWithUnsafeMutableBytes(minimumWritableBytes: 64) { target in
                    self.stream.next_out = target.baseAddress?.assumingMemoryBound(to: Bytef.self)
                    self.stream.avail_out = UInt32(target.count)
                    deflate(&self.stream, flush)
                    return target.count - Int(self.stream.avail_out)
                }
            } while self.stream.avail_out == 0 || self.stream.avail_in > 0
        }
        return output
    }
}
