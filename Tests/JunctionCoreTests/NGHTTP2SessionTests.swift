import CNGHTTP2
import NIOCore
import NIOHPACK
import Testing

@testable import JunctionCore

/// The libnghttp2 server session, driven by an nghttp2 client session (or raw frames) in memory:
/// no sockets, bytes handed across until neither side has anything to send.
@Suite("NGHTTP2 session")
struct NGHTTP2SessionTests {
    // MARK: requests and responses

    @Test(
        "GET: the head reaches the caller as HTTP2HeadConverter takes it, the response and its body reach the client"
    )
    func getWithResponseBody() throws {
        let link = Link()
        link.recorder.onHead = { session, id, _, _ in
            session.submitResponse(
                stream: id,
                headers: [":status": "200", "content-type": "text/plain"],
                hasBody: true
            )
            session.submitData(stream: id, ByteBuffer(string: "hello"), endStream: true)
        }
        let id = link.client.request(Link.get("/x?y=1"))
        link.pump()

        let head = try #require(link.recorder.heads.first)
        #expect(head.id == id && head.endStream)
        let converted = try HTTP2HeadConverter.request(head.headers, endStream: head.endStream).get()
        #expect(converted.head.method == .GET)
        #expect(converted.head.uri == "/x?y=1")
        #expect(converted.head.headers["host"] == ["example.com"])
        let response = try #require(link.client.responses[id])
        #expect(response.status == "200")
        #expect(response.field("content-type") == "text/plain")
        #expect(String(decoding: response.body, as: UTF8.self) == "hello")
        #expect(response.closedCode == 0)
        #expect(link.recorder.closes.map { $0.id } == [id])
        #expect(link.results.allSatisfy { $0 == .ok })
        #expect(link.server.wantsRead)
    }

    @Test("POST: the body arrives over several DATA frames, and no window opens until consume")
    func postWithBackpressure() throws {
        let link = Link()
        let body = (0..<100_000).map { UInt8(truncatingIfNeeded: $0 &* 7) }
        let id = link.client.request(Link.post("/upload"), body: body)
        link.pump()

        #expect(link.recorder.heads.first?.endStream == false)
        // 64 KiB windows, none opened: the client is stuck after 65,535 bytes.
        #expect(link.recorder.bodyBytes(id) == 65_535)
        #expect(link.recorder.data.count >= 4, "one event per DATA frame (16 KiB each)")
        #expect(nghttp2_session_get_stream_remote_window_size(link.client.session, id) == 0)
        link.pump()
        #expect(link.recorder.bodyBytes(id) == 65_535)

        var consumed = 0
        while !link.recorder.ended.contains(id) {
            let received = link.recorder.bodyBytes(id)
            try #require(received > consumed, "the body stalled at \(received) bytes")
            link.server.consumeTaken(stream: id)
            consumed = received
            link.pump()
        }
        #expect(link.recorder.body(id) == body)
        link.server.submitResponse(stream: id, headers: [":status": "204"], hasBody: false)
        link.pump()
        #expect(link.client.responses[id]?.status == "204")
        #expect(link.client.responses[id]?.closedCode == 0)
    }

    @Test("consumeTaken opens the windows by the body taken from the events, not by body still queued in them")
    func consumeOnlyWhatWasTaken() throws {
        let link = Link()
        let id = link.client.request(Link.post("/upload"), body: Array(repeating: 0x61, count: 40_000))
        // One read holding the head and every DATA frame; nothing taken yet.
        let bytes = link.client.send()
        #expect(link.server.receive(ByteBuffer(bytes: bytes)) == .ok)
        // Two of its three DATA frames (nghttp2 sends a WINDOW_UPDATE once half a window is consumed).
        var taken = 0
        while taken < 32_768, let event = link.server.nextEvent() {
            if case .data(_, let body, _) = event { taken += body.readableBytes }
        }
        #expect(taken == 32_768, "two 16 KiB frames: \(taken)")
        link.server.consumeTaken(stream: id)
        link.server.drainOutput { link.client.receive(Array($0.readableBytesView)) }
        let window = nghttp2_session_get_stream_remote_window_size(link.client.session, id)
        #expect(window == 65_535 - 40_000 + Int32(taken), "opened by what was taken: \(window)")
    }

