import NIOCore

/// The client end of an RFC 8441 WebSocket tunnel: one HTTP/2 stream's DATA to and from its
/// partner, the upstream socket's `TunnelGlue`, without a channel of its own. It speaks the same
/// `TunnelEnd` protocol as a socket's glue, and writes through the stream's wire.
///
/// Flow control is the backpressure, as for request bodies: the client's bytes open its windows
/// only once the partner takes more, and the partner is read only while the stream's queued output
/// is under the queue mark and the socket is writable. END_STREAM either way is a half-close;
/// RST_STREAM, or the stream's close, closes the tunnel.
final class NGHTTP2TunnelEnd: TunnelEnd {
    private let wire: NGHTTP2ConnectionHandler.StreamWire
    private var partner: (any TunnelEnd)?
    /// Our half of the stream ended (END_STREAM sent, or queued behind the last bytes).
    private var sentEnd = false
    /// The tunnel ends this end on purpose: the partner's bytes no longer reach the stream.
    private var isEnding = false
    /// The stream is gone: nothing reaches the session from here on.
    private var isClosed = false
    /// The partner said it closed (or there never was one).
    private var partnerClosed = true

    init(wire: NGHTTP2ConnectionHandler.StreamWire) {
        self.wire = wire
    }

    /// Makes `end` this end's partner (each end of a pair is told of the other).
    func partner(with end: any TunnelEnd) {
        self.partner = end
        self.partnerClosed = false
    }

    // MARK: from the connection

    /// DATA from the client (`endStream`: its half of the stream ended).
    func clientData(_ bytes: ByteBuffer, endStream: Bool) {
        guard !self.isClosed else { return }
        if bytes.readableBytes > 0 {
            if let partner = self.partner {
                partner.partnerWrite(bytes)
                if partner.partnerIsWritable { self.wire.consumeTaken() }
            } else {
                self.wire.consumeTaken()
            }
        }
        if endStream { self.clientEnded() }
    }

    /// The client ended its half of the stream (END_STREAM, or trailers).
    func clientEnded() {
        guard !self.isClosed else { return }
        self.partner?.partnerWriteEOF()
    }

    /// The end of the client's read burst: the partner sends what it was given.
    func readBurstEnded() {
        self.partner?.partnerFlush()
    }

    /// The stream's queued output went into frames, or the socket drained.
    func clientWritable() {
        guard !self.isClosed, self.partnerIsWritable else { return }
        self.partner?.partnerBecameWritable()
    }

    /// The stream closed (either side's reset, both halves ended, or the connection went away):
    /// the partner hears it, once.
    func streamClosed() {
        guard !self.isClosed else { return }
        self.isClosed = true
        let partner = self.partner
        if self.partnerClosed { self.partner = nil }
        partner?.partnerClose(.partnerClosed)
    }

    /// RST_STREAM CANCEL; the stream's close follows once it is sent.
    private func reset() {
        guard !self.isClosed else { return }
        self.wire.reset()
    }

    // MARK: TunnelEnd

    func partnerWrite(_ bytes: ByteBuffer) {
        guard !self.isClosed, !self.isEnding, !self.sentEnd else { return }
        self.wire.session.submitData(stream: self.wire.id, bytes, endStream: false)
    }

    func partnerFlush() {
        guard !self.isClosed else { return }
        self.wire.outputPending()
    }

    func partnerWriteEOF() {
        guard !self.isClosed, !self.isEnding, !self.sentEnd else { return }
        self.endStream(with: ByteBuffer())
    }

    func partnerClose(_ close: TunnelClose) {
        switch close {
        case .partnerClosed:
            self.partnerClosed = true
            if self.isClosed {
                self.partner = nil
            } else if !self.isEnding {
                self.reset()
            }
        case .graceful(let last):
            guard !self.isClosed else { return }
            let wasEnding = self.isEnding
            self.isEnding = true
            if self.sentEnd || wasEnding {
                // Our half ended already, or a second ending (the close grace ran out): a reset.
                self.reset()
            } else {
                // `last` ends our half of the stream; the stream closes when the client ends its
                // half (its own close frame), or is reset when the close grace runs out.
                self.endStream(with: last)
            }
        case .reset:
            self.isEnding = true
            self.reset()
        }
    }

    func partnerBecameWritable() {
        guard !self.isClosed else { return }
        self.wire.consumeTaken()
    }

    var partnerIsWritable: Bool { !self.isClosed && self.wire.canTake }

    /// A last DATA frame carrying `bytes` and END_STREAM.
    private func endStream(with bytes: ByteBuffer) {
        self.sentEnd = true
        self.wire.session.submitData(stream: self.wire.id, bytes, endStream: true)
        self.wire.outputPending()
    }
}
