import NIOCore

/// Follows the frame boundaries of one direction of a WebSocket (RFC 6455 5.2) by reading only
/// each frame's 2 to 14 header bytes and skipping its payload without copying it, so the proxy
/// knows when it may put a frame of its own (a close 1001) on the wire without cutting one in two.
struct WebSocketFrameTracker: Equatable {
    /// Where in the byte stream the tracker is.
    enum Phase: Equatable {
        /// Reading a frame header: `seen` of its bytes so far (0: between frames).
        case header(seen: Int)
        /// Inside a frame's payload.
        case payload(remaining: UInt64)
        /// A header no WebSocket sends (a 64-bit length with the top bit set): boundaries are lost
        /// for the rest of the stream.
        case lost
    }

    private(set) var phase = Phase.header(seen: 0)
    /// Whether a close frame went by (then the proxy must not send another).
    private(set) var sawClose = false
    private var opcode: UInt8 = 0
    private var extendedLengthBytes = 0
    private var headerLength = 2
    private var payloadLength: UInt64 = 0

    init() {}

    /// Whether the stream is between two frames.
    var isBetweenFrames: Bool { self.phase == .header(seen: 0) }

    /// Takes the next bytes of the stream.
    mutating func observe(_ bytes: ByteBuffer) {
        var index = bytes.readerIndex
        let end = bytes.writerIndex
        while index < end {
            switch self.phase {
            case .lost:
                return
            case .payload(let remaining):
                let available = UInt64(end - index)
                if remaining > available {
                    self.phase = .payload(remaining: remaining - available)
                    return
                }
                index += Int(remaining)
                self.phase = .header(seen: 0)
            case .header(let seen):
                self.headerByte(bytes.getInteger(at: index, as: UInt8.self)!, seen: seen)
                index += 1
            }
        }
    }

    /// One header byte, the `seen`-th (0-based).
    private mutating func headerByte(_ byte: UInt8, seen: Int) {
        switch seen {
        case 0:
            self.opcode = byte & 0x0F
            self.payloadLength = 0
        case 1:
            let length7 = byte & 0x7F
            self.extendedLengthBytes = length7 == 126 ? 2 : (length7 == 127 ? 8 : 0)
            self.headerLength = 2 + self.extendedLengthBytes + (byte & 0x80 != 0 ? 4 : 0)
            if self.extendedLengthBytes == 0 { self.payloadLength = UInt64(length7) }
        default:
            if seen < 2 + self.extendedLengthBytes {
                self.payloadLength = self.payloadLength << 8 | UInt64(byte)
            }
        }
        guard seen + 1 >= 2, seen + 1 == self.headerLength else {
            self.phase = .header(seen: seen + 1)
            return
        }
        // RFC 6455 5.2: the most significant bit of a 64-bit length MUST be 0.
        if self.payloadLength >> 63 != 0 {
            self.phase = .lost
            return
        }
        if self.opcode == 0x8 { self.sawClose = true }
        self.phase = self.payloadLength == 0 ? .header(seen: 0) : .payload(remaining: self.payloadLength)
    }

    /// An unmasked close frame (server to client) with `code` and a short `reason` (at most 123
    /// bytes, as a control frame's payload is at most 125).
    static func closeFrame(code: UInt16, reason: String) -> [UInt8] {
        let reasonBytes = Array(reason.utf8.prefix(123))
        return [0x88, UInt8(2 + reasonBytes.count), UInt8(code >> 8), UInt8(code & 0xFF)] + reasonBytes
    }
}