    @Test("Deferred data: the head goes first, each submitData resumes the stream, queuedBytes empties")
    func deferredData() throws {
        let link = Link()
        let id = link.client.request(Link.get("/stream"))
        link.pump()
        #expect(link.server.submitResponse(stream: id, headers: [":status": "200"], hasBody: true))
        link.pump()
        #expect(link.client.responses[id]?.status == "200")
        #expect(link.client.responses[id]?.ended == false)

        link.server.submitData(stream: id, ByteBuffer(string: "part1,"), endStream: false)
        #expect(link.server.queuedBytes(stream: id) == 6)
        link.pump()
        #expect(link.server.queuedBytes(stream: id) == 0)
        #expect(link.recorder.writable.contains(id))
        #expect(String(decoding: try #require(link.client.responses[id]).body, as: UTF8.self) == "part1,")
        #expect(link.client.responses[id]?.ended == false)

        link.server.submitData(stream: id, ByteBuffer(string: "part2"), endStream: true)
        link.pump()
        let response = try #require(link.client.responses[id])
        #expect(String(decoding: response.body, as: UTF8.self) == "part1,part2")
        #expect(response.ended && response.closedCode == 0)
        #expect(!link.server.submitData(stream: id, ByteBuffer(string: "late"), endStream: true))
    }

    @Test("Trailers both ways: request trailers are reported, response trailers end the stream after the body")
    func trailers() throws {
        let link = Link()
        link.recorder.onTrailers = { session, id, _ in
            session.submitResponse(stream: id, headers: [":status": "200"], hasBody: true)
            session.submitData(stream: id, ByteBuffer(string: "body"), endStream: false)
            session.submitTrailers(stream: id, ["grpc-status": "0"])
        }
        let id = link.client.request(
            Link.post("/rpc"),
            body: Array("request".utf8),
            trailers: [("x-checksum", "abc")]
        )
        link.pump()

        #expect(link.recorder.body(id) == Array("request".utf8))
        #expect(link.recorder.trailers.first?.id == id)
        #expect(link.recorder.trailers.first?.fields.first(name: "x-checksum") == "abc")
        let response = try #require(link.client.responses[id])
        #expect(String(decoding: response.body, as: UTF8.self) == "body")
        #expect(response.trailers.first { $0.0 == "grpc-status" }?.1 == "0")
        #expect(response.ended && response.closedCode == 0)
    }

    // MARK: resets and GOAWAY

    @Test(
        "RST_STREAM from the client: streamReset then streamClosed, and unconsumed body goes back to the connection window"
    )
    func clientReset() throws {
        let link = Link()
        let id = link.client.request(
            Link.post("/upload"),
            body: Array(repeating: 0x61, count: 40_000),
            endStream: false
        )
        link.pump()
        #expect(link.recorder.bodyBytes(id) == 40_000)
        #expect(nghttp2_session_get_remote_window_size(link.client.session) == 65_535 - 40_000)

        #expect(nghttp2_submit_rst_stream(link.client.session, 0, id, UInt32(NGHTTP2_CANCEL.rawValue)) == 0)
        link.pump()
        let cancel = UInt32(NGHTTP2_CANCEL.rawValue)
        #expect(link.recorder.resets.map { $0.id } == [id])
        #expect(link.recorder.resets.map { $0.code } == [cancel])
        #expect(link.recorder.closes.map { $0.code } == [cancel])
        // The upstream never took those 40,000 bytes; the connection must not lose them.
        #expect(nghttp2_session_get_remote_window_size(link.client.session) == 65_535)
        #expect(!link.server.submitResponse(stream: id, headers: [":status": "200"], hasBody: false))
        #expect(link.server.queuedBytes(stream: id) == 0)
        #expect(link.results.allSatisfy { $0 == .ok })
    }

    @Test("Client GOAWAY: reported; the session wants nothing more once no stream is open")
    func clientGoAway() throws {
        let link = Link()
        let id = link.client.request(Link.get("/slow"))
        link.pump()
        #expect(nghttp2_submit_goaway(link.client.session, 0, 0, UInt32(NGHTTP2_NO_ERROR.rawValue), nil, 0) == 0)
        link.pump()
        #expect(link.recorder.goAways.count == 1)
        #expect(link.recorder.goAways.first?.code == 0)
        // The open stream keeps the connection.
        #expect(link.server.wantsRead)
        link.server.submitResponse(stream: id, headers: [":status": "200"], hasBody: false)
        link.pump()
        #expect(link.client.responses[id]?.status == "200")
        #expect(!link.server.wantsRead && !link.server.wantsWrite)
    }

