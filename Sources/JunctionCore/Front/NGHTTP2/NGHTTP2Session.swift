import CNGHTTP2
import NIOCore
import NIOHPACK

/// One client connection's server-side HTTP/2 session on libnghttp2: bytes in with `receive`,
/// frames out with `drainOutput`, what happened as `Event`s taken with `nextEvent()` once either
/// returned, answers through the `submit…` calls.
///
/// Used only on the connection's event loop: no locks, no futures. nghttp2 does the protocol
/// (framing, HPACK, stream states, flow-control accounting, RFC 9113 message checks, `:protocol`
/// with SETTINGS_ENABLE_CONNECT_PROTOCOL, flood limits); this class turns its C callbacks into
/// Swift values and keeps each stream's state behind nghttp2's stream user-data pointer (no
/// dictionary on the hot path).
///
/// The limits, all deliberate:
/// - 100 concurrent streams, 64 KiB initial stream window, SETTINGS_MAX_HEADER_LIST_SIZE as given;
/// - windows open only through `consumeTaken(stream:)` (no automatic WINDOW_UPDATE), so a stream
///   holds at most its window of request body the upstream has not taken;
/// - a request header list over `headerBudget` (RFC 9113 6.5.2 size: name + value + 32 per field)
///   is answered 431 by the session itself and reported only as `refused`; its fields stop being
///   kept once over the budget. One over the advertised SETTINGS_MAX_HEADER_LIST_SIZE is not decoded
///   further: nghttp2 resets it (RST_STREAM INTERNAL_ERROR). Trailers over the budget reset the
///   stream the same way;
/// - nghttp2's flood limits: 1000 queued SETTINGS/PING acks, 32 SETTINGS entries, RST_STREAM rate
///   1000 burst / 33 per second (rapid reset), 8 CONTINUATION frames per header block.
final class NGHTTP2Session {
    /// What one `receive` call found.
    enum ReceiveResult: Equatable {
        case ok
        /// The connection is over with this HTTP/2 error code: a GOAWAY carrying it is in the
        /// output (flush it, then close).
        case connectionError(UInt32)
    }

    /// The limits the session advertises and enforces.
    struct Configuration {
        var maxConcurrentStreams: UInt32 = 100
        var initialWindowSize: UInt32 = 65535
        /// SETTINGS_MAX_HEADER_LIST_SIZE: a list over it is reset without being decoded further.
        var maxHeaderListSize: UInt32 = 128 * 1024
        /// A request list over this many bytes gets 431 (Junction: `limits.max_header_bytes`).
        var headerBudget: Int = 64 * 1024
        /// The connection's receive window (nil: HTTP/2's default, 65,535). With windows opened
        /// only by `consumeTaken`, a connection window no larger than one stream's lets one slow upload
        /// stall every stream; the front makes it the sum of the stream windows, so the bound on
        /// held request body stays `maxConcurrentStreams` × `initialWindowSize`.
        var connectionWindowSize: UInt32?
    }

    let configuration: Configuration

    private var session: OpaquePointer!
    /// Frames serialised since the last `drainOutput`: one buffer per burst, handed over whole.
    private var output = ByteBuffer()
    /// Every live stream, by id: their owner, so nghttp2's user-data pointer needs no retain of its
    /// own (the data path finds a stream through that pointer, not here).
    private var streams: [Int32: Stream] = [:]
    /// What happened since the caller last took the events, in order.
    private var events = CircularBuffer<Event>(initialCapacity: 4)
    /// The input being parsed, so a DATA payload can be a slice of it instead of a copy.
    private var input: ByteBuffer?
    private var inputBase: UnsafeRawPointer?
    /// The payload part of the DATA frame being parsed: delivered with the frame's END_STREAM flag
    /// when the frame ends, or at the end of `receive` when the frame continues in the next read.
    private var pendingChunk: (stream: Stream, bytes: ByteBuffer)?
    /// The error code of a terminating GOAWAY the session sent (nghttp2's or ours).
    private(set) var connectionError: UInt32?
    /// nghttp2 failed fatally while sending (out of memory, a callback failure): nothing more works.
    private var failed = false
    /// The highest stream id a client HEADERS frame used (-1: none yet, so stream 1 skips nothing).
    private var highestClientStreamID: Int32 = -1
    /// Client stream ids jumped over (RFC 9113 5.1.1: implicitly closed), as closed ranges; a few
    /// only, the oldest dropped (a well-behaved client skips none).
    private var skippedStreamIDs: [ClosedRange<Int32>] = []
    private static let maxSkippedRanges = 8

