import CZlib
import NIOCore
import NIOHTTP1
import Testing

@testable import JunctionCore

/// The gzip decision, the encoder's output and the header changes a gzipped response gets.
@Suite("Compression")
struct CompressionUnitTests {
    @Test(
        "Accept-Encoding: gzip or *, unless q=0",
        arguments: [
            ("gzip", true), ("GZIP", true), ("deflate, gzip;q=0.5", true), ("br, *", true),
            ("gzip;q=0", false), ("gzip; q=0.0, identity", false), ("br, deflate", false), ("", false),
            ("identity", false), ("x-gzip", false), ("gzip;q=0, *", false), ("*;q=0", false),
            ("*;q=0, gzip", true),
        ]
    )
    func acceptsGzip(value: String, accepted: Bool) {
        #expect(CompressionPolicy.acceptsGzip(value[...]) == accepted)
    }

    @Test(
        "Which responses are compressed",
        arguments: [
            (HTTPResponseHeadFields(status: 200, contentLength: 5000, contentType: "application/json"), true),
            (HTTPResponseHeadFields(status: 200, contentType: "text/html; charset=utf-8"), true),
            (HTTPResponseHeadFields(status: 404, contentLength: 5000, contentType: "text/plain"), false),
            (HTTPResponseHeadFields(status: 200, contentLength: 5000, contentType: "image/svg+xml"), true),
            (HTTPResponseHeadFields(status: 200, contentLength: 5000, contentType: "application/ld+json"), true),
            (HTTPResponseHeadFields(status: 200, contentLength: 5000, contentType: "application/javascript"), true),
            (HTTPResponseHeadFields(status: 200, contentLength: 5000, contentType: "text/css"), true),
            // Small, already encoded, binary, untyped, an event stream, no-transform, a range.
            (HTTPResponseHeadFields(status: 200, contentLength: 1023, contentType: "application/json"), false),
            (
                HTTPResponseHeadFields(
                    status: 200,
                    contentEncoding: "br",
                    contentLength: 5000,
                    contentType: "application/json"
                ), false
            ),
            (HTTPResponseHeadFields(status: 200, contentLength: 5000, contentType: "image/png"), false),
            (HTTPResponseHeadFields(status: 200, contentLength: 5000), false),
            (HTTPResponseHeadFields(status: 200, contentType: "text/event-stream"), false),
            (
                HTTPResponseHeadFields(
                    status: 200,
                    contentLength: 5000,
                    contentType: "text/plain",
                    cacheControl: "public, no-transform"
                ), false
            ),
            (HTTPResponseHeadFields(status: 206, contentLength: 5000, contentType: "text/plain"), false),
        ]
    )
    func shouldCompress(fields: HTTPResponseHeadFields, expected: Bool) {
        #expect(CompressionPolicy.shouldCompress(fields, bodyless: false) == expected)
        #expect(!CompressionPolicy.shouldCompress(fields, bodyless: true), "a bodyless response is never compressed")
    }

    @Test("The client and the head both have to agree")
    func decision() {
        let head = HTTPResponseHead(
            version: .http1_1,
            status: .ok,
            headers: HTTPHeaders([("Content-Type", "application/json"), ("Content-Length", "4000")])
        )
        #expect(CompressionPolicy.shouldCompress(head, acceptEncoding: "gzip", bodyless: false))
        #expect(!CompressionPolicy.shouldCompress(head, acceptEncoding: nil, bodyless: false))
        #expect(!CompressionPolicy.shouldCompress(head, acceptEncoding: "br", bodyless: false))
        #expect(!CompressionPolicy.shouldCompress(head, acceptEncoding: "gzip", bodyless: true))
        var identity = head
        identity.headers.add(name: "Content-Encoding", value: "identity")
        #expect(CompressionPolicy.shouldCompress(identity, acceptEncoding: "gzip", bodyless: false))
        var brotli = head
        brotli.headers.add(name: "Content-Encoding", value: "br")
        #expect(!CompressionPolicy.shouldCompress(brotli, acceptEncoding: "gzip", bodyless: false))
    }

