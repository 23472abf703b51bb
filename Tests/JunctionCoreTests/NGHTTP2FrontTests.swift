import CNGHTTP2
import NIOCore
import NIOEmbedded
import Testing

@testable import JunctionCore

/// The HTTP/2 front (`ClientConnection`'s h2c phase, `NGHTTP2ConnectionHandler` and its streams) on
/// an `EmbeddedChannel`, with an nghttp2 client session on the other end: no network. The front is
/// `HandlerTests.makeFront`'s: one route (host `app.test`) to a pool whose only backend backs off.
@Suite("NGHTTP2 front")
struct NGHTTP2FrontTests {
    /// Hands the client's bytes to the channel (one read each) and the channel's writes to the
    /// client until neither sends anything; returns how many writes each read got back.
    @discardableResult
    static func pump(_ channel: EmbeddedChannel, _ client: TestClient) throws -> [Int] {
        var writesPerRead: [Int] = []
        for _ in 0..<100 {
            let out = client.send()
            if !out.isEmpty { try channel.writeInbound(ByteBuffer(bytes: out)) }
            channel.embeddedEventLoop.run()
            var writes = 0
            while let bytes = try channel.readOutbound(as: ByteBuffer.self) {
                writes += 1
                client.receive(Array(bytes.readableBytesView))
            }
            if !out.isEmpty { writesPerRead.append(writes) }
            if out.isEmpty && writes == 0 { break }
        }
        return writesPerRead
    }

    static func get(_ host: String, _ path: String = "/x", method: String = "GET") -> [(String, String)] {
        [(":method", method), (":scheme", "http"), (":authority", host), (":path", path)]
    }

    @Test("Two streams in one read: 404 without a route, 503 while the backend backs off, in one write")
    func answersInOneWrite() throws {
        let (channel, _) = try HandlerTests.makeFront(http2: true)
        let client = TestClient()
        let lost = client.request(Self.get("other.test"))
        let down = client.request(Self.get("app.test"))
        let writes = try Self.pump(channel, client)
        #expect(writes.first == 1, "SETTINGS, its ack and both answers share one write: \(writes)")

        let notFound = try #require(client.responses[lost])
        #expect(notFound.status == "404")
        #expect(String(decoding: notFound.body, as: UTF8.self).contains("no route matches this request"))
        #expect(notFound.field("x-request-id") != nil)
        #expect(notFound.closedCode == 0)
        let unavailable = try #require(client.responses[down])
        #expect(unavailable.status == "503")
        #expect(unavailable.field("retry-after") != nil)
        #expect(channel.isActive, "the connection stays open")
    }

    @Test(
        "Answered before the request body ended: the whole answer, then RST_STREAM NO_ERROR; the next stream is served"
    )
    func answerBeforeBody() throws {
        let (channel, _) = try HandlerTests.makeFront(http2: true)
        let client = TestClient()
        let upload = client.request(
            Self.get("other.test", method: "POST"),
            body: Array(repeating: 0x61, count: 200_000)
        )
        try Self.pump(channel, client)
        let answer = try #require(client.responses[upload])
        #expect(answer.status == "404")
        #expect(String(decoding: answer.body, as: UTF8.self).hasPrefix("404 Not Found"), "the body is not cut")
        #expect(answer.closedCode == 0, "reset with NO_ERROR")
        #expect((client.uploads[upload]?.offset ?? 0) < 200_000, "the client stopped sending the body")

        let next = client.request(Self.get("other.test"))
        try Self.pump(channel, client)
        #expect(client.responses[next]?.status == "404")
        #expect(channel.isActive)
    }

    @Test("Quiescing with no stream open: GOAWAY naming the last stream, then the close")
    func quiesceIdle() throws {
        let (channel, _) = try HandlerTests.makeFront(http2: true)
        let client = TestClient()
        let id = client.request(Self.get("other.test"))
        try Self.pump(channel, client)
        #expect(client.responses[id]?.status == "404")

        channel.pipeline.fireUserInboundEventTriggered(ChannelShouldQuiesceEvent())
        try Self.pump(channel, client)
        #expect(client.goAways.map(\.lastStreamID) == [id])
        #expect(client.goAways.map(\.code) == [0])
        #expect(!channel.isActive, "closed after the GOAWAY")
    }

    @Test("A connection error (HEADERS on a skipped stream id): GOAWAY PROTOCOL_ERROR, nothing after it, the close")
    func connectionError() throws {
        let (channel, _) = try HandlerTests.makeFront(http2: true)
        let bytes =
            Frames.preface + Frames.settings(entries: 0) + Frames.request(stream: 5) + Frames.request(stream: 3)
        try channel.writeInbound(ByteBuffer(bytes: bytes))
        channel.embeddedEventLoop.run()
        var output: [UInt8] = []
        while let written = try channel.readOutbound(as: ByteBuffer.self) { output += Array(written.readableBytesView) }
        let frames = Frames.parse(output)
        #expect(frames.last?.type == 7, "the GOAWAY is the last frame: \(frames.map(\.type))")
        #expect(frames.last?.goAwayCode == 1)
        #expect(!frames.contains { $0.stream == 5 }, "stream 5 is not answered ahead of the GOAWAY")
        #expect(!channel.isActive)
    }

    @Test("The client's GOAWAY with no stream open ends the connection")
    func clientGoAway() throws {
        let (channel, _) = try HandlerTests.makeFront(http2: true)
        let client = TestClient()
        try Self.pump(channel, client)
        #expect(nghttp2_submit_goaway(client.session, 0, 0, 0, nil, 0) == 0)
        try Self.pump(channel, client)
        #expect(!channel.isActive)
    }
}
