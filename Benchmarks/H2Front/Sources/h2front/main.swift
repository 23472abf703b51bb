// Measurement spike: three HTTP/2 fronts answering every request with a 100-byte body.
//   a: libnghttp2 driven by one connection-level handler (mem_recv / mem_send)
//   b: NIOHTTP2Handler without a stream multiplexer, one frame-level handler
//   c: NIOHTTP2Handler + HTTP2StreamMultiplexer + a handler per stream (Junction today)
import CNGHTTP2
import Dispatch
import Foundation
import NIOCore
import NIOHPACK
import NIOHTTP2
import NIOPosix
import NIOSSL

let args = CommandLine.arguments
guard args.count >= 3, ["a", "b", "c"].contains(args[1]), let port = Int(args[2]) else {
    FileHandle.standardError.write("usage: h2front a|b|c PORT [CERT KEY]\n".data(using: .utf8)!)
    exit(2)
}
let mode = args[1]
let certPath = args.count > 3 ? args[3] : "../../certs/dev.pem"
let keyPath = args.count > 4 ? args[4] : "../../certs/dev-key.pem"

let bodyBytes: [UInt8] = Array(repeating: UInt8(ascii: "x"), count: 99) + [UInt8(ascii: "\n")]

// MARK: - (a) libnghttp2

/// Static response header block (nghttp2 keeps the pointers: NO_COPY flags).
nonisolated(unsafe) let ngBody: UnsafeMutablePointer<UInt8> = {
    let p = UnsafeMutablePointer<UInt8>.allocate(capacity: bodyBytes.count)
    p.initialize(from: bodyBytes, count: bodyBytes.count)
    return p
}()

func cString(_ s: String) -> (UnsafeMutablePointer<UInt8>, Int) {
    let bytes = Array(s.utf8)
    let p = UnsafeMutablePointer<UInt8>.allocate(capacity: bytes.count + 1)
    p.initialize(from: bytes, count: bytes.count)
    p[bytes.count] = 0
    return (p, bytes.count)
}

nonisolated(unsafe) let ngResponseNV: UnsafeMutablePointer<nghttp2_nv> = {
    let pairs = [(":status", "200"), ("content-type", "text/plain"), ("content-length", "100")]
    let nv = UnsafeMutablePointer<nghttp2_nv>.allocate(capacity: pairs.count)
    for (i, (n, v)) in pairs.enumerated() {
        let (np, nl) = cString(n)
        let (vp, vl) = cString(v)
        nv[i] = nghttp2_nv(
            name: np, value: vp, namelen: nl, valuelen: vl,
            flags: UInt8(NGHTTP2_NV_FLAG_NO_COPY_NAME.rawValue | NGHTTP2_NV_FLAG_NO_COPY_VALUE.rawValue))
    }
    return nv
}()
let ngResponseNVCount = 3

