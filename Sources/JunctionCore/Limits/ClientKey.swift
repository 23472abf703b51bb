/// A client as the per-client limits count it: an IPv4 address, or the /64 network of an IPv6
/// address (one host usually holds a whole /64, so counting its addresses apart would let it mint
/// new clients at will). An IPv4-mapped IPv6 address is its IPv4 address.
///
/// Packed into 64 bits: an IPv6 /64 is its prefix; an IPv4 address is `0xFF00_0000` above its 32
/// bits, a prefix in ff00::/8 (multicast), which is never a source address, so the two never meet.
/// The top two values of that range mark a table's empty and freed slots.
struct ClientKey: Hashable, Sendable {
    /// The packed key.
    let value: UInt64

    /// A slot never used.
    static let empty: UInt64 = .max
    /// A slot used and freed (a probe goes on past it).
    static let freed: UInt64 = .max - 1

    private static let ipv4Tag: UInt64 = 0xFF00_0000_0000_0000

    init(ipv4 address: UInt32) {
        self.init(value: Self.ipv4Tag | UInt64(address))
    }

    private init(value: UInt64) {
        self.value = value
    }

    /// The key of a 16-byte IPv6 address, in network order.
    init(ipv6 bytes: UnsafeRawBufferPointer) {
        precondition(bytes.count == 16)
        let mapped = bytes.prefix(10).allSatisfy { $0 == 0 } && bytes[10] == 0xFF && bytes[11] == 0xFF
        if mapped {
            self.init(ipv4: bytes.suffix(4).reduce(0) { $0 << 8 | UInt32($1) })
        } else {
            self.init(value: bytes.prefix(8).reduce(0) { $0 << 8 | UInt64($1) })
        }
    }

    /// Where the key's probe starts in a table of `mask + 1` slots: SplitMix64's finaliser over
    /// the key mixed with the table's random `seed`, so neighbouring addresses land far apart and
    /// nobody can pick addresses that all land in one window (and fill it to go uncounted).
    func home(mask: Int, seed: UInt64) -> Int {
        var z = (self.value ^ seed) &+ 0x9E37_79B9_7F4A_7C15
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        z = z ^ (z >> 31)
        return Int(truncatingIfNeeded: z) & mask
    }
}
