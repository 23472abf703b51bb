import NIOCore
import NIOHTTP1

/// Where rewritten header fields go: straight into HTTP/1.1 bytes on the data path, or into
/// `HTTPHeaders` where a structured head is needed (the HTTP/2 front's response headers, tests).
protocol HeaderFieldSink {
    mutating func append(name: String, value: String)
    /// The fields a route's `response_headers` set (a requirement, so a sink's own faster way is
    /// taken in generic code; the default appends them one by one).
    mutating func appendRules(_ rules: ResponseHeaderRules)
}

extension HTTPHeaders: HeaderFieldSink {
    mutating func append(name: String, value: String) {
        self.add(name: name, value: value)
    }
}

/// Serializes an HTTP/1.1 head directly into a `ByteBuffer`.
///
/// Junction writes heads itself instead of going through NIO's encoders: the rewritten fields go
/// from the parsed head to the wire without building a second `HTTPHeaders`, and the upstream and
/// client pipelines lose a handler each. Only serialization lives here; parsing stays NIO's.
struct HTTP1HeadWriter: HeaderFieldSink {
    private(set) var buffer: ByteBuffer

    init(allocator: ByteBufferAllocator, capacity: Int = 512) {
        self.buffer = allocator.buffer(capacity: capacity)
    }

    /// `GET /target HTTP/1.1`
    mutating func requestLine(method: HTTPMethod, target: String) {
        switch method {
        case .GET: self.buffer.writeStaticString("GET ")
        case .POST: self.buffer.writeStaticString("POST ")
        default:
            self.buffer.writeString(method.rawValue)
            self.buffer.writeStaticString(" ")
        }
        self.buffer.writeString(target)
        self.buffer.writeStaticString(" HTTP/1.1\r\n")
    }

    /// `HTTP/1.1 200 OK`
    mutating func statusLine(version: HTTPVersion, status: HTTPResponseStatus) {
        if version.isAtLeastHTTP11 {
            if status == .ok {
                self.buffer.writeStaticString("HTTP/1.1 200 OK\r\n")
                return
            }
            self.buffer.writeStaticString("HTTP/1.1 ")
        } else {
            self.buffer.writeStaticString("HTTP/1.0 ")
        }
        self.buffer.writeString(String(status.code))
        self.buffer.writeStaticString(" ")
        self.buffer.writeString(status.reasonPhrase)
        self.buffer.writeStaticString("\r\n")
    }

    mutating func append(name: String, value: String) {
        self.buffer.writeString(name)
        self.buffer.writeStaticString(": ")
        self.buffer.writeString(value)
        self.buffer.writeStaticString("\r\n")
    }

    /// The route's configured fields: bytes serialized once at config load, copied in one write.
    mutating func appendRules(_ rules: ResponseHeaderRules) {
        self.buffer.writeImmutableBuffer(rules.http1Lines)
    }

    /// Ends the head (the empty line) and hands over the bytes.
    ///
    /// `mutating`, not `consuming`: consuming a `var` writer copied it, so the last write found its
    /// storage shared and copied the whole head into a new buffer (two more mallocs per head).
    mutating func finish() -> ByteBuffer {
        self.buffer.writeStaticString("\r\n")
        return self.buffer
    }

    /// A whole response head from a structured one (Junction's own answers).
    static func responseHead(_ head: HTTPResponseHead, allocator: ByteBufferAllocator) -> ByteBuffer {
        var writer = HTTP1HeadWriter(allocator: allocator, capacity: 256)
        writer.statusLine(version: head.version, status: head.status)
        for (name, value) in head.headers {
            writer.append(name: name, value: value)
        }
        return writer.finish()
    }
}

/// How a message body is delimited on the wire of one hop.
enum WireFraming: Equatable {
    /// No body bytes at all.
    case none
    /// Bytes as they come (Content-Length, or until the connection closes).
    case raw
    /// Chunked transfer coding: each part gets a size line, the end a zero chunk.
    case chunked
}

/// Chunked transfer coding for bodies Junction re-frames.
enum ChunkedCoding {
    /// `\r\n` after a chunk's data.
    static let crlf = ByteBuffer(staticString: "\r\n")
    /// The last chunk and an empty trailer section.
    static let lastChunk = ByteBuffer(staticString: "0\r\n\r\n")

    /// `<hex size>\r\n`
    static func chunkHeader(size: Int, allocator: ByteBufferAllocator) -> ByteBuffer {
        var buffer = allocator.buffer(capacity: 18)
        buffer.writeString(String(size, radix: 16))
        buffer.writeStaticString("\r\n")
        return buffer
    }

    /// The last chunk with trailer fields.
    static func lastChunk(trailers: HTTPHeaders, allocator: ByteBufferAllocator) -> ByteBuffer {
        var buffer = allocator.buffer(capacity: 64)
        buffer.writeStaticString("0\r\n")
        for (name, value) in trailers {
            buffer.writeString(name)
            buffer.writeStaticString(": ")
            buffer.writeString(value)
            buffer.writeStaticString("\r\n")
        }
        buffer.writeStaticString("\r\n")
        return buffer
    }
}
