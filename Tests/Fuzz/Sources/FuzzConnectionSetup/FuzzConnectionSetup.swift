import CLibFuzzer
import NIOCore

@testable import JunctionCore

/// The client connection's setup phases (PROXY header, h2c sniffing, the ClientHello peek of a
/// listener answering tls-alpn-01) with the bytes cut at fuzzed
/// places: never traps, and however the stream is cut, the same phases are installed and every
/// byte behind the preface reaches them once, in order.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    guard size >= 2 else { return 0 }
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    // First byte: the listener; second: the cut pattern seed.
    let setup = ClientConnectionStateMachine.Setup(
        proxyProtocol: bytes[0] & 1 != 0,
        tls: bytes[0] & 2 != 0,
        http2: bytes[0] & 4 != 0,
        acmeValidations: bytes[0] & 8 != 0
    )
    let input = Array(bytes[2...])
    let whole = run(setup, input, cuts: [input.count])
    var seed = UInt32(bytes[1]) &+ 1
    var cuts: [Int] = []
    var left = input.count
    while left > 0 {
        seed = seed &* 1_103_515_245 &+ 12345
        let cut = min(left, Int(seed >> 16) % 9 + 1)
        cuts.append(cut)
        left -= cut
    }
    let cut = run(setup, input, cuts: cuts)
    precondition(whole.phases == cut.phases, "phases \(whole.phases) vs \(cut.phases)")
    precondition(whole.rejected == cut.rejected, "rejected \(whole.rejected) vs \(cut.rejected)")
    if !whole.rejected && whole.installed {
        precondition(whole.forwarded == cut.forwarded, "forwarded bytes differ")
        precondition(input.suffix(whole.forwarded.count).elementsEqual(whole.forwarded), "not the tail of the input")
    }
    return 0
}

private func run(
    _ setup: ClientConnectionStateMachine.Setup,
    _ input: [UInt8],
    cuts: [Int]
) -> (phases: [ClientConnectionStateMachine.Phase], forwarded: [UInt8], rejected: Bool, installed: Bool) {
    var machine = ClientConnectionStateMachine(setup: setup, headerTimeout: .seconds(10), now: .now())
    var phases: [ClientConnectionStateMachine.Phase] = []
    var forwarded: [UInt8] = []
    if let phase = machine.initialPhase {
        phases.append(phase)
        _ = machine.phaseInstalled()
    }
    var offset = 0
    for size in cuts {
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
            case .reject:
                return (phases, forwarded, true, !phases.isEmpty)
            }
        }
    }
    let installed: Bool
    switch machine.state {
    case .tlsHandshake, .handedOver: installed = true
    default: installed = false
    }
    return (phases, forwarded, false, installed)
}

/// SwiftPM links an executable's entry point as `FuzzConnectionSetup_main`: hand over to libFuzzer's driver.
@_cdecl("FuzzConnectionSetup_main")
public func fuzzerMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    JunctionFuzzMain(argc, argv, fuzz)
}
