import CLibFuzzer

@testable import JunctionCore

/// The PROXY protocol v1/v2 parser: never traps, and decides only on whole headers (every prefix
/// of a header it accepts is `incomplete`, and the bytes behind the header change nothing).
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = UnsafeBufferPointer(start: data, count: size)
    guard case .header(let length, let client)? = try? ProxyProtocolHeader.parse(bytes) else { return 0 }
    precondition(length > 0 && length <= size, "header length \(length) of \(size) bytes")
    precondition(
        (try? ProxyProtocolHeader.parse(bytes.prefix(length))) == .header(length: length, client: client),
        "the header alone parses the same"
    )
    for cut in stride(from: 0, to: length, by: max(1, length / 16)) {
        precondition(
            (try? ProxyProtocolHeader.parse(bytes.prefix(cut))) == .incomplete,
            "decided at \(cut) of \(length)"
        )
    }
    return 0
}

/// SwiftPM links an executable's entry point as `FuzzProxyProtocol_main`: hand over to libFuzzer's driver.
@_cdecl("FuzzProxyProtocol_main")
public func fuzzerMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    JunctionFuzzMain(argc, argv, fuzz)
}
