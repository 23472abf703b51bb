import NIOCore

/// One end of a WebSocket tunnel as its partner sees it: a socket (`TunnelGlue`) or an HTTP/2
/// stream (`NGHTTP2TunnelEnd`, RFC 8441). The two ends of a tunnel hold each other and call only
/// these, in the shape of swift-nio's glue handlers: bytes, flushes, half-close, close and
/// backpressure cross over, nothing else.
protocol TunnelEnd: AnyObject {
    /// Writes bytes the partner read.
    func partnerWrite(_ bytes: ByteBuffer)
    /// The partner finished a read burst: flush (and the tunnel is not idle).
    func partnerFlush()
    /// The partner's input ended: half-close this end's output.
    func partnerWriteEOF()
    /// The partner closed (`.partnerClosed`), or ends this end on purpose (a drain).
    func partnerClose(_ close: TunnelClose)
    /// The partner takes bytes again: a read held back goes on.
    func partnerBecameWritable()
    /// Whether this end takes more bytes now (the partner holds its reads while it does not).
    var partnerIsWritable: Bool { get }
}

/// How an end is asked to close.
enum TunnelClose {
    /// The partner closed: close too (unless this end is already being ended on purpose). Every
    /// end says so to its partner once, when it has closed.
    case partnerClosed
    /// End on purpose: `last` (Junction's close frame, or nothing when the backend's own is on its
    /// way) behind everything queued, then the connection (HTTP/1.1) or our half of the stream
    /// (HTTP/2) ends.
    case graceful(last: ByteBuffer)
    /// End on purpose with a reset: TCP RST (HTTP/1.1), RST_STREAM (HTTP/2).
    case reset
}