    init(configuration: Configuration = Configuration()) {
        self.configuration = configuration
        let user = Unmanaged.passUnretained(self).toOpaque()
        var session: OpaquePointer?
        let rv = nghttp2_session_server_new2(&session, NGHTTP2Callbacks.callbacks, user, NGHTTP2Callbacks.options)
        precondition(rv == 0 && session != nil, "nghttp2_session_server_new2: \(rv)")
        self.session = session
        var settings = [
            Self.setting(NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, configuration.maxConcurrentStreams),
            Self.setting(NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, configuration.initialWindowSize),
            Self.setting(NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, configuration.maxHeaderListSize),
            Self.setting(NGHTTP2_SETTINGS_ENABLE_CONNECT_PROTOCOL, 1),
        ]
        // Queued only: the server's SETTINGS goes out with the first `drainOutput` (RFC 9113 3.4).
        let submitted = nghttp2_submit_settings(session, UInt8(NGHTTP2_FLAG_NONE.rawValue), &settings, settings.count)
        precondition(submitted == 0, "nghttp2_submit_settings: \(submitted)")
        if let window = configuration.connectionWindowSize {
            // Queues the WINDOW_UPDATE for stream 0 behind the SETTINGS.
            let rv = nghttp2_session_set_local_window_size(
                session,
                UInt8(NGHTTP2_FLAG_NONE.rawValue),
                0,
                Int32(clamping: window)
            )
            precondition(rv == 0, "nghttp2_session_set_local_window_size: \(rv)")
        }
    }

    deinit {
        // nghttp2 calls no callback while deleting; the streams go with `self.streams`.
        nghttp2_session_del(self.session)
    }

    /// The next thing that happened, oldest first; nil when the caller has seen everything.
    /// Events pile up during `receive` and `drainOutput` and are taken once those returned, so the
    /// caller never runs inside an nghttp2 callback and may submit freely while handling them.
    func nextEvent() -> Event? {
        let event = self.events.popFirst()
        if case .data(let id, let bytes, _) = event, bytes.readableBytes > 0, let stream = self.stream(id) {
            // Taken by the caller: from now on `consumeTaken` may open the windows by these bytes.
            stream.taken += bytes.readableBytes
        }
        return event
    }

    private static func setting(_ id: nghttp2_settings_id, _ value: UInt32) -> nghttp2_settings_entry {
        nghttp2_settings_entry(settings_id: Int32(id.rawValue), value: value)
    }

    // MARK: input

    /// Parses `bytes` (the client preface included: Junction's sniffer and ALPN path hand it on).
    /// What it found waits in `nextEvent()`; the frames nghttp2 answers with (SETTINGS ack,
    /// WINDOW_UPDATE, RST_STREAM, GOAWAY) are serialised into the pending output before it returns,
    /// so a connection error is known here, not only once the output is written.
    func receive(_ bytes: ByteBuffer) -> ReceiveResult {
        guard bytes.readableBytes > 0, !self.failed else { return self.result }
        let rv = bytes.withUnsafeReadableBytes { raw -> Int in
            self.input = bytes
            self.inputBase = raw.baseAddress
            defer {
                self.input = nil
                self.inputBase = nil
            }
            return nghttp2_session_mem_recv(
                self.session,
                raw.baseAddress!.assumingMemoryBound(to: UInt8.self),
                raw.count
            )
        }
        self.deliverPendingChunk(endStream: false)
        if rv < 0 {
            // Fatal to the session, and nghttp2 queued no GOAWAY for these (a bad preface, a flood,
            // too many CONTINUATION frames): queue one so the client learns why.
            let code = Self.errorCode(forFatal: Int32(rv))
            nghttp2_session_terminate_session(self.session, code)
            self.connectionError = self.connectionError ?? code
        }
        // Most protocol errors do not fail mem_recv: nghttp2 queues a GOAWAY and ignores the rest.
        // Serialising now is what tells them (`onFrameSent` notes the code).
        self.serialise()
        return self.result
    }

