/// Request IDs: a client's well-formed X-Request-ID is kept, otherwise one is generated.
///
/// One generator per event loop: a wyrand stream seeded from the system, so generating an ID costs
/// no syscall and no lock.
struct RequestID {
    private var state: UInt64

    init() {
        var system = SystemRandomNumberGenerator()
        self.state = system.next()
    }

    /// 32 lowercase hex digits, like nginx's `$request_id`: two outputs of a generator with 64 bits
    /// of state, so unique and unguessable enough for tracing, not 128 bits of entropy.
    mutating func next() -> String {
        let high = self.nextWord()
        let low = self.nextWord()
        return String(unsafeUninitializedCapacity: 32) { buffer in
            let digits: StaticString = "0123456789abcdef"
            let table = digits.utf8Start
            for nibble in 0..<16 {
                let shift = UInt64(60 - nibble * 4)
                buffer[nibble] = table[Int((high >> shift) & 0xF)]
                buffer[16 + nibble] = table[Int((low >> shift) & 0xF)]
            }
            return 32
        }
    }

    private mutating func nextWord() -> UInt64 {
        self.state &+= 0xA076_1D64_78BD_642F
        let product = self.state.multipliedFullWidth(by: self.state ^ 0xE703_7ED1_A0B4_28DB)
        return product.high ^ product.low
    }

    /// `[A-Za-z0-9._:/+=-]{1,200}`.
    static func isAcceptable(_ value: String) -> Bool {
        let bytes = value.utf8
        guard (1...200).contains(bytes.count) else { return false }
        return bytes.allSatisfy { byte in
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: ":"),
                UInt8(ascii: "/"), UInt8(ascii: "+"), UInt8(ascii: "="), UInt8(ascii: "-"):
                return true
            default:
                return false
            }
        }
    }
}
