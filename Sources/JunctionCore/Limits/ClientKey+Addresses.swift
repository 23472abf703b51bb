import NIOCore

#if canImport(Glibc)
    import Glibc
#endif

/// A client's key from the addresses Junction sees: a socket's peer, or an address as text (a
/// PROXY header's). Apart from `ClientKey` so that the tables build without NIO
/// (`Benchmarks/limits_cost.sh`).
extension ClientKey {
    /// The key of a socket's peer; nil for a UNIX socket.
    init?(_ address: SocketAddress) {
        switch address {
        case .v4(let v4):
            self.init(ipv4: UInt32(bigEndian: v4.address.sin_addr.s_addr))
        case .v6(let v6):
            var raw = v6.address.sin6_addr
            self = withUnsafeBytes(of: &raw) { ClientKey(ipv6: $0) }
        case .unixDomainSocket:
            return nil
        }
    }

    /// The key of an address written as text (a PROXY header's, a front's client address).
    init?(text: String) {
        var v4 = in_addr()
        if inet_pton(AF_INET, text, &v4) == 1 {
            self.init(ipv4: UInt32(bigEndian: v4.s_addr))
            return
        }
        var v6 = in6_addr()
        guard inet_pton(AF_INET6, text, &v6) == 1 else { return nil }
        self = withUnsafeBytes(of: &v6) { ClientKey(ipv6: $0) }
    }
}