    private var result: ReceiveResult {
        if let code = self.connectionError { return .connectionError(code) }
        if self.failed { return .connectionError(UInt32(NGHTTP2_INTERNAL_ERROR.rawValue)) }
        return .ok
    }

    /// The HTTP/2 error code for a fatal mem_recv result.
    static func errorCode(forFatal lib: Int32) -> UInt32 {
        switch lib {
        case NGHTTP2_ERR_BAD_CLIENT_MAGIC.rawValue:
            return UInt32(NGHTTP2_PROTOCOL_ERROR.rawValue)
        case NGHTTP2_ERR_FLOODED.rawValue, NGHTTP2_ERR_TOO_MANY_CONTINUATIONS.rawValue:
            return UInt32(NGHTTP2_ENHANCE_YOUR_CALM.rawValue)
        default:
            return UInt32(NGHTTP2_INTERNAL_ERROR.rawValue)
        }
    }

    // MARK: output

    /// Hands over everything serialised since the last call, as one buffer (nothing when there is
    /// nothing): the caller writes it and flushes once per read burst.
    func drainOutput(_ write: (ByteBuffer) -> Void) {
        self.serialise()
        guard self.output.readableBytes > 0 else { return }
        let out = self.output
        // A fresh (empty, unallocated) buffer: an idle connection holds no output memory.
        self.output = ByteBuffer()
        write(out)
    }

    /// Runs nghttp2_session_mem_send until it has nothing more.
    private func serialise() {
        guard !self.failed else { return }
        while true {
            var data: UnsafePointer<UInt8>?
            let n = nghttp2_session_mem_send(self.session, &data)
            if n < 0 {
                self.failed = true
                return
            }
            guard n > 0, let data else { return }
            self.output.writeBytes(UnsafeRawBufferPointer(start: data, count: n))
        }
    }

    /// nghttp2 wants more input. With `wantsWrite` also false the connection is done: close it.
    var wantsRead: Bool { !self.failed && nghttp2_session_want_read(self.session) != 0 }

    /// nghttp2 has frames to send (and the windows to send them).
    var wantsWrite: Bool { !self.failed && nghttp2_session_want_write(self.session) != 0 }

    /// The highest client stream id nghttp2 processed: the last stream id of a final GOAWAY.
    var lastProcessedStreamID: Int32 { nghttp2_session_get_last_proc_stream_id(self.session) }

    // MARK: submissions

    /// Queues the response head; `headers` starts with `:status` (as `HTTP2HeadConverter.response`
    /// builds it). With `hasBody`, the body comes through `submitData` and ends with its
    /// `endStream` or `submitTrailers`; without, the head ends the stream. False when the stream
    /// is gone.
    @discardableResult
    func submitResponse(stream id: Int32, headers: HPACKHeaders, hasBody: Bool) -> Bool {
        guard let stream = self.stream(id) else { return false }
        let rv: Int32
        if hasBody {
            stream.hasBody = true
            var provider = nghttp2_data_provider()
            provider.source.ptr = Unmanaged.passUnretained(stream).toOpaque()
            provider.read_callback = NGHTTP2Callbacks.read
            rv = headers.withNameValues { nva, count in
                nghttp2_submit_response(self.session, id, nva, count, &provider)
            }
        } else {
            stream.outputEnded = true
            rv = headers.withNameValues { nva, count in
                nghttp2_submit_response(self.session, id, nva, count, nil)
            }
        }
        return rv == 0
    }