    @Test("Graceful shutdown: the notice (last stream 2^31-1), a PING round trip, the final GOAWAY")
    func gracefulShutdown() throws {
        let link = Link()
        let id = link.client.request(Link.get("/"))
        link.pump()
        link.server.submitShutdownNotice()
        link.server.submitPing(0x4A55_4E43_5449_4F4E)
        link.pump()
        #expect(link.client.goAways.first?.lastStreamID == Int32.max)
        #expect(link.recorder.pings == [0x4A55_4E43_5449_4F4E])
        link.server.submitGoAway(lastStreamID: link.server.lastProcessedStreamID, code: 0)
        link.pump()
        #expect(link.client.goAways.last?.lastStreamID == id)
        #expect(link.server.wantsRead, "stream \(id) is still open")
    }

    // MARK: connection errors

    /// Bytes after the preface and an empty SETTINGS, and the GOAWAY code they must earn.
    static let connectionErrors: [(String, [UInt8], UInt32)] = [
        ("DATA on stream 0", Frames.frame(type: 0, stream: 0, payload: [1, 2, 3]), 1),
        ("WINDOW_UPDATE of 0", Frames.frame(type: 8, stream: 0, payload: [0, 0, 0, 0]), 1),
        ("a frame over SETTINGS_MAX_FRAME_SIZE", Frames.header(length: 16_385, type: 0, stream: 1), 6),
        ("SETTINGS with 33 entries (max 32)", Frames.settings(entries: 33), 11),
        ("a HEADERS block in 9 CONTINUATION frames (max 8)", Frames.continuationFlood(continuations: 9), 11),
        // h2spec 5.1.1/2: nghttp2 alone ignores the second HEADERS.
        (
            "HEADERS on stream 3 after stream 5 (RFC 9113 5.1.1)",
            Frames.request(stream: 5) + Frames.request(stream: 3), 1
        ),
    ]

    @Test("Stream ids may grow by more than 2, and trailers on a lower, known stream are no error")
    func streamIDGaps() throws {
        let session = NGHTTP2Session()
        // Stream 1 open (no END_STREAM), then 7 (skipping 3 and 5), then stream 1's trailers.
        let bytes =
            Frames.preface + Frames.settings(entries: 0) + Frames.request(stream: 1, endStream: false)
            + Frames.request(stream: 7)
            + Frames.frame(type: 1, flags: 0x5, stream: 1, payload: [0x40, 0x01, 0x78, 0x01, 0x79])
        #expect(session.receive(ByteBuffer(bytes: bytes)) == .ok)
        #expect(!Frames.parse(session.output()).contains { $0.type == 7 })
        #expect(session.receive(ByteBuffer(bytes: Frames.request(stream: 5))) == .connectionError(1))
    }

    @Test(
        "A first stream above 1 skips the ones below it; the highest id is no overflow (found by FuzzHTTP2Front)",
        arguments: [(UInt32(3), UInt32(1)), (UInt32(0x7FFF_FFFF), UInt32(0x7FFF_FFFD))]
    )
    func firstStreamAboveOne(first: UInt32, skipped: UInt32) throws {
        let session = NGHTTP2Session()
        let bytes = Frames.preface + Frames.settings(entries: 0) + Frames.request(stream: first)
        #expect(session.receive(ByteBuffer(bytes: bytes)) == .ok)
        #expect(session.receive(ByteBuffer(bytes: Frames.request(stream: skipped))) == .connectionError(1))
    }

    @Test(
        "A bad frame is a connection error: receive says so and a GOAWAY with its code is in the output",
        arguments: connectionErrors
    )
    func connectionError(name: String, bytes: [UInt8], code: UInt32) throws {
        let session = NGHTTP2Session()
        let result = session.receive(ByteBuffer(bytes: Frames.preface + Frames.settings(entries: 0) + bytes))
        #expect(result == .connectionError(code), "\(name)")
        let goAway = try #require(Frames.parse(session.output()).last { $0.type == 7 })
        #expect(goAway.goAwayCode == code)
        #expect(!session.wantsRead && !session.wantsWrite)
    }

