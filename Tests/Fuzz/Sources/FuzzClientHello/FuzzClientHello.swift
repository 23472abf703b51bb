import CLibFuzzer
import NIOCore

@testable import JunctionCore

/// The ClientHello peek (ALPN `acme-tls/1`): never traps, decides only once the first record is
/// whole, and bytes behind that record change nothing. (The setup that runs it, with the stream
/// cut anywhere, is FuzzConnectionSetup's, with its `acmeValidations` bit.)
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    let verdict = bytes.withUnsafeBytes { ClientHelloPeek.inspect($0) }
    let recordEnd = bytes.count >= 5 ? 5 + (Int(bytes[3]) << 8 | Int(bytes[4])) : Int.max
    if verdict == .incomplete {
        precondition(bytes.isEmpty || (bytes[0] == 22 && bytes.count < recordEnd), "incomplete with the record whole")
    } else if !bytes.isEmpty && bytes[0] == 22 && recordEnd - 5 <= ClientHelloPeek.maxRecord {
        precondition(bytes.count >= recordEnd, "decided before the record was whole")
        let record = Array(bytes[..<recordEnd])
        precondition(
            record.withUnsafeBytes { ClientHelloPeek.inspect($0) } == verdict,
            "bytes behind the record changed the verdict"
        )
        for cut in stride(from: 0, to: recordEnd, by: max(1, recordEnd / 16)) {
            precondition(
                record[..<cut].withUnsafeBytes { ClientHelloPeek.inspect($0) } == .incomplete,
                "decided at \(cut) of \(recordEnd)"
            )
        }
    }
    precondition(
        ClientHelloPeek.inspect(ByteBuffer(bytes: bytes + [0x16, 0x03, 0x01])) == verdict || verdict == .incomplete,
        "more bytes changed a decided verdict"
    )
    return 0
}

/// SwiftPM links an executable's entry point as `FuzzClientHello_main`: hand over to libFuzzer's driver.
@_cdecl("FuzzClientHello_main")
public func fuzzerMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    JunctionFuzzMain(argc, argv, fuzz)
}
