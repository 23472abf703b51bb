import NIOCore

/// One side of a tunnel as its partner sees it: where the other side's bytes go, and how closing
/// and backpressure pass across. A raw socket (`TunnelGlueHandler`) or an HTTP/2 stream
/// (`NGHTTP2TunnelEndpoint`, RFC 8441).
protocol TunnelEndpoint: AnyObject {
    /// Writes bytes read on the other side.
    func partnerWrite(_ bytes: ByteBuffer)
    /// The other side finished a read burst.
    func partnerFlush()
    /// The other side's input ended: half-close this side's output.
    func partnerWriteEOF()
    /// The other side closed: close this side.
    func partnerCloseFull()
    /// The other side can take bytes again: resume a read held back.
    func partnerBecameWritable()
    /// Whether this side can take more bytes now.
    var partnerIsWritable: Bool { get }
    /// Closes this side (idle timeout, shutdown grace).
    func closeChannel()
    /// Ends the client's side on purpose (drain, rebalance): from now on the partner's bytes and
    /// close no longer reach it.
    func end(_ ending: TunnelEnding)
}

/// How a tunnel ends the client's side when the proxy closes it on purpose.
enum TunnelEnding {
    /// `last` (Junction's close frame, or nothing when the backend's own is already on its way)
    /// behind everything queued, then the connection (HTTP/1.1) or our half of the stream (HTTP/2)
    /// ends.
    case graceful(last: ByteBuffer)
    /// A reset: TCP RST (HTTP/1.1), RST_STREAM (HTTP/2).
    case reset
}