    @Test("Flood limits are the configured ones, not lower: 32 SETTINGS entries and 8 CONTINUATION frames pass")
    func floodLimitsAtTheEdge() throws {
        let session = NGHTTP2Session()
        let bytes =
            Frames.preface + Frames.settings(entries: 32) + Frames.continuationFlood(continuations: 8, end: true)
        #expect(session.receive(ByteBuffer(bytes: bytes)) == .ok)
        #expect(!Frames.parse(session.output()).contains { $0.type == 7 })
        #expect(session.wantsRead)
    }

    @Test(
        "Not an HTTP/2 preface: PROTOCOL_ERROR, the server's SETTINGS then GOAWAY in the output",
        arguments: [
            Array("GET / HTTP/1.1\r\nHost: a\r\n\r\n".utf8),
            Array("PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n".utf8),
            // The preface, then a PING where SETTINGS must come first (RFC 9113 3.4).
            Frames.preface + Frames.frame(type: 6, stream: 0, payload: Array(repeating: 0, count: 8)),
        ]
    )
    func badPreface(bytes: [UInt8]) throws {
        let session = NGHTTP2Session()
        #expect(session.receive(ByteBuffer(bytes: bytes)) == .connectionError(1))
        let frames = Frames.parse(session.output())
        #expect(frames.first?.type == 4, "SETTINGS first")
        #expect(frames.last?.type == 7)
        #expect(frames.last?.goAwayCode == 1)
        #expect(!session.wantsRead && !session.wantsWrite)
    }

    @Test("The preface may arrive a byte at a time (sniffer and TLS reads split it anywhere)")
    func prefaceInPieces() throws {
        let session = NGHTTP2Session()
        for byte in Frames.preface + Frames.settings(entries: 0) {
            #expect(session.receive(ByteBuffer(bytes: [byte])) == .ok)
        }
        let frames = Frames.parse(session.output())
        #expect(frames.map { $0.type } == [4, 4], "the server's SETTINGS and the ack of the client's")
    }

    // MARK: RFC 8441 and header limits

    @Test("Extended CONNECT (RFC 8441): :protocol websocket is accepted and the stream carries data both ways")
    func extendedConnect() throws {
        let link = Link()
        link.pump()  // SETTINGS_ENABLE_CONNECT_PROTOCOL reaches the client first
        #expect(nghttp2_session_get_remote_settings(link.client.session, NGHTTP2_SETTINGS_ENABLE_CONNECT_PROTOCOL) == 1)
        link.recorder.onHead = { session, id, _, _ in
            session.submitResponse(stream: id, headers: [":status": "200"], hasBody: true)
            session.submitData(stream: id, ByteBuffer(string: "from-server"), endStream: false)
        }
        let id = link.client.request(
            [
                (":method", "CONNECT"), (":protocol", "websocket"), (":scheme", "https"), (":path", "/chat"),
                (":authority", "example.com"), ("sec-websocket-version", "13"),
            ],
            body: Array("from-client".utf8),
            endStream: false
        )
        link.pump()

        let head = try #require(link.recorder.heads.first)
        #expect(!head.endStream)
        let converted = try HTTP2HeadConverter.request(head.headers, endStream: head.endStream).get()
        #expect(converted.facts.isWebSocketUpgrade)
        #expect(converted.webSocketKey != nil)
        #expect(link.recorder.body(id) == Array("from-client".utf8))
        #expect(link.client.responses[id]?.status == "200")
        #expect(String(decoding: try #require(link.client.responses[id]).body, as: UTF8.self) == "from-server")
        #expect(link.client.responses[id]?.closedCode == nil, "the tunnel stays open")
    }

    @Test(":protocol on a GET is malformed: nghttp2 resets the stream, it is never reported")
    func protocolWithoutConnect() throws {
        let link = Link()
        link.pump()
        let id = link.client.request(Link.get("/") + [(":protocol", "websocket")])
        link.pump()
        #expect(link.recorder.heads.isEmpty)
        #expect(link.client.responses[id]?.closedCode == UInt32(NGHTTP2_PROTOCOL_ERROR.rawValue))
        #expect(link.results.allSatisfy { $0 == .ok })
    }

