import CLibFuzzer
import NIOCore
import NIOEmbedded

@testable import JunctionCore

/// The whole HTTP/2 front on an embedded channel (connection setup, `NGHTTP2ConnectionHandler`, its
/// session and streams, the head conversion, routing and Junction's own answers), with fuzzed frames
/// behind a valid preface and SETTINGS, cut into reads where the first byte says: never traps,
/// what is written back is whole HTTP/2 frames starting with the server's SETTINGS, and a GOAWAY
/// with an error code is the last frame, followed by the close.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    guard size >= 1 else { return 0 }
    let bytes = UnsafeBufferPointer(start: data, count: size)
    let channel = EmbeddedChannel()
    defer { _ = try? channel.finish() }
    var listener = ListenerConfig(name: "fuzz", address: HostPort(host: "127.0.0.1", port: 80))
    listener.http2 = true
    let preface = Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8) + [0, 0, 0, 4, 0, 0, 0, 0, 0]
    let input = preface + Array(bytes.dropFirst())
    let step = Int(bytes[0]) * 4 + 1
    do {
        try ClientConnection.install(
            on: channel,
            loop: Harness.loop(channel),
            settings: ListenerSettings(config: listener, tls: nil)
        )
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        var offset = 0
        while offset < input.count && channel.isActive {
            let end = min(input.count, offset + step)
            try channel.writeInbound(ByteBuffer(bytes: input[offset..<end]))
            offset = end
        }
    } catch {
        // A closed channel or a refused write: the connection ended, which is allowed.
    }
    channel.embeddedEventLoop.run()
    var written: [UInt8] = []
    while let part = try? channel.readOutbound(as: IOData.self) {
        if case .byteBuffer(let buffer) = part { written += buffer.readableBytesView }
    }
    // Whole frames only, the server's SETTINGS first.
    var index = 0
    var frames: [(type: UInt8, code: UInt32?)] = []
    while index < written.count {
        precondition(index + 9 <= written.count, "a cut frame header at \(index) of \(written.count)")
        let length = Int(written[index]) << 16 | Int(written[index + 1]) << 8 | Int(written[index + 2])
        let type = written[index + 3]
        precondition(index + 9 + length <= written.count, "a cut frame of type \(type)")
        let code: UInt32? =
            type == 7 && length >= 8
            ? written[(index + 13)..<(index + 17)].reduce(0) { $0 << 8 | UInt32($1) } : nil
        frames.append((type, code))
        index += 9 + length
    }
    precondition(frames.first?.type == 4, "the server's SETTINGS comes first: \(frames.map(\.type))")
    if let error = frames.firstIndex(where: { ($0.code ?? 0) != 0 }) {
        precondition(error == frames.count - 1, "frames after a connection error's GOAWAY: \(frames.map(\.type))")
        precondition(!channel.isActive, "the connection stays open after a connection error")
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

/// SwiftPM links an executable's entry point as `FuzzHTTP2Front_main`: hand over to libFuzzer's driver.
@_cdecl("FuzzHTTP2Front_main")
public func fuzzerMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    JunctionFuzzMain(argc, argv, fuzz)
}
