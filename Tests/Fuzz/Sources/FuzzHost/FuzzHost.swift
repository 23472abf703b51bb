import CLibFuzzer

@testable import JunctionCore

/// Host values and request targets: `Authority` and `RequestTarget` must never trap, and what they
/// accept must hold up (an accepted absolute-form target's origin-form starts with "/").
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = UnsafeBufferPointer(start: data, count: size)
    let valid = Authority.isValid(bytes)
    let text = String(decoding: bytes, as: UTF8.self)
    if valid {
        _ = HostPattern.normalizedHost(text)
        precondition(!bytes.contains(UInt8(ascii: "@")) && !bytes.contains(UInt8(ascii: "/")), "accepted \(text)")
    }
    for method in ["GET", "OPTIONS", "CONNECT"] {
        if case .success(.absolute(let authority, let originForm)) = RequestTarget.parse(text, method: method) {
            // Bytes, not Characters: "/" followed by a combining mark is one Character.
            precondition(originForm.utf8.first == UInt8(ascii: "/"), "origin-form \(originForm) of \(text)")
            precondition(Authority.isValid(authority) && !authority.isEmpty, "authority \(authority) of \(text)")
        }
    }
    return 0
}

/// SwiftPM links an executable's entry point as `FuzzHost_main`: hand over to libFuzzer's driver.
@_cdecl("FuzzHost_main")
public func fuzzerMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    JunctionFuzzMain(argc, argv, fuzz)
}
