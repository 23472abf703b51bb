import CLibFuzzer
import NIOCore

@testable import JunctionCore

/// The WebSocket frame tracker (bytes a backend sends a client): it must never trap, must land in
/// the same place however the stream is cut (the first byte picks the cuts), and must agree with
/// a plain frame-by-frame walk of the whole stream.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let all = Array(UnsafeBufferPointer(start: data, count: size))
    guard let seed = all.first else { return 0 }
    let bytes = Array(all.dropFirst())

    var whole = WebSocketFrameTracker()
    whole.observe(ByteBuffer(bytes: bytes))

    var cut = WebSocketFrameTracker()
    var index = 0
    var step = Int(seed % 13) + 1
    while index < bytes.count {
        let end = min(bytes.count, index + step)
        cut.observe(ByteBuffer(bytes: bytes[index..<end]))
        index = end
        step = step % 13 + 1
    }
    precondition(cut == whole, "cut differently, the tracker ends elsewhere")

    let reference = walk(bytes)
    precondition(whole.isBetweenFrames == reference.between, "between frames: \(whole) vs \(reference)")
    precondition(whole.sawClose == reference.sawClose, "close seen: \(whole) vs \(reference)")
    precondition((whole.phase == .lost) == reference.lost, "lost: \(whole) vs \(reference)")
    return 0
}

/// Where a frame-by-frame walk of the whole stream ends.
func walk(_ bytes: [UInt8]) -> (between: Bool, sawClose: Bool, lost: Bool) {
    var offset = 0
    var sawClose = false
    while offset < bytes.count {
        guard bytes.count - offset >= 2 else { return (false, sawClose, false) }
        let length7 = Int(bytes[offset + 1] & 0x7F)
        let extended = length7 == 126 ? 2 : (length7 == 127 ? 8 : 0)
        let header = 2 + extended + (bytes[offset + 1] & 0x80 != 0 ? 4 : 0)
        guard bytes.count - offset >= header else { return (false, sawClose, false) }
        var length = UInt64(length7)
        if extended > 0 {
            length = 0
            for byte in bytes[(offset + 2)..<(offset + 2 + extended)] { length = length << 8 | UInt64(byte) }
        }
        if length >> 63 != 0 { return (false, sawClose, true) }
        if bytes[offset] & 0x0F == 0x8 { sawClose = true }
        let remaining = UInt64(bytes.count - offset - header)
        guard remaining >= length else { return (false, sawClose, false) }
        offset += header + Int(length)
    }
    return (true, sawClose, false)
}

/// SwiftPM links an executable's entry point as `FuzzWebSocketFrames_main`: hand over to libFuzzer.
@_cdecl("FuzzWebSocketFrames_main")
public func fuzzerMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    JunctionFuzzMain(argc, argv, fuzz)
}