    @Test(
        "Header lists: under the budget reported, over it answered 431, over SETTINGS_MAX_HEADER_LIST_SIZE reset; the connection goes on",
        arguments: [
            // (fields, bytes of each value, the head reported, the client's :status, the reset code)
            (1, 1_000, true, "200", UInt32?.none),
            (2, 1_500, true, "200", UInt32?.none),
            (1, 5_000, false, "431", UInt32?.none),
            (1, 10_000, false, nil, UInt32(NGHTTP2_INTERNAL_ERROR.rawValue)),
            // Over the budget early, over the SETTINGS limit only later: still counted, still reset.
            (4, 3_000, false, nil, UInt32(NGHTTP2_INTERNAL_ERROR.rawValue)),
        ] as [(Int, Int, Bool, String?, UInt32?)]
    )
    func headerLimits(fields: Int, valueBytes: Int, reported: Bool, status: String?, resetCode: UInt32?) throws {
        var configuration = NGHTTP2Session.Configuration()
        configuration.headerBudget = 4096
        configuration.maxHeaderListSize = 8192
        let link = Link(configuration: configuration)
        link.recorder.onHead = { session, id, _, _ in
            session.submitResponse(stream: id, headers: [":status": "200"], hasBody: false)
        }
        let big = (0..<fields).map { ("x-big-\($0)", String(repeating: "v", count: valueBytes)) }
        let id = link.client.request(Link.get("/") + big)
        link.pump()
        #expect(link.recorder.heads.isEmpty == !reported)
        #expect(link.client.responses[id]?.status == status)
        if status == "431" {
            // Reported for the access log, with the pseudo-header fields only.
            let refused = try #require(link.recorder.refused.first)
            #expect(refused.id == id && refused.status == 431)
            #expect(refused.pseudoHeaders[":path"] == ["/"])
            #expect(refused.pseudoHeaders["x-big-0"].isEmpty)
        } else {
            #expect(link.recorder.refused.isEmpty)
        }
        #expect(link.client.responses[id]?.closedCode == resetCode ?? 0)
        #expect(link.results.allSatisfy { $0 == .ok }, "a stream error, not a connection error")

        // HPACK stayed in step: the next request on the connection is served.
        let next = link.client.request(Link.get("/next"))
        link.pump()
        #expect(link.recorder.heads.last?.id == next)
        #expect(link.client.responses[next]?.status == "200")
    }
}

// MARK: - harness

/// A server session, its recorder, and an nghttp2 client exchanging bytes in memory.
final class Link {
    let recorder: Recorder
    let server: NGHTTP2Session
    let client = TestClient()
    /// What every `receive` returned.
    var results: [NGHTTP2Session.ReceiveResult] = []

    init(configuration: NGHTTP2Session.Configuration = .init()) {
        let recorder = Recorder()
        self.recorder = recorder
        self.server = NGHTTP2Session(configuration: configuration)
        recorder.session = self.server
    }

    static func get(_ path: String) -> [(String, String)] {
        [(":method", "GET"), (":scheme", "https"), (":authority", "example.com"), (":path", path)]
    }

    static func post(_ path: String) -> [(String, String)] {
        [(":method", "POST"), (":scheme", "https"), (":authority", "example.com"), (":path", path)]
    }

    /// Hands bytes across until neither side sends anything.
    func pump() {
        for _ in 0..<10_000 {
            var moved = false
            let fromClient = self.client.send()
            if !fromClient.isEmpty {
                self.results.append(self.server.receive(ByteBuffer(bytes: fromClient)))
                self.takeEvents()
                moved = true
            }
            self.server.drainOutput { buffer in
                self.client.receive(Array(buffer.readableBytesView))
                moved = true
            }
            self.takeEvents()
            if !moved { return }
        }
        Issue.record("the sessions never went quiet")
    }
}

extension Link {
    /// Hands what the session found to the recorder, as a connection handler takes it: after
    /// `receive` or `drainOutput` returned.
    func takeEvents() {
        while let event = self.server.nextEvent() {
            self.recorder.record(event)
        }
    }
}

/// Records what the server session reports; answers through the `on…` closures.
final class Recorder {
    weak var session: NGHTTP2Session?
    var onHead: ((NGHTTP2Session, Int32, HPACKHeaders, Bool) -> Void)?
    var onTrailers: ((NGHTTP2Session, Int32, HPACKHeaders) -> Void)?
    var heads: [(id: Int32, headers: HPACKHeaders, endStream: Bool)] = []
    var data: [(id: Int32, bytes: ByteBuffer, endStream: Bool)] = []
    var trailers: [(id: Int32, fields: HPACKHeaders)] = []
    var resets: [(id: Int32, code: UInt32)] = []
    var closes: [(id: Int32, code: UInt32)] = []
    var writable: [Int32] = []
    var goAways: [(lastStreamID: Int32, code: UInt32)] = []
    var pings: [UInt64] = []
    var refused: [(id: Int32, pseudoHeaders: HPACKHeaders, status: UInt)] = []

