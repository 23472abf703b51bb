import CLibFuzzer
import NIOCore
import NIOEmbedded
import NIOHTTP1

@testable import JunctionCore

/// A request head as NIO's decoder reads the fuzzed bytes, through Junction's inspection and
/// rewrite: never traps, and what goes upstream parses (with the same decoder) as exactly one
/// request with one Host, the same method, the forwarded target, and the framing Junction decided:
/// no smuggled second request, no second authority.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let parts = decode(Array(UnsafeBufferPointer(start: data, count: size)))
    guard case .head(let head)? = parts.first, case .success(let facts) = HeaderRewriter.inspect(head) else { return 0 }
    let upstream = HeaderRewriter.upstreamRequestBytes(
        head,
        facts: facts,
        clientAddress: "192.0.2.1",
        scheme: "http",
        requestID: "fuzz",
        defaultHost: "127.0.0.1:80",
        allocator: ByteBufferAllocator()
    )
    let reparsed = decode(Array(upstream.readableBytesView), failOnError: true)
    guard case .head(let sent)? = reparsed.first else {
        preconditionFailure("no head upstream: \(String(buffer: upstream))")
    }
    precondition(reparsed.filter { if case .head = $0 { true } else { false } }.count == 1, "more than one request")
    precondition(sent.method == head.method, "method changed")
    precondition(sent.uri == (facts.originForm ?? head.uri), "target \(sent.uri) for \(head.uri)")
    precondition(sent.headers["host"].count == 1, "Host fields: \(sent.headers["host"])")
    switch facts.framing {
    case .none:
        precondition(sent.headers["content-length"].isEmpty && sent.headers["transfer-encoding"].isEmpty)
    case .contentLength(let length):
        precondition(sent.headers["content-length"] == [String(length)] && sent.headers["transfer-encoding"].isEmpty)
    case .chunked:
        precondition(sent.headers["transfer-encoding"] == ["chunked"] && sent.headers["content-length"].isEmpty)
    }
    return 0
}

/// What NIO's request decoder makes of `bytes` (everything up to an error).
func decode(_ bytes: [UInt8], failOnError: Bool = false) -> [HTTPServerRequestPart] {
    let channel = EmbeddedChannel(
        handler: ByteToMessageHandler(HTTPRequestDecoder(leftOverBytesStrategy: .forwardBytes))
    )
    defer { _ = try? channel.finish() }
    do {
        try channel.writeInbound(ByteBuffer(bytes: bytes))
    } catch {
        precondition(
            !failOnError,
            "Junction wrote a head NIO cannot parse: \(error) in \(String(decoding: bytes, as: UTF8.self))"
        )
    }
    var parts: [HTTPServerRequestPart] = []
    while let part = try? channel.readInbound(as: HTTPServerRequestPart.self) { parts.append(part) }
    return parts
}

/// SwiftPM links an executable's entry point as `FuzzHeaderRewrite_main`: hand over to libFuzzer's driver.
@_cdecl("FuzzHeaderRewrite_main")
public func fuzzerMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    JunctionFuzzMain(argc, argv, fuzz)
}