/// Session callbacks, built once (nghttp2_session_server_new copies them).
nonisolated(unsafe) let ngCallbacks: OpaquePointer = {
    var cbs: OpaquePointer?
    precondition(nghttp2_session_callbacks_new(&cbs) == 0)
    nghttp2_session_callbacks_set_on_begin_headers_callback(cbs) { _, frame, user in
        guard let frame, frame.pointee.hd.type == UInt8(NGHTTP2_HEADERS.rawValue),
            frame.pointee.headers.cat == NGHTTP2_HCAT_REQUEST
        else { return 0 }
        let h = Unmanaged<NGHTTP2Handler>.fromOpaque(user!).takeUnretainedValue()
        h.streams[frame.pointee.hd.stream_id] = NGHTTP2Handler.Stream()
        return 0
    }
    nghttp2_session_callbacks_set_on_header_callback(cbs) { _, frame, name, namelen, value, valuelen, _, user in
        // nghttp2 validates the header block itself (http messaging on); we keep only :method.
        guard let frame, let name, namelen == 7, name[0] == UInt8(ascii: ":"), name[1] == UInt8(ascii: "m")
        else { return 0 }
        let h = Unmanaged<NGHTTP2Handler>.fromOpaque(user!).takeUnretainedValue()
        let id = frame.pointee.hd.stream_id
        h.streams[id]?.isHead = valuelen == 4 && value![0] == UInt8(ascii: "H")
        return 0
    }
    nghttp2_session_callbacks_set_on_frame_recv_callback(cbs) { session, frame, user in
        guard let frame else { return 0 }
        let type = frame.pointee.hd.type
        guard type == UInt8(NGHTTP2_HEADERS.rawValue) || type == UInt8(NGHTTP2_DATA.rawValue),
            frame.pointee.hd.flags & UInt8(NGHTTP2_FLAG_END_STREAM.rawValue) != 0
        else { return 0 }
        let h = Unmanaged<NGHTTP2Handler>.fromOpaque(user!).takeUnretainedValue()
        let id = frame.pointee.hd.stream_id
        guard let stream = h.streams[id] else { return 0 }
        if stream.isHead {
            return nghttp2_submit_response(session, id, ngResponseNV, ngResponseNVCount, nil)
        }
        var provider = nghttp2_data_provider()
        provider.source.ptr = nil
        provider.read_callback = { _, id, buf, length, flags, _, user in
            let h = Unmanaged<NGHTTP2Handler>.fromOpaque(user!).takeUnretainedValue()
            let offset = h.streams[id]?.offset ?? 0
            let n = min(length, bodyBytes.count - offset)
            buf!.update(from: ngBody + offset, count: n)
            if offset + n == bodyBytes.count {
                flags!.pointee |= NGHTTP2_DATA_FLAG_EOF.rawValue
            } else {
                h.streams[id]?.offset = offset + n
            }
            return n
        }
        return nghttp2_submit_response(session, id, ngResponseNV, ngResponseNVCount, &provider)
    }
    nghttp2_session_callbacks_set_on_stream_close_callback(cbs) { _, id, _, user in
        let h = Unmanaged<NGHTTP2Handler>.fromOpaque(user!).takeUnretainedValue()
        h.streams.removeValue(forKey: id)
        return 0
    }
    return cbs!
}()

/// Session options: nghttp2's flood protections, set explicitly at their documented defaults.
nonisolated(unsafe) let ngOptions: OpaquePointer = {
    var opt: OpaquePointer?
    precondition(nghttp2_option_new(&opt) == 0)
    nghttp2_option_set_max_outbound_ack(opt, 1000)  // queued SETTINGS/PING acks
    nghttp2_option_set_max_settings(opt, 32)  // entries per SETTINGS frame
    nghttp2_option_set_stream_reset_rate_limit(opt, 1000, 33)  // rapid reset (CVE-2023-44487)
    nghttp2_option_set_max_continuations(opt, 8)  // CONTINUATION flood (CVE-2024-27316 class)
    nghttp2_option_set_max_deflate_dynamic_table_size(opt, 4096)
    return opt!
}()