    var ended: Set<Int32> {
        Set(self.data.filter { $0.endStream }.map { $0.id } + self.heads.filter { $0.endStream }.map { $0.id })
    }

    func body(_ id: Int32) -> [UInt8] {
        self.data.filter { $0.id == id }.flatMap { Array($0.bytes.readableBytesView) }
    }

    func bodyBytes(_ id: Int32) -> Int {
        self.data.filter { $0.id == id }.reduce(0) { $0 + $1.bytes.readableBytes }
    }

    func record(_ event: NGHTTP2Session.Event) {
        switch event {
        case .headers(let id, let headers, let endStream): self.streamHeadersComplete(id, headers: headers, endStream: endStream)
        case .data(let id, let bytes, let endStream): self.data.append((id, bytes, endStream))
        case .trailers(let id, let trailers): self.streamTrailers(id, trailers)
        case .reset(let id, let code): self.resets.append((id, code))
        case .closed(let id, let code): self.closes.append((id, code))
        case .writable(let id): self.writable.append(id)
        case .refused(let id, let pseudoHeaders, let status): self.refused.append((id, pseudoHeaders, status))
        case .goAwayReceived(let lastStreamID, let code): self.goAways.append((lastStreamID, code))
        case .pingAcked(let data): self.pings.append(data)
        }
    }

    private func streamHeadersComplete(_ id: Int32, headers: HPACKHeaders, endStream: Bool) {
        self.heads.append((id, headers, endStream))
        if let session = self.session { self.onHead?(session, id, headers, endStream) }
    }

    private func streamTrailers(_ id: Int32, _ trailers: HPACKHeaders) {
        self.trailers.append((id, trailers))
        if let session = self.session { self.onTrailers?(session, id, trailers) }
    }
}

/// An nghttp2 client session: requests with optional bodies and trailers, responses recorded.
final class TestClient {
    /// One response as the client saw it.
    struct Response {
        var headers: [(String, String)] = []
        var trailers: [(String, String)] = []
        var body: [UInt8] = []
        var ended = false
        var closedCode: UInt32?
        var status: String? { self.field(":status") }
        func field(_ name: String) -> String? { self.headers.first { $0.0 == name }?.1 }
    }

    /// A request body being sent.
    struct Upload {
        var bytes: [UInt8]
        var offset = 0
        var endStream: Bool
        var trailers: [(String, String)]?
    }

    var session: OpaquePointer!
    var responses: [Int32: Response] = [:]
    var uploads: [Int32: Upload] = [:]
    var goAways: [(lastStreamID: Int32, code: UInt32)] = []

    init() {
        var session: OpaquePointer?
        let user = Unmanaged.passUnretained(self).toOpaque()
        precondition(nghttp2_session_client_new(&session, Self.callbacks, user) == 0)
        self.session = session
        precondition(nghttp2_submit_settings(session, 0, nil, 0) == 0)
    }

    deinit { nghttp2_session_del(self.session) }

    /// Submits a request; `body` nil sends the head with END_STREAM. `endStream: false` leaves
    /// the stream open after the body (a tunnel).
    func request(
        _ fields: [(String, String)],
        body: [UInt8]? = nil,
        trailers: [(String, String)]? = nil,
        endStream: Bool = true
    ) -> Int32 {
        Self.withNameValues(fields) { nva, count in
            guard let body else {
                return nghttp2_submit_request(self.session, nil, nva, count, nil, nil)
            }
            var provider = nghttp2_data_provider()
            provider.read_callback = { session, id, buffer, length, flags, _, user in
                let client = Unmanaged<TestClient>.fromOpaque(user!).takeUnretainedValue()
                guard var upload = client.uploads[id] else { return Int(NGHTTP2_ERR_DEFERRED.rawValue) }
                let n = min(length, upload.bytes.count - upload.offset)
                upload.bytes.withUnsafeBufferPointer { buffer!.update(from: $0.baseAddress! + upload.offset, count: n) }
                upload.offset += n
                if upload.offset == upload.bytes.count {
                    if !upload.endStream {
                        if n == 0 {
                            client.uploads[id] = upload
                            return Int(NGHTTP2_ERR_DEFERRED.rawValue)
                        }
                    } else {
                        flags!.pointee |= NGHTTP2_DATA_FLAG_EOF.rawValue
                        if let trailers = upload.trailers {
                            flags!.pointee |= NGHTTP2_DATA_FLAG_NO_END_STREAM.rawValue
                            _ = TestClient.withNameValues(trailers) { nva, count in
                                Int(nghttp2_submit_trailer(session, id, nva, count))
                            }
                        }
                    }
                }
                client.uploads[id] = upload
                return n
            }
            let id = nghttp2_submit_request(self.session, nil, nva, count, &provider, nil)
            if id > 0 { self.uploads[id] = Upload(bytes: body, endStream: endStream, trailers: trailers) }
            return id
        }
    }

