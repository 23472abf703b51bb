import CLibFuzzer
import NIOCore
import NIOEmbedded
import NIOHPACK
import NIOHTTP1

@testable import JunctionCore

/// HTTP/2 request header blocks (one `name: value` per line of the input, kept to what
/// swift-nio-http2's validation lets through: lowercase token names, pseudo-header values without
/// SP or controls, other values without CR, LF or NUL) through Junction's conversion and rewrite:
/// never traps, and the HTTP/1.1 head sent upstream parses as exactly one request with one Host,
/// the same method and target. (A `:path` with bytes over 0x7F, which swift-nio-http2 lets
/// through, is forwarded as it is; NIO's HTTP/1.1 parser may refuse it, the backend answers.)
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    guard size >= 1 else { return 0 }
    let bytes = UnsafeBufferPointer(start: data, count: size)
    var block = HPACKHeaders()
    for line in bytes.dropFirst().split(separator: UInt8(ascii: "\n")) {
        guard let colon = line.firstIndex(of: UInt8(ascii: ":"), after: line.startIndex) else { continue }
        let name = line[line.startIndex..<colon]
        var value = line[(colon + 1)...]
        while value.first == UInt8(ascii: " ") { value = value.dropFirst() }
        let nameOK =
            !name.isEmpty
            && name.dropFirst(name.first == UInt8(ascii: ":") ? 1 : 0).allSatisfy {
                ($0 >= UInt8(ascii: "a") && $0 <= UInt8(ascii: "z"))
                    || ($0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9"))
                    || $0 == UInt8(ascii: "-")
            }
        let valueOK =
            name.first == UInt8(ascii: ":")
            ? value.allSatisfy { $0 > 0x20 && $0 != 0x7F }
            : value.allSatisfy { $0 != 0 && $0 != 0x0A && $0 != 0x0D }
        guard nameOK, valueOK else { continue }
        block.add(name: String(decoding: name, as: UTF8.self), value: String(decoding: value, as: UTF8.self))
    }
    guard case .success(let request) = HTTP2HeadConverter.request(block, endStream: bytes[0] & 1 != 0) else { return 0 }
    let upstream = HeaderRewriter.upstreamRequestBytes(
        request.head,
        facts: request.facts,
        clientAddress: "192.0.2.1",
        scheme: "https",
        requestID: "fuzz",
        defaultHost: "127.0.0.1:443",
        allocator: ByteBufferAllocator()
    )
    let channel = EmbeddedChannel(
        handler: ByteToMessageHandler(HTTPRequestDecoder(leftOverBytesStrategy: .forwardBytes))
    )
    defer { _ = try? channel.finish() }
    do {
        try channel.writeInbound(upstream)
    } catch {
        precondition(
            request.head.uri.utf8.contains { $0 > 0x7F },
            "Junction wrote a head NIO cannot parse: \(error) in \(String(buffer: upstream))"
        )
        return 0
    }
    var heads: [HTTPRequestHead] = []
    while let part = try? channel.readInbound(as: HTTPServerRequestPart.self) {
        if case .head(let head) = part { heads.append(head) }
    }
    precondition(heads.count == 1, "\(heads.count) requests upstream from one stream")
    precondition(heads[0].uri == request.head.uri && heads[0].method == request.head.method)
    precondition(heads[0].headers["host"].count == 1, "Host fields: \(heads[0].headers["host"])")
    return 0
}

extension UnsafeBufferPointer<UInt8>.SubSequence {
    /// The first index of `byte` after `start` (a name may begin with ":").
    func firstIndex(of byte: UInt8, after start: Index) -> Index? {
        self[self.index(after: start)...].firstIndex(of: byte)
    }
}

/// SwiftPM links an executable's entry point as `FuzzHTTP2Head_main`: hand over to libFuzzer's driver.
@_cdecl("FuzzHTTP2Head_main")
public func fuzzerMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    JunctionFuzzMain(argc, argv, fuzz)
}