    /// Queues response body bytes (kept as they are until nghttp2 frames them). False when the
    /// stream is gone, has no body, or its body already ended.
    @discardableResult
    func submitData(stream id: Int32, _ bytes: ByteBuffer, endStream: Bool) -> Bool {
        guard let stream = self.stream(id), stream.hasBody, !stream.outputEnded else { return false }
        if bytes.readableBytes > 0 {
            stream.queue.append(bytes)
            stream.queuedBytes += bytes.readableBytes
        }
        stream.outputEnded = endStream
        self.resumeIfDeferred(stream)
        return true
    }

    /// Response body bytes queued and not yet framed: the caller stops reading upstream above its
    /// own mark and resumes on `streamWritable`.
    func queuedBytes(stream id: Int32) -> Int {
        self.stream(id)?.queuedBytes ?? 0
    }

    /// Ends the response body with trailers (sent once the queued body is out). False when the
    /// stream is gone, has no body, or its body already ended.
    @discardableResult
    func submitTrailers(stream id: Int32, _ trailers: HPACKHeaders) -> Bool {
        guard let stream = self.stream(id), stream.hasBody, !stream.outputEnded else { return false }
        stream.trailers = trailers
        stream.outputEnded = true
        self.resumeIfDeferred(stream)
        return true
    }

    /// RST_STREAM with `code`; the stream closes (and `streamClosed` follows) once it is sent.
    func resetStream(_ id: Int32, code: UInt32) {
        _ = nghttp2_submit_rst_stream(self.session, UInt8(NGHTTP2_FLAG_NONE.rawValue), id, code)
    }

    /// The request body is not wanted (the answer came before the request ended): RST_STREAM
    /// NO_ERROR once the response's last frame is sent (RFC 9113 8.1). Resetting at once would
    /// drop the response body still queued behind the head.
    func resetAfterResponse(stream id: Int32) {
        self.stream(id)?.resetAfterResponse = true
    }

    /// Opens the stream and connection windows by the stream's request body the caller took (its
    /// `.data` events) and has not consumed yet: the upstream took it, or it is not wanted. Body
    /// still waiting in events is not counted. After the stream closed, the session already gave
    /// its remainder back to the connection window: nothing happens.
    func consumeTaken(stream id: Int32) {
        guard let stream = self.stream(id), stream.taken > 0 else { return }
        let n = min(stream.taken, stream.unconsumed)
        stream.taken = 0
        stream.unconsumed -= n
        _ = nghttp2_session_consume(self.session, id, n)
    }

    /// Whether the client ended its half of the stream (END_STREAM seen); true once it is gone.
    func clientEnded(stream id: Int32) -> Bool {
        nghttp2_session_get_stream_remote_close(self.session, id) != 0
    }

    /// GOAWAY naming `lastStreamID` (nghttp2 lowers it to the last stream it received).
    func submitGoAway(lastStreamID: Int32, code: UInt32) {
        _ = nghttp2_submit_goaway(self.session, UInt8(NGHTTP2_FLAG_NONE.rawValue), lastStreamID, code, nil, 0)
    }

    /// The graceful-shutdown GOAWAY (last stream id 2^31-1, RFC 9113 6.8): the client stops opening
    /// streams; the final GOAWAY follows (typically after a PING round trip).
    func submitShutdownNotice() {
        _ = nghttp2_submit_shutdown_notice(self.session)
    }

    /// PING carrying `data` (big-endian); its ack comes back as `.pingAcked(data)`.
    func submitPing(_ data: UInt64) {
        withUnsafeBytes(of: data.bigEndian) { raw in
            _ = nghttp2_submit_ping(
                self.session,
                UInt8(NGHTTP2_FLAG_NONE.rawValue),
                raw.baseAddress!.assumingMemoryBound(to: UInt8.self)
            )
        }
    }

    private func stream(_ id: Int32) -> Stream? {
        guard let pointer = nghttp2_session_get_stream_user_data(self.session, id) else { return nil }
        return Unmanaged<Stream>.fromOpaque(pointer).takeUnretainedValue()
    }