    func send() -> [UInt8] {
        var out: [UInt8] = []
        while true {
            var data: UnsafePointer<UInt8>?
            let n = nghttp2_session_mem_send(self.session, &data)
            guard n > 0, let data else { break }
            out.append(contentsOf: UnsafeBufferPointer(start: data, count: n))
        }
        return out
    }

    func receive(_ bytes: [UInt8]) {
        let n = bytes.withUnsafeBufferPointer { nghttp2_session_mem_recv(self.session, $0.baseAddress!, $0.count) }
        precondition(n == bytes.count, "the client failed to read the server's frames: \(n)")
    }

    static func withNameValues<R>(_ fields: [(String, String)], _ body: (UnsafePointer<nghttp2_nv>, Int) -> R) -> R {
        let strings = fields.map { (Array($0.0.utf8), Array($0.1.utf8)) }
        var nva: [nghttp2_nv] = []
        let storage = strings.map { name, value -> (UnsafeMutablePointer<UInt8>, UnsafeMutablePointer<UInt8>) in
            let n = UnsafeMutablePointer<UInt8>.allocate(capacity: max(name.count, 1))
            n.initialize(from: name, count: name.count)
            let v = UnsafeMutablePointer<UInt8>.allocate(capacity: max(value.count, 1))
            v.initialize(from: value, count: value.count)
            nva.append(nghttp2_nv(name: n, value: v, namelen: name.count, valuelen: value.count, flags: 0))
            return (n, v)
        }
        defer {
            for (n, v) in storage {
                n.deallocate()
                v.deallocate()
            }
        }
        return nva.withUnsafeBufferPointer { body($0.baseAddress!, $0.count) }
    }

    private static func client(_ user: UnsafeMutableRawPointer?) -> TestClient {
        Unmanaged<TestClient>.fromOpaque(user!).takeUnretainedValue()
    }

    nonisolated(unsafe) static let callbacks: OpaquePointer = {
        var callbacks: OpaquePointer?
        precondition(nghttp2_session_callbacks_new(&callbacks) == 0)
        nghttp2_session_callbacks_set_on_header_callback(callbacks) {
            _,
            frame,
            name,
            nameLength,
            value,
            valueLength,
            _,
            user in
            let client = TestClient.client(user)
            let id = frame!.pointee.hd.stream_id
            let field = (
                String(decoding: UnsafeBufferPointer(start: name, count: nameLength), as: UTF8.self),
                String(decoding: UnsafeBufferPointer(start: value, count: valueLength), as: UTF8.self)
            )
            if frame!.pointee.headers.cat == NGHTTP2_HCAT_HEADERS {
                client.responses[id, default: Response()].trailers.append(field)
            } else {
                client.responses[id, default: Response()].headers.append(field)
            }
            return 0
        }
        nghttp2_session_callbacks_set_on_frame_recv_callback(callbacks) { _, frame, user in
            let client = TestClient.client(user)
            let hd = frame!.pointee.hd
            if UInt32(hd.type) == NGHTTP2_GOAWAY.rawValue {
                client.goAways.append((frame!.pointee.goaway.last_stream_id, frame!.pointee.goaway.error_code))
            } else if hd.stream_id > 0, hd.flags & UInt8(NGHTTP2_FLAG_END_STREAM.rawValue) != 0 {
                client.responses[hd.stream_id, default: Response()].ended = true
            }
            return 0
        }
        nghttp2_session_callbacks_set_on_data_chunk_recv_callback(callbacks) { _, _, id, data, length, user in
            TestClient.client(user).responses[id, default: Response()].body.append(
                contentsOf: UnsafeBufferPointer(start: data, count: length)
            )
            return 0
        }
        nghttp2_session_callbacks_set_on_stream_close_callback(callbacks) { _, id, code, user in
            TestClient.client(user).responses[id, default: Response()].closedCode = code
            return 0
        }
        return callbacks!
    }()
}

