import CLibFuzzer
import NIOCore

@testable import JunctionCore

/// The ClientHello peek (ALPN `acme-tls/1`) and the connection setup that runs it: never traps;
/// decides only once the first record is whole, and bytes behind that record change nothing; and
/// however the stream is cut, the setup installs the phase the peek chose with every byte.
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

    // The setup of a TLS listener answering tls-alpn-01, the stream whole and cut into pieces.
    let expected: [ClientConnectionStateMachine.Phase]
    switch verdict {
    case .incomplete: expected = []
    case .acmeValidation: expected = [.validationTLS]
    case .other: expected = [.tls]
    }
    var seed = UInt32(truncatingIfNeeded: size) &+ UInt32(bytes.last ?? 0)
    var cuts: [Int] = []
    var left = bytes.count
    while left > 0 {
        seed = seed &* 1_103_515_245 &+ 12345
        let cut = min(left, Int(seed >> 16) % 64 + 1)
        cuts.append(cut)
        left -= cut
    }
    for pieces in [[bytes.count], cuts] {
        let (phases, forwarded) = run(bytes, cuts: pieces)
        precondition(phases == expected, "phases \(phases), peek said \(verdict)")
        precondition(forwarded == (expected.isEmpty ? [] : bytes), "the handshake did not get every byte")
    }
    return 0
}

/// Feeds `input` in pieces of the sizes in `cuts`: the phases installed and the bytes forwarded.
private func run(_ input: [UInt8], cuts: [Int]) -> (phases: [ClientConnectionStateMachine.Phase], forwarded: [UInt8]) {
    var machine = ClientConnectionStateMachine(
        setup: .init(tls: true, acmeValidations: true),
        headerTimeout: .seconds(10),
        now: .now()
    )
    var phases: [ClientConnectionStateMachine.Phase] = []
    var forwarded: [UInt8] = []
    var offset = 0
    for size in cuts where size > 0 {
        var action = machine.bytesReceived(ByteBuffer(bytes: input[offset..<(offset + size)]))
        offset += size
        loop: while true {
            switch action {
            case .wait: break loop
            case .install(let phase):
                phases.append(phase)
                action = machine.phaseInstalled()
            case .forward(let buffer):
                forwarded += buffer.readableBytesView
                break loop
            case .reject(let reason):
                preconditionFailure("a TLS listener rejected its first bytes: \(reason)")
            }
        }
    }
    return (phases, forwarded)
}

/// SwiftPM links an executable's entry point as `FuzzClientHello_main`: hand over to libFuzzer's driver.
@_cdecl("FuzzClientHello_main")
public func fuzzerMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    JunctionFuzzMain(argc, argv, fuzz)
}
