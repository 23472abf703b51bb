import NIOCore
import NIOEmbedded
import NIOHTTP1
import Testing

@testable import JunctionCore

#if canImport(Glibc)
    import Glibc
#endif

/// The HTTP/1.1 front and the tunnel glue, driven through `EmbeddedChannel`.
@Suite("Channel handlers")
struct HandlerTests {
    /// A front on an embedded channel with one route (host `app.test`) to a pool whose only backend
    /// is backing off, so requests are answered without any network.
    static func makeFront(proxyProtocol: Bool = false, http2: Bool = false) throws -> (EmbeddedChannel, Backend) {
        let channel = EmbeddedChannel()
        let backend = Backend(
            address: try SocketAddress(ipAddress: "127.0.0.1", port: 9),
            label: "127.0.0.1:9",
            weight: 1,
            poolName: "app"
        )
        backend.recordConnectFailure(at: .now())
        var config = JunctionConfig()
        var route = RouteConfig(name: "app", pool: "app")
        route.hosts = ["app.test"]
        config.routes = [route]
        var limits = LimitsConfig()
        limits.maxBodyBytes = 100
        config.limits = limits
        let pool = Pool(
            name: "app",
            backends: [backend],
            balancer: LeastConnectionsBalancer(),
            timeouts: UpstreamTimeouts(),
            retries: 0,
            healthCheck: nil
        )
        let runtime = RuntimeConfig(config: config, pools: ["app": pool])
        let loop = LoopContext(eventLoop: channel.embeddedEventLoop, runtime: runtime, accessLogSink: nil)
        // A plain listener: without the PROXY protocol or HTTP/2, the connection's owner sets up
        // the HTTP/1.1 front at once; with either, it reads the first bytes itself.
        var listener = ListenerConfig(name: "test", address: HostPort(host: "127.0.0.1", port: 80))
        listener.proxyProtocol = proxyProtocol
        listener.http2 = http2
        let settings = ListenerSettings(config: listener, tls: nil)
        try ClientConnection.install(on: channel, loop: loop, settings: settings)
        try channel.connect(to: try SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        return (channel, backend)
    }

    /// Everything the channel wrote, as text.
    static func written(_ channel: EmbeddedChannel) throws -> String {
        var text = ""
        while let data = try channel.readOutbound(as: IOData.self) {
            if case .byteBuffer(let buffer) = data { text += String(buffer: buffer) }
        }
        return text
    }

    /// An admin-style responder on an embedded connection; `readsBody` picks the answering init.
    static func makeResponder(readsBody: Bool) throws -> EmbeddedChannel {
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.configureHTTPServerPipeline()
        let responder =
            readsBody
            ? SimpleHTTPResponder(answerWithBody: { _, body in .init("got \(body.readableBytes)\n") })
            : SimpleHTTPResponder(answer: { _ in .init("head only\n") })
        try channel.pipeline.syncOperations.addHandler(responder)
        try channel.connect(to: try SocketAddress(ipAddress: "127.0.0.1", port: 9901)).wait()
        return channel
    }

    @Test(
        "Admin answers: a body over the bound is 413 and closes; a head-only answer ignores any body; an idle connection is closed"
    )
    func simpleResponderBounds() throws {
        let limit = SimpleHTTPResponder.maxBodyBytes
        let post = { (size: Int) in
            ByteBuffer(
                string: "POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: \(size)\r\n\r\n"
                    + String(repeating: "x", count: size)
            )
        }
        let small = try Self.makeResponder(readsBody: true)
        try small.writeInbound(post(limit))
        #expect(try Self.written(small).hasSuffix("got \(limit)\n"))

        #expect(small.isActive, "keep-alive")

        let large = try Self.makeResponder(readsBody: true)
        try large.writeInbound(post(limit + 1))
        let refused = try Self.written(large)
        #expect(refused.hasPrefix("HTTP/1.1 413"), "\(refused)")
        large.embeddedEventLoop.run()
        #expect(!large.isActive, "closed after the 413")

        let headOnly = try Self.makeResponder(readsBody: false)
        try headOnly.writeInbound(post(limit * 4))
        #expect(try Self.written(headOnly).hasSuffix("head only\n"))

        let idle = try Self.makeResponder(readsBody: true)
        try idle.writeInbound(ByteBuffer(string: "POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nabc"))
        #expect(idle.isActive)
        idle.pipeline.fireUserInboundEventTriggered(IdleStateHandler.IdleStateEvent.read)
        idle.embeddedEventLoop.run()
        #expect(!idle.isActive, "a stalled body is closed on the read timeout")
    }

    @Test("No route: 404 with a one-line body, and the connection stays open")
    func noRoute() throws {
        let (channel, _) = try Self.makeFront()
        try channel.writeInbound(ByteBuffer(string: "GET /x HTTP/1.1\r\nHost: other.test\r\n\r\n"))
        let answer = try Self.written(channel)
        #expect(answer.hasPrefix("HTTP/1.1 404 Not Found\r\n"), "\(answer)")
        #expect(answer.contains("404 Not Found: no route matches this request (request "))
        #expect(!answer.lowercased().contains("connection: close"))
        #expect(channel.isActive)
    }

    @Test(
        "The bytes behind a PROXY header or the h2c sniff reach HTTP/1.1 in the same read, however they are cut",
        arguments: [(true, false), (false, true), (true, true)]
    )
    func handOver(proxyProtocol: Bool, http2: Bool) throws {
        let request = "GET /x HTTP/1.1\r\nHost: other.test\r\n\r\n"
        let input = Array(((proxyProtocol ? "PROXY TCP4 203.0.113.9 10.0.0.1 1 2\r\n" : "") + request).utf8)
        for cut in [input.count, 40, 1] {
            let (channel, _) = try Self.makeFront(proxyProtocol: proxyProtocol, http2: http2)
            var offset = 0
            while offset < input.count {
                let size = min(cut, input.count - offset)
                try channel.writeInbound(ByteBuffer(bytes: input[offset..<(offset + size)]))
                offset += size
            }
            // No loop tick in between: the answer came out of the reads themselves.
            let answer = try Self.written(channel)
            #expect(answer.hasPrefix("HTTP/1.1 404 Not Found\r\n"), "cut \(cut): \(answer)")
            _ = try? channel.finish()
        }
    }

    @Test("Pipelined requests are answered in order, each with its own status")
    func pipelinedInOrder() throws {
        let (channel, _) = try Self.makeFront()
        try channel.writeInbound(
            ByteBuffer(
                string: "GET /a HTTP/1.1\r\nHost: other.test\r\n\r\n" + "GET /b HTTP/1.1\r\nHost: app.test\r\n\r\n"
                    + "GET /c HTTP/1.1\r\nHost: other.test\r\n\r\n"
            )
        )
        let answer = try Self.written(channel)
        // Error bodies end in a bare "\n" where heads use "\r\n".
        let statuses = answer.replacingOccurrences(of: "\r\n", with: "\n").split(separator: "\n")
            .filter { $0.hasPrefix("HTTP/1.1 ") }
        #expect(statuses == ["HTTP/1.1 404 Not Found", "HTTP/1.1 503 Service Unavailable", "HTTP/1.1 404 Not Found"])
        #expect(answer.contains("Retry-After: 1"))
    }

    @Test("A smuggling attempt gets 400 and the connection is closed")
    func smuggling() throws {
        let (channel, _) = try Self.makeFront()
        try channel.writeInbound(
            ByteBuffer(
                string:
                    "POST / HTTP/1.1\r\nHost: app.test\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
            )
        )
        let answer = try Self.written(channel)
        #expect(answer.hasPrefix("HTTP/1.1 400 Bad Request\r\n"), "\(answer)")
        // llhttp refuses the pair itself, before HeaderRewriter.inspect would.
        #expect(answer.contains("400 Bad Request: malformed request: "))
        #expect(answer.contains("Connection: close"))
    }

    @Test("A declared body over max_body_bytes gets 413 before any of it is read")
    func bodyTooLarge() throws {
        let (channel, _) = try Self.makeFront()
        try channel.writeInbound(ByteBuffer(string: "POST / HTTP/1.1\r\nHost: app.test\r\nContent-Length: 101\r\n\r\n"))
        let answer = try Self.written(channel)
        #expect(answer.hasPrefix("HTTP/1.1 413 Payload Too Large\r\n"), "\(answer)")
    }

    @Test("HTTP/1.0 without Host is served (and closed), HTTP/1.1 without Host is refused")
    func hostRules() throws {
        let (channel, _) = try Self.makeFront()
        try channel.writeInbound(ByteBuffer(string: "GET / HTTP/1.0\r\n\r\n"))
        let answer = try Self.written(channel)
        #expect(answer.hasPrefix("HTTP/1.0 404 Not Found\r\n"), "\(answer)")
        #expect(answer.contains("Connection: close"))
        let (second, _) = try Self.makeFront()
        try second.writeInbound(ByteBuffer(string: "GET / HTTP/1.1\r\n\r\n"))
        #expect(try Self.written(second).hasPrefix("HTTP/1.1 400 Bad Request\r\n"))
    }

    /// Counts `read` requests that reach the head of a pipeline.
    final class ReadCounter: ChannelOutboundHandler {
        typealias OutboundIn = Any
        var reads = 0
        func read(context: ChannelHandlerContext) {
            self.reads += 1
            context.read()
        }
    }

    /// A tunnel between two embedded channels on one loop, its two glue ends in place, its ledger
    /// holding a lease on backend `b` of pool `p`; `connect`: make both channels active.
    struct TunnelPair {
        let client: EmbeddedChannel
        let upstream: EmbeddedChannel
        let backend: Backend
        let pool: Pool
        /// The upstream end: the tunnel's ledger, its idle clock, what a drain closes.
        let upstreamEnd: TunnelGlue
        let loop: LoopContext
    }

    /// `record`: the tunnel is made as a request makes it, from the upgrade's access record (and
    /// `onClose` is not used); else with `onClose` as its close callback. `backend` and `pool`: the
    /// tunnel's, when the test has them already (else a backend `b` alone in pool `p`).
    static func makeTunnel(
        metrics: JunctionMetrics? = nil,
        connect: Bool = true,
        record: AccessRecord? = nil,
        backend: Backend? = nil,
        pool: Pool? = nil,
        onClose: @escaping (TunnelLedger.Summary) -> Void = { _ in }
    ) throws -> TunnelPair {
        let client = EmbeddedChannel()
        let upstream = EmbeddedChannel(loop: client.embeddedEventLoop)
        let backend =
            try backend
            ?? Backend(address: SocketAddress(ipAddress: "127.0.0.1", port: 9), label: "b", weight: 1, poolName: "p")
        let loop = LoopContext(
            eventLoop: client.embeddedEventLoop,
            runtime: RuntimeConfig(config: JunctionConfig(), pools: [:]),
            accessLogSink: nil,
            metrics: metrics
        )
        let pool =
            pool
            ?? Pool(
                name: "p",
                backends: [backend],
                balancer: LeastConnectionsBalancer(),
                timeouts: UpstreamTimeouts(),
                retries: 0,
                healthCheck: nil
            )
        // What the request hands over with the tunnel: the backend's active count.
        let ledger =
            if let record {
                TunnelLedger(loop: loop, lease: BackendLease(backend), route: nil, record: record)
            } else {
                TunnelLedger(loop: loop, lease: BackendLease(backend), pool: pool, idleTimeout: .hours(1), onClose: onClose)
            }
        let clientEnd = TunnelGlue(loop: loop, ledger: nil)
        let upstreamEnd = TunnelGlue(loop: loop, ledger: ledger)
        clientEnd.partner(with: upstreamEnd)
        upstreamEnd.partner(with: clientEnd)
        try client.pipeline.syncOperations.addHandler(clientEnd)
        try upstream.pipeline.syncOperations.addHandler(upstreamEnd)
        if connect { try Self.connect(client, upstream) }
        return TunnelPair(
            client: client,
            upstream: upstream,
            backend: backend,
            pool: pool,
            upstreamEnd: upstreamEnd,
            loop: loop
        )
    }

    static func connect(_ client: EmbeddedChannel, _ upstream: EmbeddedChannel) throws {
        try client.connect(to: try SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        try upstream.connect(to: try SocketAddress(ipAddress: "127.0.0.1", port: 2)).wait()
    }

    @Test("Tunnel glue relays bytes both ways, holds reads while the other side is full, releases the backend")
    func glue() throws {
        var summary: TunnelLedger.Summary?
        let pair = try Self.makeTunnel(connect: false) { summary = $0 }
        let (client, upstream, backend, pool) = (pair.client, pair.upstream, pair.backend, pair.pool)
        let counter = ReadCounter()
        try client.pipeline.syncOperations.addHandler(counter, position: .first)
        try Self.connect(client, upstream)

        try client.writeInbound(ByteBuffer(string: "hello upstream"))
        client.pipeline.fireChannelReadComplete()
        #expect(try upstream.readOutbound(as: ByteBuffer.self).map { String(buffer: $0) } == "hello upstream")
        try upstream.writeInbound(ByteBuffer(string: "hello client"))
        upstream.pipeline.fireChannelReadComplete()
        #expect(try client.readOutbound(as: ByteBuffer.self).map { String(buffer: $0) } == "hello client")

        // The upstream side cannot take more: reads on the client side are held back...
        upstream.isWritable = false
        upstream.pipeline.fireChannelWritabilityChanged()
        let before = counter.reads
        client.read()
        #expect(counter.reads == before)
        // ...and released when it drains.
        upstream.isWritable = true
        upstream.pipeline.fireChannelWritabilityChanged()
        #expect(counter.reads == before + 1)

        #expect(backend.active == 1)
        #expect(pool.members.tunnelCount.load(ordering: .relaxed) == 1)
        _ = try? client.close().wait()
        _ = try? upstream.finish()
        #expect(backend.active == 0, "the tunnel stops counting once both sides closed")
        #expect(pool.members.tunnelCount.load(ordering: .relaxed) == 0)
        #expect(summary?.bytesFromClient == 14)
        #expect(summary?.bytesFromUpstream == 12)
    }

    @Test("With no access log, a tunnel keeps only its metrics and still counts its 101 and lifetime when it closes")
    func tunnelMetricsWithoutAccessLog() throws {
        let metrics = JunctionMetrics()
        var record = AccessRecord(
            start: .now(),
            client: "127.0.0.1:50000",
            listener: "http",
            method: .GET,
            target: "/websocket",
            version: .http1_1,
            status: 101,
            requestID: "0123456789abcdef0123456789abcdef"
        )
        (record.route, record.pool, record.backend) = ("ddp", "p", "127.0.0.1:9")
        let pair = try Self.makeTunnel(metrics: metrics, record: record)
        let (client, upstream, backend) = (pair.client, pair.upstream, pair.backend)
        #expect(pair.loop.accessLog == nil)

        let before = String(decoding: metrics.render(pools: [], listeners: []), as: UTF8.self)
        #expect(!before.contains("code=\"101\""), "nothing counted while the tunnel is open: \(before)")
        _ = try? client.close().wait()
        _ = try? upstream.finish()
        let text = String(decoding: metrics.render(pools: [], listeners: []), as: UTF8.self)
        let line = text.split(separator: "\n").first { $0.hasPrefix("junction_requests_total{") && $0.contains("101") }
        #expect(line.map(String.init) == "junction_requests_total{route=\"ddp\",pool=\"p\",code=\"101\"} 1", "\(text)")
        #expect(text.contains("junction_request_duration_seconds_count{pool=\"p\"} 1\n"), "\(text)")
        #expect(backend.active == 0)
    }

    /// How a tunnel ends in `tunnelCloseReasons`: a close frame, a FIN (half-close), a close and a
    /// reset (RST) from either side, and Junction's own reasons.
    enum Ending: String, CaseIterable, Sendable {
        case clientCloses, clientHalfCloses, clientResets, clientCloseFrameFirst
        case backendCloses, backendHalfCloses, backendResets, backendCloseFrameFirst
        case idle, shutdown, drainBetweenFrames, drainMidFrame, rebalance, drainAfterBackendsClose
    }

    @Test(
        "A tunnel's end is counted by reason (the side that ended first, idle, shutdown, drain, rebalance); a drain sends the client a close 1001 only between frames",
        arguments: Ending.allCases
    )
    func tunnelCloseReasons(_ ending: Ending) throws {
        let metrics = JunctionMetrics()
        let pair = try Self.makeTunnel(metrics: metrics) { _ in }
        let (client, upstream, backend, pool, tunnel, loop) = (
            pair.client, pair.upstream, pair.backend, pair.pool, pair.upstreamEnd, pair.loop
        )
        #expect(backend.tunnels == 1)

        let reason: String
        switch ending {
        case .clientCloses:
            _ = try? client.close().wait()
            reason = "client"
        case .backendCloses:
            _ = try? upstream.close().wait()
            reason = "backend"
        case .idle:
            tunnel.deadlinePassed(now: .now())
            reason = "idle"
        case .shutdown:
            loop.isShuttingDown = true
            _ = try? client.close().wait()
            reason = "shutdown"
        case .clientHalfCloses:
            // The client's FIN half-closes; the backend then closes the connection first.
            client.pipeline.fireUserInboundEventTriggered(ChannelEvent.inputClosed)
            _ = try? upstream.close().wait()
            reason = "client"
        case .backendHalfCloses:
            // The backend's FIN half-closes; the client then closes the connection first.
            upstream.pipeline.fireUserInboundEventTriggered(ChannelEvent.inputClosed)
            _ = try? client.close().wait()
            reason = "backend"
        case .clientResets:
            // A reset read on the client's socket: no close frame, no FIN.
            client.pipeline.fireErrorCaught(IOError(errnoCode: ECONNRESET, reason: "read(descriptor:pointer:size:)"))
            reason = "client"
        case .backendResets:
            // The backend resets its connection: the client's end closes because of it, first.
            upstream.pipeline.fireErrorCaught(IOError(errnoCode: ECONNRESET, reason: "read(descriptor:pointer:size:)"))
            reason = "backend"
        case .drainBetweenFrames, .rebalance:
            // A whole text frame "hi" went to the client: the stream is between frames.
            try upstream.writeInbound(ByteBuffer(bytes: [0x81, 0x02, 0x68, 0x69]))
            _ = try client.readOutbound(as: ByteBuffer.self)
            tunnel.close(reason: ending == .rebalance ? .rebalance : .drain)
            reason = ending == .rebalance ? "rebalance" : "drain"
        case .drainMidFrame:
            // A 300-byte frame's header and 10 bytes of its payload: a close frame now would land
            // inside it.
            try upstream.writeInbound(ByteBuffer(bytes: [0x82, 0x7E, 0x01, 0x2C] + Array(repeating: 0x41, count: 10)))
            _ = try client.readOutbound(as: ByteBuffer.self)
            tunnel.close(reason: .drain)
            reason = "drain"
        case .clientCloseFrameFirst:
            // The client starts the closing handshake (a masked close frame); the backend answers
            // and closes the connection first, as RFC 6455 has servers do.
            try client.writeInbound(ByteBuffer(bytes: [0x88, 0x82, 1, 2, 3, 4, 0x03 ^ 1, 0xE8 ^ 2]))
            try upstream.writeInbound(ByteBuffer(bytes: [0x88, 0x02, 0x03, 0xE8]))
            _ = try client.readOutbound(as: ByteBuffer.self)
            _ = try? upstream.close().wait()
            reason = "client"
        case .backendCloseFrameFirst:
            try upstream.writeInbound(ByteBuffer(bytes: [0x88, 0x02, 0x03, 0xE9]))
            _ = try client.readOutbound(as: ByteBuffer.self)
            _ = try? client.close().wait()
            reason = "backend"
        case .drainAfterBackendsClose:
            // The backend began the closing handshake: no second close frame.
            try upstream.writeInbound(ByteBuffer(bytes: [0x88, 0x02, 0x03, 0xE8]))
            _ = try client.readOutbound(as: ByteBuffer.self)
            tunnel.close(reason: .drain)
            reason = "backend"  // it was ending already
        }
        client.embeddedEventLoop.run()
        let toClient = try client.readOutbound(as: ByteBuffer.self).map { Array($0.readableBytesView) }
        switch ending {
        case .drainBetweenFrames:
            #expect(toClient == WebSocketFrameTracker.closeFrame(code: 1001, reason: "backend draining"))
            #expect(toClient?.prefix(4) == [0x88, 18, 0x03, 0xE9], "close, code 1001")
        case .rebalance:
            #expect(toClient == WebSocketFrameTracker.closeFrame(code: 1001, reason: "rebalancing"))
        default:
            #expect((toClient ?? []).isEmpty, "no close frame of Junction's: \(toClient ?? [])")
        }
        #expect(!client.isActive && !upstream.isActive, "closing one side closes the other")
        #expect(backend.tunnels == 0 && backend.active == 0)
        let text = String(decoding: metrics.render(pools: [PoolListing(pool)], listeners: []), as: UTF8.self)
        #expect(text.contains("junction_tunnels_closed_total{pool=\"p\",reason=\"\(reason)\"} 1"), "\(text)")
        #expect(
            text.components(separatedBy: "junction_tunnels_closed_total{").count == 2,
            "one reason counted: \(text)"
        )
    }
}
