import NIOCore
import NIOHPACK

/// What an `NGHTTP2Session` reports, as plain Swift values, on the connection's event loop.
///
/// A stream exists for the delegate from `streamHeadersComplete` to `streamClosed`; streams nghttp2
/// or the session refused before their head was complete (malformed, over the header budget, over
/// the concurrency limit) are never reported. Events may arrive while the session parses input or
/// serialises output; submitting (answers, data, resets) from inside them is fine.
protocol NGHTTP2SessionDelegate: AnyObject {
    /// A request head, already checked by nghttp2 (RFC 9113 8.1-8.3 pseudo-headers and field
    /// names, `:protocol` only with SETTINGS_ENABLE_CONNECT_PROTOCOL): `HTTP2HeadConverter.request`
    /// takes it as it is. `endStream`: the request has no body.
    func streamHeadersComplete(_ id: Int32, headers: HPACKHeaders, endStream: Bool)

    /// Request body bytes (a slice of the read, not a copy), or an empty buffer with `endStream`.
    /// The stream's window stays closed by these bytes until `consume(stream:bytes:)`.
    func streamData(_ id: Int32, _ bytes: ByteBuffer, endStream: Bool)

    /// Request trailers; they end the request.
    func streamTrailers(_ id: Int32, _ trailers: HPACKHeaders)

    /// The client reset the stream; `streamClosed` follows.
    func streamReset(_ id: Int32, errorCode: UInt32)

    /// The stream is gone (both sides ended, or reset by either): no more submissions for it.
    func streamClosed(_ id: Int32, errorCode: UInt32)

    /// The stream's queued response body went into frames: the upstream may be read again.
    func streamWritable(_ id: Int32)

    /// The session answered a request itself with `status` (431: the head was over the budget);
    /// the stream is not reported otherwise. `pseudoHeaders`: the head's pseudo-header fields that
    /// fit in the budget, for the access log.
    func streamRefused(_ id: Int32, pseudoHeaders: HPACKHeaders, status: UInt)

    /// The client sent GOAWAY: it opens no more streams.
    func goAwayReceived(lastStreamID: Int32, errorCode: UInt32)

    /// The ack of a `submitPing(data)`.
    func pingAcked(_ data: UInt64)
}

extension NGHTTP2SessionDelegate {
    func streamTrailers(_ id: Int32, _ trailers: HPACKHeaders) {}
    func streamWritable(_ id: Int32) {}
    func streamRefused(_ id: Int32, pseudoHeaders: HPACKHeaders, status: UInt) {}
    func goAwayReceived(lastStreamID: Int32, errorCode: UInt32) {}
    func pingAcked(_ data: UInt64) {}
}
