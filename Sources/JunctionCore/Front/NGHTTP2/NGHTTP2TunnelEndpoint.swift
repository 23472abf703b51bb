import CNGHTTP2
import NIOCore

/// The client side of an RFC 8441 WebSocket tunnel on the libnghttp2 front: one stream's DATA to
/// and from the upstream socket's glue (`TunnelGlueHandler`), without a channel of its own.
///
/// Flow control is the backpressure, as for request bodies: the client's bytes open its windows
/// (`consume`) only once the upstream can take more, and the upstream is read only while the
/// stream's queued output is under `NGHTTP2StreamProxy.queueMark` and the socket is writable.
/// END_STREAM either way is a half-close; RST_STREAM, or the stream's close, closes the tunnel.
final class NGHTTP2TunnelEndpoint: TunnelEndpoint {
    let id: Int32
    private unowned let connection: NGHTTP2ConnectionHandler
    /// The tunnel (idle timeout, counters, the log line); nil once this side closed.
    private var tunnel: Tunnel?
    /// The upstream side; set by `Tunnel.pair`, nil once this side closed.
    var partner: (any TunnelEndpoint)?
    /// Client bytes written upstream whose window is not opened yet.
    private var owed = 0
    /// Our half of the stream ended (END_STREAM sent, or queued behind the last bytes).
    private var sentEnd = false
    /// The tunnel ends this side on purpose: the upstream's bytes no longer reach the stream.
    private var isEnding = false
    private var isClosed = false

    init(id: Int32, connection: NGHTTP2ConnectionHandler, tunnel: Tunnel) {
        self.id = id
        self.connection = connection
        self.tunnel = tunnel
    }

    private var session: NGHTTP2Session { self.connection.session }

    // MARK: from the client

    /// DATA from the client (`endStream`: its half of the stream ended).
    func clientData(_ bytes: ByteBuffer, endStream: Bool) {
        guard !self.isClosed else { return }
        let count = bytes.readableBytes
        if count > 0 {
            self.tunnel?.relayedFromClient(bytes)
            if let partner = self.partner {
                partner.partnerWrite(bytes)
                self.owed += count
                if partner.partnerIsWritable { self.releaseOwed() }
            } else {
                self.session.consume(stream: self.id, bytes: count)
            }
        }
        if endStream { self.clientEnded() }
    }

    /// The client ended its half of the stream (END_STREAM, or trailers).
    func clientEnded() {
        guard !self.isClosed else { return }
        self.tunnel?.inputEnded(fromClient: true)
        self.partner?.partnerWriteEOF()
    }

    /// The end of the client's read burst: the tunnel is alive, and the upstream sends.
    func readBurstEnded() {
        self.tunnel?.touch()
        self.partner?.partnerFlush()
    }

    /// The stream's queued output went into frames, or the socket drained.
    func downstreamBecameWritable() {
        guard !self.isClosed, self.partnerIsWritable else { return }
        self.partner?.partnerBecameWritable()
    }

    /// The stream closed (either side's reset, both halves ended, or the connection went away):
    /// the tunnel learns it (first, so it knows the client closed first), then the upstream closes.
    func streamClosed() {
        guard !self.isClosed else { return }
        self.isClosed = true
        // The session gave the stream's unconsumed bytes back already; and the connection may be
        // gone: nothing may reach it from here on.
        self.owed = 0
        let tunnel = self.tunnel
        let partner = self.partner
        self.tunnel = nil
        self.partner = nil
        tunnel?.sideClosed(fromClient: true)
        partner?.partnerCloseFull()
    }

    private func releaseOwed() {
        guard self.owed > 0, !self.isClosed else { return }
        self.session.consume(stream: self.id, bytes: self.owed)
        self.owed = 0
        self.connection.outputPending()
    }

    /// RST_STREAM CANCEL; the stream's close follows once it is sent.
    private func reset() {
        guard !self.isClosed else { return }
        self.session.resetStream(self.id, code: UInt32(NGHTTP2_CANCEL.rawValue))
        self.connection.outputPending()
    }

    /// A last DATA frame carrying `bytes` and END_STREAM.
    private func endStream(with bytes: ByteBuffer) {
        self.sentEnd = true
        self.session.submitData(stream: self.id, bytes, endStream: true)
        self.connection.outputPending()
    }

    // MARK: TunnelEndpoint (the upstream side's calls)

    func partnerWrite(_ bytes: ByteBuffer) {
        guard !self.isClosed, !self.isEnding, !self.sentEnd else { return }
        self.session.submitData(stream: self.id, bytes, endStream: false)
    }

    func partnerFlush() {
        guard !self.isClosed else { return }
        self.connection.outputPending()
    }

    func partnerWriteEOF() {
        guard !self.isClosed, !self.isEnding, !self.sentEnd else { return }
        self.endStream(with: ByteBuffer())
    }

    func partnerCloseFull() {
        guard !self.isEnding else { return }
        self.reset()
    }

    func partnerBecameWritable() {
        self.releaseOwed()
    }

    var partnerIsWritable: Bool {
        !self.isClosed && self.connection.isWritable
            && self.session.queuedBytes(stream: self.id) < NGHTTP2StreamProxy.queueMark
    }

    func closeChannel() {
        self.partnerCloseFull()
    }

    func end(_ ending: TunnelEnding) {
        guard !self.isClosed else { return }
        let wasEnding = self.isEnding
        self.isEnding = true
        switch ending {
        case .graceful(let last) where !self.sentEnd && !wasEnding:
            // `last` ends our half of the stream; the stream closes when the client ends its half
            // (its own close frame), or is reset when the tunnel's close grace runs out.
            self.endStream(with: last)
        default:
            self.reset()
        }
    }
}
