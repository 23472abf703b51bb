import NIOCore

#if canImport(Glibc)
    import Glibc
#endif

/// The PROXY protocol header (v1 text or v2 binary, haproxy.org/download/2.9/doc/proxy-protocol.txt)
/// that an L4 balancer in front of Junction sends first on every connection: a parser without I/O.
/// `ClientConnection` holds the bytes until the header is whole, then hands what follows it to the
/// next phase; a connection that does not start with a valid header is closed.
enum ProxyProtocolHeader {
    /// Why a header was refused.
    enum Problem: Error, Equatable {
        case notProxyProtocol
        case malformed(String)
    }

    /// The result of parsing the bytes so far.
    enum Parse: Equatable {
        /// More bytes are needed.
        case incomplete
        /// A whole header of `length` bytes announcing `client` (nil for `UNKNOWN`/`LOCAL`: keep
        /// the socket's peer).
        case header(length: Int, client: String?)
    }

    /// v1 headers are at most 107 bytes; v2 headers at most 16 + 65535.
    static let v1MaximumLength = 107
    static let v2Signature: [UInt8] = [0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A]

    /// Parses a header at the start of `bytes`.
    /// Copies at most a v1 line or the v2 fixed part until the whole header is there, so a header
    /// dribbled in byte by byte costs no more than one sent at once.
    static func parse<Bytes: Collection>(_ bytes: Bytes) throws -> Parse where Bytes.Element == UInt8 {
        guard let first = bytes.first else { return .incomplete }
        if first == UInt8(ascii: "P") {
            return try self.parseV1(Array(bytes.prefix(Self.v1MaximumLength)))
        }
        if first == Self.v2Signature[0] {
            let fixed = Array(bytes.prefix(16))
            guard fixed.count == 16 else { return try self.parseV2(fixed) }
            let total = 16 + (Int(fixed[14]) << 8 | Int(fixed[15]))
            // Until the address block is complete, check what is there (signature, version).
            guard bytes.count >= total else { return try self.parseV2(fixed) }
            return try self.parseV2(Array(bytes.prefix(total)))
        }
        throw Problem.notProxyProtocol
    }

    private static func parseV1(_ bytes: [UInt8]) throws -> Parse {
        let prefix = Array("PROXY ".utf8)
        guard bytes.prefix(prefix.count).elementsEqual(prefix.prefix(min(prefix.count, bytes.count))) else {
            throw Problem.notProxyProtocol
        }
        guard let newline = bytes.firstIndex(of: UInt8(ascii: "\n")) else {
            if bytes.count >= Self.v1MaximumLength { throw Problem.malformed("v1 header longer than 107 bytes") }
            return .incomplete
        }
        guard newline > 0, bytes[newline - 1] == UInt8(ascii: "\r"), newline < Self.v1MaximumLength else {
            throw Problem.malformed("v1 header not ended by CRLF")
        }
        let line = String(decoding: bytes[prefix.count..<(newline - 1)], as: UTF8.self)
        let fields = line.split(separator: " ", omittingEmptySubsequences: false)
        guard let family = fields.first else { throw Problem.malformed("empty v1 header") }
        switch family {
        case "UNKNOWN":
            return .header(length: newline + 1, client: nil)
        case "TCP4", "TCP6":
            guard fields.count == 5,
                let sourcePort = Int(fields[3]), (0...65535).contains(sourcePort),
                let destinationPort = Int(fields[4]), (0...65535).contains(destinationPort),
                let source = try? SocketAddress(ipAddress: String(fields[1]), port: sourcePort),
                (try? SocketAddress(ipAddress: String(fields[2]), port: destinationPort)) != nil
            else { throw Problem.malformed("bad v1 addresses") }
            let isV4: Bool
            if case .v4 = source { isV4 = true } else { isV4 = false }
            guard isV4 == (family == "TCP4") else { throw Problem.malformed("address family does not match \(family)") }
            return .header(length: newline + 1, client: source.ipAddress)
        default:
            throw Problem.malformed("unknown v1 protocol \(family)")
        }
    }

    private static func parseV2(_ bytes: [UInt8]) throws -> Parse {
        let signatureBytes = min(bytes.count, Self.v2Signature.count)
        guard bytes.prefix(signatureBytes).elementsEqual(Self.v2Signature.prefix(signatureBytes)) else {
            throw Problem.notProxyProtocol
        }
        guard bytes.count >= 16 else { return .incomplete }
        let versionCommand = bytes[12]
        guard versionCommand >> 4 == 2 else { throw Problem.malformed("v2 version \(versionCommand >> 4)") }
        let length = Int(bytes[14]) << 8 | Int(bytes[15])
        guard bytes.count >= 16 + length else { return .incomplete }
        let total = 16 + length
        switch versionCommand & 0x0F {
        case 0x0:  // LOCAL: a health check of the balancer itself
            return .header(length: total, client: nil)
        case 0x1:  // PROXY
            break
        default:
            throw Problem.malformed("v2 command \(versionCommand & 0x0F)")
        }
        let address = Array(bytes[16..<total])
        switch bytes[13] {
        case 0x11, 0x12:  // TCP or UDP over IPv4
            guard address.count >= 12 else { throw Problem.malformed("v2 IPv4 block too short") }
            let ip = address[0..<4].map(String.init).joined(separator: ".")
            return .header(length: total, client: ip)
        case 0x21, 0x22:  // TCP or UDP over IPv6
            guard address.count >= 36 else { throw Problem.malformed("v2 IPv6 block too short") }
            var socketAddress = sockaddr_in6()
            socketAddress.sin6_family = sa_family_t(AF_INET6)
            withUnsafeMutableBytes(of: &socketAddress.sin6_addr) { $0.copyBytes(from: address[0..<16]) }
            return .header(length: total, client: SocketAddress(socketAddress, host: "").ipAddress)
        case 0x00:  // UNSPEC
            return .header(length: total, client: nil)
        default:
            throw Problem.malformed("v2 address family \(bytes[13])")
        }
    }
}
