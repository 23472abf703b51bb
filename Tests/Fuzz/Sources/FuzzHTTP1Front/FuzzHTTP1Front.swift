import CLibFuzzer
import NIOCore
import NIOEmbedded

@testable import JunctionCore

/// The whole HTTP/1.1 front on an embedded channel (connection setup, NIO's decoder, Junction's
/// inspection, routing and rewrite), with fuzzed client bytes: never traps, and everything written
/// back starts as an HTTP/1.1 response.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    guard size >= 1 else { return 0 }
    let bytes = UnsafeBufferPointer(start: data, count: size)
    let channel = EmbeddedChannel()
    defer { _ = try? channel.finish() }
    var listener = ListenerConfig(name: "fuzz", address: HostPort(host: "127.0.0.1", port: 80))
    listener.proxyProtocol = bytes[0] & 1 != 0
    listener.http2 = bytes[0] & 2 != 0
    do {
        try ClientConnection.install(
            on: channel,
            loop: Harness.loop(channel),
            settings: ListenerSettings(config: listener, tls: nil)
        )
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        // The rest in two reads, cut where the first byte says.
        let rest = bytes.dropFirst()
        let cut = rest.startIndex + min(rest.count, Int(bytes[0] >> 2))
        for part in [rest[rest.startIndex..<cut], rest[cut...]] where !part.isEmpty {
            try channel.writeInbound(ByteBuffer(bytes: part))
        }
    } catch {
        // A closed channel or a refused write: the connection ended, which is allowed.
    }
    channel.embeddedEventLoop.run()
    var written: [UInt8] = []
    while let part = try? channel.readOutbound(as: IOData.self) {
        if case .byteBuffer(let buffer) = part { written += buffer.readableBytesView }
    }
    if !written.isEmpty && !(listener.http2 && written.starts(with: [0, 0])) {
        precondition(
            written.starts(with: Array("HTTP/1.".utf8)),
            "wrote \(String(decoding: written.prefix(40), as: UTF8.self))"
        )
    }
    return 0
}

/// One route to a pool whose only backend is backing off: requests are answered without network.
enum Harness {
    static func loop(_ channel: EmbeddedChannel) throws -> LoopContext {
        let backend = Backend(
            address: try SocketAddress(ipAddress: "127.0.0.1", port: 9),
            label: "127.0.0.1:9",
            weight: 1,
            poolName: "app"
        )
        backend.recordConnectFailure(at: .now())
        var config = JunctionConfig()
        var ddp = RouteConfig(name: "ddp", pool: "app")
        ddp.pathPrefixes = ["/websocket", "/sockjs"]
        ddp.hosts = ["chat.example.com", "*.example.org"]
        config.routes = [ddp, RouteConfig(name: "app", pool: "app")]
        var limits = LimitsConfig()
        limits.maxBodyBytes = 1000
        limits.maxHeaderBytes = 4096
        config.limits = limits
        let pool = Pool(
            name: "app",
            backends: [backend],
            balancer: LeastConnectionsBalancer(),
            timeouts: UpstreamTimeouts(),
            retries: 0,
            healthCheck: nil
        )
        return LoopContext(
            eventLoop: channel.embeddedEventLoop,
            runtime: RuntimeConfig(config: config, pools: ["app": pool]),
            accessLogSink: nil
        )
    }
}

/// SwiftPM links an executable's entry point as `FuzzHTTP1Front_main`: hand over to libFuzzer's driver.
@_cdecl("FuzzHTTP1Front_main")
public func fuzzerMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    JunctionFuzzMain(argc, argv, fuzz)
}