/// Raw HTTP/2 frames, for what a well-behaved client session would never send.
enum Frames {
    static let preface = Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8)

    /// One parsed frame of the server's output.
    struct Frame {
        var type: UInt8
        var flags: UInt8
        var stream: UInt32
        var payload: [UInt8]
        var goAwayCode: UInt32? {
            guard self.type == 7, self.payload.count >= 8 else { return nil }
            return self.payload[4..<8].reduce(0) { $0 << 8 | UInt32($1) }
        }
    }

    static func header(length: Int, type: UInt8, flags: UInt8 = 0, stream: UInt32) -> [UInt8] {
        [
            UInt8(length >> 16 & 0xFF), UInt8(length >> 8 & 0xFF), UInt8(length & 0xFF), type, flags,
            UInt8(stream >> 24 & 0x7F), UInt8(stream >> 16 & 0xFF), UInt8(stream >> 8 & 0xFF), UInt8(stream & 0xFF),
        ]
    }

    static func frame(type: UInt8, flags: UInt8 = 0, stream: UInt32, payload: [UInt8]) -> [UInt8] {
        Self.header(length: payload.count, type: type, flags: flags, stream: stream) + payload
    }

    /// A GET / (static-table fields, `:authority a`) on `stream`, ending it unless `endStream` is false.
    static func request(stream: UInt32, endStream: Bool = true) -> [UInt8] {
        Self.frame(
            type: 1,
            flags: endStream ? 0x5 : 0x4,
            stream: stream,
            payload: [0x82, 0x87, 0x84, 0x41, 0x01, UInt8(ascii: "a")]
        )
    }

    /// SETTINGS with `entries` copies of SETTINGS_HEADER_TABLE_SIZE = 4096.
    static func settings(entries: Int) -> [UInt8] {
        Self.frame(type: 4, stream: 0, payload: Array(repeating: [0, 1, 0, 0, 0x10, 0], count: entries).flatMap { $0 })
    }

    /// A request on stream 1 whose header block is spread over HEADERS and `continuations`
    /// CONTINUATION frames, one indexed field each (static table: :method GET, :scheme https,
    /// :path /, then accept-encoding repeated); the last one ends the block when `end`.
    static func continuationFlood(continuations: Int, end: Bool = false) -> [UInt8] {
        var bytes = Self.frame(type: 1, flags: 0x1, stream: 1, payload: [0x82])
        let fields: [UInt8] = [0x87, 0x84] + Array(repeating: 0x90, count: max(continuations - 2, 0))
        for (index, field) in fields.prefix(continuations).enumerated() {
            let last = index == continuations - 1
            // :authority (literal, indexed name 1) in the last one, so the request is well formed.
            let payload = last ? [field, 0x41, 0x01, UInt8(ascii: "a")] : [field]
            bytes += Self.frame(type: 9, flags: last && end ? 0x4 : 0, stream: 1, payload: payload)
        }
        return bytes
    }

    static func parse(_ bytes: [UInt8]) -> [Frame] {
        var frames: [Frame] = []
        var index = 0
        while index + 9 <= bytes.count {
            let length = Int(bytes[index]) << 16 | Int(bytes[index + 1]) << 8 | Int(bytes[index + 2])
            let stream = bytes[index + 5..<index + 9].reduce(0) { $0 << 8 | UInt32($1) } & 0x7FFF_FFFF
            let end = min(index + 9 + length, bytes.count)
            frames.append(
                Frame(
                    type: bytes[index + 3],
                    flags: bytes[index + 4],
                    stream: stream,
                    payload: Array(bytes[(index + 9)..<end])
                )
            )
            index += 9 + length
        }
        return frames
    }
}

extension NGHTTP2Session {
    /// Everything pending, as bytes.
    func output() -> [UInt8] {
        var bytes: [UInt8] = []
        self.drainOutput { bytes += Array($0.readableBytesView) }
        return bytes
    }
}