    private func resumeIfDeferred(_ stream: Stream) {
        guard stream.deferred else { return }
        stream.deferred = false
        _ = nghttp2_session_resume_data(self.session, stream.id)
    }

    // MARK: streams

    private func link(_ stream: Stream) {
        self.streams[stream.id] = stream
        _ = nghttp2_session_set_stream_user_data(self.session, stream.id, Unmanaged.passUnretained(stream).toOpaque())
    }

    private func unlink(_ stream: Stream) {
        self.streams[stream.id] = nil
    }

    /// Reports the DATA payload parsed so far.
    private func deliverPendingChunk(endStream: Bool) {
        guard let (stream, bytes) = self.pendingChunk else { return }
        self.pendingChunk = nil
        guard !stream.closed else {
            _ = nghttp2_session_consume_connection(self.session, bytes.readableBytes)
            return
        }
        stream.unconsumed += bytes.readableBytes
        self.events.append(.data(stream.id, bytes, endStream: endStream))
    }

    /// The 431 for a request head over the budget (no body; the request's own body, if any, is
    /// not wanted: RST_STREAM NO_ERROR after the response, RFC 9113 8.1).
    private func refuse(_ stream: Stream, endStream: Bool) {
        let pseudo = stream.fields
        stream.fields = HPACKHeaders()
        let headers: HPACKHeaders = [":status": "431", "content-length": "0"]
        self.submitResponse(stream: stream.id, headers: headers, hasBody: false)
        if !endStream { self.resetStream(stream.id, code: UInt32(NGHTTP2_NO_ERROR.rawValue)) }
        self.events.append(.refused(stream.id, pseudoHeaders: pseudo, status: 431))
    }

    // MARK: nghttp2 callbacks (as methods; `NGHTTP2Callbacks`' C function pointers only dispatch)

    /// RFC 9113 5.1.1: a HEADERS frame on a stream id the client already jumped over is a connection
    /// error. nghttp2 only ignores such a frame (it cannot tell a skipped id from a stream it
    /// forgot), so the session remembers the ids that were skipped.
    func onBeginFrame(_ hd: UnsafePointer<nghttp2_frame_hd>) -> Int32 {
        let id = hd.pointee.stream_id
        guard UInt32(hd.pointee.type) == NGHTTP2_HEADERS.rawValue, id & 1 == 1 else { return 0 }
        if id > self.highestClientStreamID {
            // Both odd (or -1): the gap is 2 when nothing was skipped. In Int64: ids reach 2^31-1.
            if Int64(id) - Int64(self.highestClientStreamID) > 2 {
                if self.skippedStreamIDs.count == Self.maxSkippedRanges { self.skippedStreamIDs.removeFirst() }
                self.skippedStreamIDs.append((self.highestClientStreamID + 2)...(id - 2))
            }
            self.highestClientStreamID = id
        } else if self.skippedStreamIDs.contains(where: { $0.contains(id) }) {
            _ = nghttp2_session_terminate_session(self.session, UInt32(NGHTTP2_PROTOCOL_ERROR.rawValue))
        }
        return 0
    }

    func onBeginHeaders(_ frame: UnsafePointer<nghttp2_frame>) -> Int32 {
        let id = frame.pointee.hd.stream_id
        switch frame.pointee.headers.cat {
        case NGHTTP2_HCAT_REQUEST:
            self.link(Stream(id: id))
        case NGHTTP2_HCAT_HEADERS:
            // Trailers: a fresh block on a known stream.
            guard let stream = self.stream(id) else { return 0 }
            stream.fields = HPACKHeaders()
            stream.fieldBytes = 0
        default:
            break
        }
        return 0
    }

