import NIOCore
import NIOEmbedded
import NIOSSL

/// Real ClientHellos, as BoringSSL writes them through swift-nio-ssl: the peek is tested against
/// what clients send, not against its author's reading of RFC 8446.
enum ClientHelloSamples {
    /// The bytes a TLS client writes first: its ClientHello, offering `alpn` for `serverName`.
    static func capture(alpn: [String], serverName: String? = "chat.example.com") throws -> [UInt8] {
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.applicationProtocols = alpn
        configuration.certificateVerification = .none
        let context = try NIOSSLContext(configuration: configuration)
        let channel = EmbeddedChannel()
        defer { _ = try? channel.finish() }
        try channel.pipeline.syncOperations.addHandler(
            try NIOSSLClientHandler(context: context, serverHostname: serverName)
        )
        // Connecting starts the handshake: the client speaks first.
        try channel.connect(to: try SocketAddress(ipAddress: "127.0.0.1", port: 443)).wait()
        var bytes: [UInt8] = []
        while let written = try channel.readOutbound(as: ByteBuffer.self) { bytes += written.readableBytesView }
        return bytes
    }

    /// What an ACME CA's tls-alpn-01 validator offers (RFC 8737 section 3): `acme-tls/1` alone.
    static func validation() throws -> [UInt8] { try self.capture(alpn: ["acme-tls/1"]) }

    /// What a browser offers.
    static func browser() throws -> [UInt8] { try self.capture(alpn: ["h2", "http/1.1"]) }

    /// Where `acme-tls/1`'s length byte is in `hello` (the ALPN extension's type is 6 bytes before it).
    static func alpnNameOffset(in hello: [UInt8]) -> Int? {
        let name: [UInt8] = [10] + Array("acme-tls/1".utf8)
        guard hello.count >= name.count else { return nil }
        return (0...(hello.count - name.count)).first { hello[$0..<($0 + name.count)].elementsEqual(name) }
    }
}
