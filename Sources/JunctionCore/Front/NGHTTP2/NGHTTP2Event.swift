import NIOCore
import NIOHPACK

extension NGHTTP2Session {
    /// What the session found while parsing input or serialising output, as a plain value.
    ///
    /// A stream exists for the caller from `.headers` to `.closed`; streams nghttp2 or the session
    /// refused before their head was complete (malformed, over the header budget, over the
    /// concurrency limit) are never reported, except a 431 as `.refused`.
    enum Event {
        /// A request head, already checked by nghttp2 (RFC 9113 8.1-8.3 pseudo-headers and field
        /// names, `:protocol` only with SETTINGS_ENABLE_CONNECT_PROTOCOL): `HTTP2HeadConverter.request`
        /// takes it as it is. `endStream`: the request has no body.
        case headers(Int32, HPACKHeaders, endStream: Bool)
        /// Request body bytes (a slice of the read, not a copy), or an empty buffer with `endStream`.
        /// The stream's window stays closed by these bytes until `consumeTaken` once they are taken.
        case data(Int32, ByteBuffer, endStream: Bool)
        /// Request trailers; they end the request.
        case trailers(Int32, HPACKHeaders)
        /// The client reset the stream; `.closed` follows.
        case reset(Int32, code: UInt32)
        /// The stream is gone (both sides ended, or reset by either): no more submissions for it.
        case closed(Int32, code: UInt32)
        /// The stream's queued response body went into frames: the upstream may be read again.
        case writable(Int32)
        /// The session answered a request itself with `status` (431: the head was over the
        /// budget). `pseudoHeaders`: the head's pseudo-header fields that fit in the budget, for
        /// the access log.
        case refused(Int32, pseudoHeaders: HPACKHeaders, status: UInt)
        /// The client sent GOAWAY: it opens no more streams.
        case goAwayReceived(lastStreamID: Int32, code: UInt32)
        /// The ack of a `submitPing(data)`.
        case pingAcked(UInt64)
    }
}