    func onHeader(
        _ frame: UnsafePointer<nghttp2_frame>,
        name: UnsafeRawBufferPointer,
        value: UnsafeRawBufferPointer,
        flags: UInt8
    ) -> Int32 {
        guard let stream = self.stream(frame.pointee.hd.stream_id) else { return 0 }
        stream.fieldBytes += name.count + value.count + 32
        if stream.fieldBytes > Int(self.configuration.maxHeaderListSize) {
            // Past what SETTINGS allowed: nghttp2 stops calling us for this block and resets.
            return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE.rawValue
        }
        if stream.fieldBytes > self.configuration.headerBudget {
            if stream.reported {
                // Trailers over the budget: the stream is reset (nghttp2 sends INTERNAL_ERROR).
                return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE.rawValue
            }
            // Keep counting (up to the SETTINGS limit), stop keeping: answered 431 at the end. The
            // pseudo-header fields (first in a block) stay, for the access log's line.
            if !stream.overBudget {
                stream.overBudget = true
                var pseudo = HPACKHeaders()
                for (name, value, _) in stream.fields where name.utf8.first == UInt8(ascii: ":") {
                    pseudo.add(name: name, value: value)
                }
                stream.fields = pseudo
            }
            return 0
        }
        let indexing: HPACKIndexing =
            flags & UInt8(NGHTTP2_NV_FLAG_NO_INDEX.rawValue) != 0 ? .neverIndexed : .indexable
        // Room for a browser's usual dozen fields at once, instead of a doubling every few.
        if stream.fields.isEmpty { stream.fields.reserveCapacity(16) }
        stream.fields.add(
            name: String(decoding: name, as: UTF8.self),
            value: String(decoding: value, as: UTF8.self),
            indexing: indexing
        )
        return 0
    }

    func onFrameReceived(_ frame: UnsafePointer<nghttp2_frame>) -> Int32 {
        let hd = frame.pointee.hd
        let endStream = hd.flags & UInt8(NGHTTP2_FLAG_END_STREAM.rawValue) != 0
        switch UInt32(hd.type) {
        case NGHTTP2_DATA.rawValue:
            if let pending = self.pendingChunk, pending.stream.id == hd.stream_id {
                self.deliverPendingChunk(endStream: endStream)
            } else if endStream, let stream = self.stream(hd.stream_id), stream.reported {
                self.events.append(.data(hd.stream_id, ByteBuffer(), endStream: true))
            }
        case NGHTTP2_HEADERS.rawValue:
            guard let stream = self.stream(hd.stream_id) else { return 0 }
            if frame.pointee.headers.cat == NGHTTP2_HCAT_REQUEST {
                if stream.overBudget {
                    self.refuse(stream, endStream: endStream)
                    return 0
                }
                stream.reported = true
                let fields = stream.fields
                stream.fields = HPACKHeaders()
                self.events.append(.headers(hd.stream_id, fields, endStream: endStream))
            } else if stream.reported {
                // nghttp2 only accepts trailers that end the stream.
                let fields = stream.fields
                stream.fields = HPACKHeaders()
                self.events.append(.trailers(hd.stream_id, fields))
            }
        case NGHTTP2_RST_STREAM.rawValue:
            if let stream = self.stream(hd.stream_id), stream.reported {
                self.events.append(.reset(hd.stream_id, code: frame.pointee.rst_stream.error_code))
            }
        case NGHTTP2_GOAWAY.rawValue:
            self.events.append(
                .goAwayReceived(
                    lastStreamID: frame.pointee.goaway.last_stream_id,
                    code: frame.pointee.goaway.error_code
                )
            )
        case NGHTTP2_PING.rawValue:
            guard hd.flags & UInt8(NGHTTP2_FLAG_ACK.rawValue) != 0 else { return 0 }
            let data = withUnsafeBytes(of: frame.pointee.ping.opaque_data) { raw in
                raw.loadUnaligned(as: UInt64.self)
            }
            self.events.append(.pingAcked(UInt64(bigEndian: data)))
        default:
            break
        }
        return 0
    }