final class NGHTTP2Handler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    struct Stream {
        var isHead = false
        var offset = 0
    }

    var session: OpaquePointer?
    var streams: [Int32: Stream] = [:]
    var out: ByteBuffer = ByteBufferAllocator().buffer(capacity: 16384)

    func handlerAdded(context: ChannelHandlerContext) {
        let user = Unmanaged.passUnretained(self).toOpaque()
        precondition(nghttp2_session_server_new2(&self.session, ngCallbacks, user, ngOptions) == 0)
        var iv = nghttp2_settings_entry(settings_id: Int32(NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS.rawValue), value: 100)
        _ = nghttp2_submit_settings(self.session, UInt8(NGHTTP2_FLAG_NONE.rawValue), &iv, 1)
        if context.channel.isActive { self.send(context: context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        self.send(context: context)
        context.fireChannelActive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        if let s = self.session {
            nghttp2_session_del(s)
            self.session = nil
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard let session = self.session else { return }
        let buffer = self.unwrapInboundIn(data)
        let rv = buffer.withUnsafeReadableBytes { raw in
            nghttp2_session_mem_recv(session, raw.baseAddress!.assumingMemoryBound(to: UInt8.self), raw.count)
        }
        if rv < 0 {
            // Fatal to the session: nghttp2 has queued a GOAWAY where it could; send it, then close.
            self.send(context: context)
            context.close(promise: nil)
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        self.send(context: context)
        context.fireChannelReadComplete()
    }

    /// Drains nghttp2's outbound frames into one buffer, one write + flush per read burst.
    func send(context: ChannelHandlerContext) {
        guard let session = self.session else { return }
        self.out.clear()
        while true {
            var p: UnsafePointer<UInt8>?
            let n = nghttp2_session_mem_send(session, &p)
            if n < 0 {
                context.close(promise: nil)
                return
            }
            if n == 0 { break }
            self.out.writeBytes(UnsafeRawBufferPointer(start: p, count: n))
        }
        if self.out.readableBytes > 0 {
            context.writeAndFlush(self.wrapOutboundOut(self.out), promise: nil)
        }
        if nghttp2_session_want_read(session) == 0 && nghttp2_session_want_write(session) == 0 {
            context.close(promise: nil)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        context.close(promise: nil)
    }
}

// MARK: - shared response for b and c

let responseHeaders: HPACKHeaders = [":status": "200", "content-type": "text/plain", "content-length": "100"]
let responseBody: ByteBuffer = ByteBuffer(bytes: bodyBytes)

// MARK: - (b) NIOHTTP2Handler without multiplexer: frames into one handler

final class FrameHandler: ChannelInboundHandler {
    typealias InboundIn = HTTP2Frame
    typealias OutboundOut = HTTP2Frame

    /// Per-stream plain state: only whether it is a HEAD (no body in the answer).
    var heads: Set<HTTP2StreamID> = []
    var needsFlush = false

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = self.unwrapInboundIn(data)
        switch frame.payload {
        case .headers(let h):
            let isHead = h.headers.first(name: ":method") == "HEAD"
            if h.endStream {
                self.respond(context: context, id: frame.streamID, isHead: isHead)
            } else if isHead {
                self.heads.insert(frame.streamID)
            }
        case .data(let d):
            // No multiplexer, so no one else opens flow-control windows: give back what was read.
            let n = d.data.readableBytes
            if n > 0 {
                context.write(self.wrapOutboundOut(HTTP2Frame(streamID: .rootStream, payload: .windowUpdate(windowSizeIncrement: n))), promise: nil)
                if !d.endStream {
                    context.write(self.wrapOutboundOut(HTTP2Frame(streamID: frame.streamID, payload: .windowUpdate(windowSizeIncrement: n))), promise: nil)
                }
                self.needsFlush = true
            }
            if d.endStream {
                let isHead = self.heads.remove(frame.streamID) != nil
                self.respond(context: context, id: frame.streamID, isHead: isHead)
            }
        case .rstStream:
            self.heads.remove(frame.streamID)
        default:
            break
        }
    }

    func respond(context: ChannelHandlerContext, id: HTTP2StreamID, isHead: Bool) {
        context.write(self.wrapOutboundOut(HTTP2Frame(streamID: id, payload: .headers(.init(headers: responseHeaders, endStream: isHead)))), promise: nil)
        if !isHead {
            context.write(self.wrapOutboundOut(HTTP2Frame(streamID: id, payload: .data(.init(data: .byteBuffer(responseBody), endStream: true)))), promise: nil)
        }
        self.needsFlush = true
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        if self.needsFlush {
            self.needsFlush = false
            context.flush()
        }
        context.fireChannelReadComplete()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        // Stream and connection errors are handled by NIOHTTP2Handler (RST_STREAM / GOAWAY + close).
    }
}

// MARK: - (c) multiplexer + a handler per stream (as Junction)

final class FlushCoalescer: ChannelOutboundHandler {
    typealias OutboundIn = Any
    private var flushScheduled = false
    func flush(context: ChannelHandlerContext) {
        guard !self.flushScheduled else { return }
        self.flushScheduled = true
        context.eventLoop.assumeIsolated().execute {
            self.flushScheduled = false
            context.flush()
        }
    }
}

final class StreamHandler: ChannelInboundHandler {
    typealias InboundIn = HTTP2Frame.FramePayload
    typealias OutboundOut = HTTP2Frame.FramePayload
    var isHead = false

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch self.unwrapInboundIn(data) {
        case .headers(let h):
            self.isHead = h.headers.first(name: ":method") == "HEAD"
            if h.endStream { self.respond(context: context) }
        case .data(let d):
            if d.endStream { self.respond(context: context) }
        default:
            break
        }
    }

    func respond(context: ChannelHandlerContext) {
        context.write(self.wrapOutboundOut(.headers(.init(headers: responseHeaders, endStream: self.isHead))), promise: nil)
        if !self.isHead {
            context.write(self.wrapOutboundOut(.data(.init(data: .byteBuffer(responseBody), endStream: true))), promise: nil)
        }
        context.flush()
    }
}

// MARK: - server

func h2Settings() -> NIOHTTP2Handler.ConnectionConfiguration {
    var c = NIOHTTP2Handler.ConnectionConfiguration()
    c.initialSettings = [
        HTTP2Setting(parameter: .maxConcurrentStreams, value: 100),
        HTTP2Setting(parameter: .maxHeaderListSize, value: 16384),
        HTTP2Setting(parameter: .initialWindowSize, value: 65535),
    ]
    return c
}

var tls = TLSConfiguration.makeServerConfiguration(
    certificateChain: try NIOSSLCertificate.fromPEMFile(certPath).map { .certificate($0) },
    privateKey: .privateKey(try NIOSSLPrivateKey(file: keyPath, format: .pem))
)
tls.applicationProtocols = ["h2"]
let sslContext = try NIOSSLContext(configuration: tls)

let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
let bootstrap = ServerBootstrap(group: group)
    .serverChannelOption(.backlog, value: 4096)
    .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
    .childChannelOption(.tcpOption(.tcp_nodelay), value: 1)
    .childChannelOption(.recvAllocator, value: AdaptiveRecvByteBufferAllocator(minimum: 64, initial: 256, maximum: 65536))
    .childChannelInitializer { channel in
        channel.eventLoop.makeCompletedFuture {
            let sync = channel.pipeline.syncOperations
            try sync.addHandler(NIOSSLServerHandler(context: sslContext))
            switch mode {
            case "a":
                try sync.addHandler(NGHTTP2Handler())
            case "b":
                try sync.addHandler(NIOHTTP2Handler(mode: .server, connectionConfiguration: h2Settings()))
                try sync.addHandler(FrameHandler())
            default:
                let codec = NIOHTTP2Handler(mode: .server, connectionConfiguration: h2Settings())
                let mux = HTTP2StreamMultiplexer(
                    mode: .server, channel: channel, targetWindowSize: 65535,
                    inboundStreamInitializer: { stream in
                        stream.eventLoop.makeCompletedFuture {
                            try stream.pipeline.syncOperations.addHandler(StreamHandler())
                        }
                    })
                try sync.addHandler(FlushCoalescer())
                try sync.addHandler(codec)
                try sync.addHandler(mux)
            }
        }
    }

// SIGTERM/SIGINT -> exit(0), so LD_PRELOAD shims' destructors run.
signal(SIGTERM, SIG_IGN)
signal(SIGINT, SIG_IGN)
let sigQueue = DispatchQueue(label: "signals")
let sources = [SIGTERM, SIGINT].map { sig in
    let s = DispatchSource.makeSignalSource(signal: sig, queue: sigQueue)
    s.setEventHandler { exit(0) }
    s.resume()
    return s
}

let server = try bootstrap.bind(host: "127.0.0.1", port: port).wait()
print("h2front mode \(mode) listening on 127.0.0.1:\(port) pid \(getpid())")
fflush(stdout)
try server.closeFuture.wait()
_ = sources