    @Test("An event loop keeps at most GzipBudget.limit zlib streams alive; a finished one frees its place")
    func budget() throws {
        let budget = GzipBudget()
        var encoders = try (0..<GzipBudget.limit).map { _ in try #require(GzipEncoder(budget: budget)) }
        #expect(budget.inUse == GzipBudget.limit)
        #expect(GzipEncoder(budget: budget) == nil, "past the limit the response goes uncompressed")
        encoders.removeLast()
        #expect(budget.inUse == GzipBudget.limit - 1)
        #expect(GzipEncoder(budget: budget) != nil)
        encoders.removeAll()
        #expect(budget.inUse == 0)
    }

    @Test("Parts compressed one by one decompress to the whole; each part is flushed at once")
    func roundTrip() throws {
        let encoder = try #require(GzipEncoder(budget: GzipBudget()))
        let allocator = ByteBufferAllocator()
        let parts = (0..<20).map { index in
            String(repeating: "{\"part\":\(index),\"text\":\"hello gzip\"}", count: 50 + index * 7)
        }
        var compressed = ByteBuffer()
        let inflater = Inflater()
        var decodedSoFar = ""
        for (index, part) in parts.enumerated() {
            var out = try #require(encoder.compress(ByteBuffer(string: part), allocator: allocator))
            // What the client has so far decodes to every part so far: nothing is held back.
            decodedSoFar += try inflater.inflate(out)
            #expect(decodedSoFar == parts[...index].joined(), "after part \(index)")
            compressed.writeBuffer(&out)
        }
        var tail = try #require(encoder.finish(allocator: allocator))
        decodedSoFar += try inflater.inflate(tail)
        compressed.writeBuffer(&tail)
        let whole = parts.joined()
        #expect(decodedSoFar == whole)
        #expect(compressed.readableBytes * 10 < whole.utf8.count, "\(compressed.readableBytes) for \(whole.utf8.count)")
        #expect(compressed.getBytes(at: compressed.readerIndex, length: 2) == [0x1F, 0x8B])
        #expect(inflater.ended, "the gzip stream is complete, trailer included")
        #expect(encoder.compress(ByteBuffer(string: "late"), allocator: allocator) == nil, "nothing after the end")
    }

    @Test("A gzipped response loses Content-Length and Accept-Ranges, gets a weak ETag, Content-Encoding and Vary")
    func headers() {
        let upstream = HTTPResponseHead(
            version: .http1_1,
            status: .ok,
            headers: HTTPHeaders([
                ("Content-Type", "application/json"), ("Content-Length", "4000"), ("Accept-Ranges", "bytes"),
                ("ETag", "\"abc\""), ("Content-Encoding", "identity"),
            ])
        )
        var http1 = HTTPHeaders()
        let (framing, _) = HeaderRewriter.rewriteResponseHeaders(
            upstream,
            requestID: "rid",
            clientVersion: .http1_1,
            bodyless: false,
            keepAlive: true,
            isTunnel: false,
            gzip: true,
            into: &http1
        )
        #expect(framing == .chunked)
        #expect(http1["Content-Length"].isEmpty)
        #expect(http1["Accept-Ranges"].isEmpty)
        #expect(http1["Transfer-Encoding"] == ["chunked"])
        #expect(http1["ETag"] == ["W/\"abc\""])
        #expect(http1["Content-Encoding"] == ["gzip"], "the upstream's identity is gone")
        #expect(http1["Vary"] == ["Accept-Encoding"])
        #expect(http1["Content-Type"] == ["application/json"])

        let h2 = HTTP2HeadConverter.response(upstream, requestID: "rid", bodyless: false, gzip: true)
        #expect(h2[":status"] == ["200"])
        #expect(h2["content-length"].isEmpty)
        #expect(h2["content-encoding"] == ["gzip"])
        #expect(h2["etag"] == ["W/\"abc\""])

        // Without gzip nothing changes.
        let plain = HTTP2HeadConverter.response(upstream, requestID: "rid", bodyless: false)
        #expect(plain["content-length"] == ["4000"])
        #expect(plain["etag"] == ["\"abc\""])
        #expect(plain["accept-ranges"] == ["bytes"])
    }

    @Test("Accept-Encoding is read from HTTP/1.1 and HTTP/2 requests")
    func requestFacts() throws {
        let head = HTTPRequestHead(
            version: .http1_1,
            method: .GET,
            uri: "/",
            headers: HTTPHeaders([("Host", "a"), ("Accept-Encoding", "br"), ("accept-encoding", "gzip")])
        )
        #expect(try HeaderRewriter.inspect(head).get().acceptEncoding == "br, gzip")
        let converted = try HTTP2HeadConverter.request(
            [":method": "GET", ":path": "/", ":scheme": "https", ":authority": "a", "accept-encoding": "gzip, br"],
            endStream: true
        ).get()
        #expect(converted.facts.acceptEncoding == "gzip, br")
    }
}

/// zlib's inflate over a gzip stream, fed piece by piece (the test's decoder, not Junction's).
private final class Inflater {
    struct Failed: Error {
        var status: Int32
    }

    private var stream = z_stream()
    private(set) var ended = false

    init() {
        _ = inflateInit2_(&self.stream, 15 + 16, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size))
    }

    deinit {
        inflateEnd(&self.stream)
    }

    func inflate(_ input: ByteBuffer) throws -> String {
        var input = input
        var output: [UInt8] = []
        var failure: Int32?
        input.withUnsafeMutableReadableBytes { source in
            self.stream.next_in = source.baseAddress?.assumingMemoryBound(to: Bytef.self)
            self.stream.avail_in = UInt32(source.count)
            var chunk = [UInt8](repeating: 0, count: 16384)
            repeat {
                let status = chunk.withUnsafeMutableBufferPointer { target -> Int32 in
                    self.stream.next_out = target.baseAddress
                    self.stream.avail_out = UInt32(target.count)
                    return CZlib.inflate(&self.stream, Z_NO_FLUSH)
                }
                output += chunk[0..<(chunk.count - Int(self.stream.avail_out))]
                if status == Z_STREAM_END {
                    self.ended = true
                    return
                }
                if status != Z_OK && status != Z_BUF_ERROR {
                    failure = status
                    return
                }
            } while self.stream.avail_out == 0
        }
        if let failure { throw Failed(status: failure) }
        return String(decoding: output, as: UTF8.self)
    }
}