    func onDataChunk(streamID: Int32, data: UnsafePointer<UInt8>, count: Int) -> Int32 {
        guard let stream = self.stream(streamID), stream.reported, !stream.closed else {
            // A stream not reported (answered 431): its body is not wanted, and the
            // connection window must not shrink for it.
            _ = nghttp2_session_consume(self.session, streamID, count)
            return 0
        }
        self.deliverPendingChunk(endStream: false)
        let bytes: ByteBuffer
        if let input = self.input, let base = self.inputBase,
            case let offset = UnsafeRawPointer(data) - base, offset >= 0, offset + count <= input.readableBytes
        {
            // nghttp2 points into our input: a slice, no copy.
            bytes = input.getSlice(at: input.readerIndex + offset, length: count)!
        } else {
            bytes = ByteBuffer(bytes: UnsafeRawBufferPointer(start: data, count: count))
        }
        self.pendingChunk = (stream, bytes)
        return 0
    }

    func onStreamClose(_ id: Int32, errorCode: UInt32) -> Int32 {
        guard let stream = self.stream(id) else { return 0 }
        stream.closed = true
        if stream.unconsumed > 0 {
            // Body the upstream never took: give it back to the connection window, or a few reset
            // streams would stall every other one.
            _ = nghttp2_session_consume_connection(self.session, stream.unconsumed)
            stream.unconsumed = 0
        }
        // Keeping the capacity: a plain removeAll() allocates an empty ring, and the stream is gone anyway.
        stream.queue.removeAll(keepingCapacity: true)
        stream.queuedBytes = 0
        self.unlink(stream)
        if stream.reported { self.events.append(.closed(id, code: errorCode)) }
        return 0
    }

    func onFrameSent(_ frame: UnsafePointer<nghttp2_frame>) -> Int32 {
        let hd = frame.pointee.hd
        switch UInt32(hd.type) {
        case NGHTTP2_GOAWAY.rawValue:
            if frame.pointee.goaway.error_code != 0 {
                self.connectionError = self.connectionError ?? frame.pointee.goaway.error_code
            }
        case NGHTTP2_DATA.rawValue, NGHTTP2_HEADERS.rawValue:
            guard hd.flags & UInt8(NGHTTP2_FLAG_END_STREAM.rawValue) != 0, let stream = self.stream(hd.stream_id),
                stream.resetAfterResponse
            else { return 0 }
            stream.resetAfterResponse = false
            self.resetStream(hd.stream_id, code: UInt32(NGHTTP2_NO_ERROR.rawValue))
        default:
            break
        }
        return 0
    }

    /// nghttp2 asks for up to `length` body bytes of `stream`.
    func onRead(
        _ stream: Stream,
        into buffer: UnsafeMutablePointer<UInt8>,
        length: Int,
        flags: UnsafeMutablePointer<UInt32>
    ) -> Int {
        var written = 0
        while written < length, var first = stream.queue.first {
            let n = min(length - written, first.readableBytes)
            first.withUnsafeReadableBytes { raw in
                (buffer + written).update(from: raw.baseAddress!.assumingMemoryBound(to: UInt8.self), count: n)
            }
            written += n
            if n == first.readableBytes {
                stream.queue.removeFirst()
            } else {
                first.moveReaderIndex(forwardBy: n)
                stream.queue[stream.queue.startIndex] = first
            }
        }
        stream.queuedBytes -= written
        guard stream.queue.isEmpty else { return written }
        if stream.outputEnded {
            flags.pointee |= NGHTTP2_DATA_FLAG_EOF.rawValue
            if let trailers = stream.trailers {
                // The trailers' HEADERS frame ends the stream instead of this DATA frame.
                stream.trailers = nil
                flags.pointee |= NGHTTP2_DATA_FLAG_NO_END_STREAM.rawValue
                let rv = trailers.withNameValues { nva, count in
                    nghttp2_submit_trailer(self.session, stream.id, nva, count)
                }
                if rv != 0 { return Int(NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE.rawValue) }
            }
            return written
        }
        if written == 0 {
            stream.deferred = true
            return Int(NGHTTP2_ERR_DEFERRED.rawValue)
        }
        self.events.append(.writable(stream.id))
        return written
    }
}
