import NIOCore

/// Looks into the first TLS record of a connection for one thing only: whether the ClientHello
/// offers the ALPN protocol `acme-tls/1` (RFC 8737), which only an ACME validation does. The
/// handshake itself stays BoringSSL's; this reads and never consumes, and any byte it does not
/// understand means "not a validation", so the normal handshake (which reports the error) goes on.
///
/// It is needed because the certificate must be chosen before ALPN is negotiated (BoringSSL runs
/// the certificate callback first) and swift-nio-ssl's callback sees only the server name. The
/// layout follows RFC 8446 section 4.1.2 (the same for TLS 1.2's ClientHello).
enum ClientHelloPeek {
    enum Verdict: Equatable {
        /// The first record is not complete yet.
        case incomplete
        /// The ClientHello offers `acme-tls/1`.
        case acmeValidation
        /// Anything else (another protocol list, no ALPN, not TLS, a ClientHello over several
        /// records).
        case other
    }

    /// The largest record a ClientHello comes in (2^14 plus some slack for padding).
    static let maxRecord = 16384 + 256
    private static let alpnName = Array("acme-tls/1".utf8)

    static func inspect(_ buffer: ByteBuffer) -> Verdict {
        buffer.withUnsafeReadableBytes { self.inspect($0) }
    }

    static func inspect(_ bytes: UnsafeRawBufferPointer) -> Verdict {
        // Record header: type 22 (handshake), version, length.
        guard bytes.count >= 1 else { return .incomplete }
        guard bytes[0] == 22 else { return .other }
        guard bytes.count >= 5 else { return .incomplete }
        let recordLength = Int(bytes[3]) << 8 | Int(bytes[4])
        guard recordLength <= Self.maxRecord else { return .other }
        guard bytes.count >= 5 + recordLength else { return .incomplete }
        var reader = Reader(bytes: UnsafeRawBufferPointer(rebasing: bytes[5..<(5 + recordLength)]))
        // Handshake header: type 1 (client_hello), 24-bit length within this record.
        guard reader.byte() == 1, let length = reader.integer(3), length <= reader.remaining else { return .other }
        reader.limit(to: length)
        // legacy_version, random, session id, cipher suites, compression methods.
        guard reader.skip(2 + 32), reader.skipVector(lengthBytes: 1), reader.skipVector(lengthBytes: 2),
            reader.skipVector(lengthBytes: 1), let extensionsLength = reader.integer(2),
            extensionsLength <= reader.remaining
        else { return .other }
        reader.limit(to: extensionsLength)
        while reader.remaining > 0 {
            guard let type = reader.integer(2), let length = reader.integer(2), length <= reader.remaining else {
                return .other
            }
            guard type == 16 else {
                _ = reader.skip(length)
                continue
            }
            // application_layer_protocol_negotiation: a 2-byte list of 1-byte-length names.
            var list = reader
            list.limit(to: length)
            guard let listLength = list.integer(2), listLength <= list.remaining else { return .other }
            list.limit(to: listLength)
            while list.remaining > 0 {
                guard let nameLength = list.integer(1), nameLength <= list.remaining else { return .other }
                if list.matches(Self.alpnName, length: nameLength) { return .acmeValidation }
                _ = list.skip(nameLength)
            }
            return .other
        }
        return .other
    }

    /// A bounds-checked cursor over the record.
    private struct Reader {
        var bytes: UnsafeRawBufferPointer
        var offset = 0
        var end: Int

        init(bytes: UnsafeRawBufferPointer) {
            self.bytes = bytes
            self.end = bytes.count
        }

        var remaining: Int { self.end - self.offset }

        /// Narrows the cursor to the next `count` bytes.
        mutating func limit(to count: Int) {
            self.end = self.offset + count
        }

        mutating func byte() -> UInt8? {
            guard self.remaining >= 1 else { return nil }
            defer { self.offset += 1 }
            return self.bytes[self.offset]
        }

        /// A big-endian integer of `width` bytes.
        mutating func integer(_ width: Int) -> Int? {
            guard self.remaining >= width else { return nil }
            var value = 0
            for index in 0..<width { value = value << 8 | Int(self.bytes[self.offset + index]) }
            self.offset += width
            return value
        }

        mutating func skip(_ count: Int) -> Bool {
            guard self.remaining >= count else { return false }
            self.offset += count
            return true
        }

        mutating func skipVector(lengthBytes: Int) -> Bool {
            guard let length = self.integer(lengthBytes) else { return false }
            return self.skip(length)
        }

        func matches(_ name: [UInt8], length: Int) -> Bool {
            guard length == name.count, self.remaining >= length else { return false }
            for index in 0..<length where self.bytes[self.offset + index] != name[index] { return false }
            return true
        }
    }
}
