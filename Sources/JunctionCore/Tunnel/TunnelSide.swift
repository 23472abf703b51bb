import NIOCore

/// What every side of a tunnel does alike, whatever its wire (a socket's bytes or an HTTP/2
/// stream's DATA frames): the link to its partner and the tunnel, backpressure (a read is held
/// while the partner cannot write and resumed when it can), and close propagation. The glue
/// handlers keep one each and only translate their wire.
///
/// A class, not a struct: its calls reach the partner and the channel, which can call back into
/// this side at once; a struct inside the handler would be under exclusive access meanwhile.
final class TunnelSide {
    /// The other side; nil once this side is removed.
    var partner: (any TunnelEndpoint)?
    /// The tunnel both sides belong to (idle timeout, counters, teardown); nil once removed.
    private(set) var tunnel: Tunnel?
    /// This side's channel context, while the handler is in the pipeline.
    var context: ChannelHandlerContext?
    /// Whether this is the client's side (the close reason says who closed first).
    let isClientSide: Bool
    /// Set once the tunnel ends this side on purpose (`TunnelEnding`): the partner's bytes, EOF and
    /// close no longer reach the channel, which closes when the ending is done.
    private(set) var isEnding = false
    private var readPending = false

    init(tunnel: Tunnel, isClientSide: Bool) {
        self.tunnel = tunnel
        self.isClientSide = isClientSide
    }

    /// The handler left its pipeline: forget everything.
    func removed() {
        self.context = nil
        self.partner = nil
        self.tunnel = nil
    }

    /// A read burst ended: the tunnel is alive, and the partner sends what it was given.
    func readBurstEnded() {
        self.tunnel?.touch()
        self.partner?.partnerFlush()
    }

    /// This side's channel closed: tell the tunnel (first, so it knows which side closed first),
    /// then close the partner.
    func closed() {
        self.tunnel?.sideClosed(fromClient: self.isClientSide)
        self.partner?.partnerCloseFull()
    }

    /// An error on this side: close both.
    func failed(context: ChannelHandlerContext) {
        self.partner?.partnerCloseFull()
        context.close(promise: nil)
    }

    /// This side can write again: the partner may read again.
    func writabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable {
            self.partner?.partnerBecameWritable()
        }
    }

    /// A read is wanted: go ahead while the partner can take bytes, else hold it.
    func read(context: ChannelHandlerContext) {
        if let partner = self.partner, partner.partnerIsWritable {
            context.read()
        } else {
            self.readPending = true
        }
    }

    /// The partner can take bytes again: the held read goes out.
    func partnerBecameWritable() {
        if self.readPending, let context = self.context {
            self.readPending = false
            context.read()
        }
    }

    /// Whether this side's channel can take more bytes now.
    var isWritable: Bool { self.context?.channel.isWritable ?? false }

    /// Closes this side's channel (the partner's close, an idle timeout, the shutdown grace). On an
    /// HTTP/2 stream that has not ended, that is RST_STREAM (CANCEL). Not while an ending is under
    /// way: it closes the channel itself.
    func close() {
        guard !self.isEnding else { return }
        self.context?.close(promise: nil)
    }

    /// Starts ending this side on purpose; returns its context, or nil when there is nothing left
    /// to end. A second ending (the close frame's grace ran out) is always a reset.
    func beginEnding() -> ChannelHandlerContext? {
        self.isEnding = true
        return self.context
    }
}

/// A glue handler built on a `TunnelSide`: the channel events and the partner's calls that are the
/// same whatever the wire. A handler adds only how bytes are read and written on its channel.
protocol TunnelSideHandler: TunnelEndpoint, ChannelDuplexHandler {
    var side: TunnelSide { get }
}

extension TunnelSideHandler {
    func channelReadComplete(context: ChannelHandlerContext) {
        self.side.readBurstEnded()
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.side.closed()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        self.side.failed(context: context)
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        self.side.writabilityChanged(context: context)
    }

    func read(context: ChannelHandlerContext) {
        self.side.read(context: context)
    }

    /// The other side.
    var partner: (any TunnelEndpoint)? {
        get { self.side.partner }
        set { self.side.partner = newValue }
    }

    func partnerCloseFull() {
        self.side.close()
    }

    func partnerBecameWritable() {
        self.side.partnerBecameWritable()
    }

    var partnerIsWritable: Bool { self.side.isWritable }

    func closeChannel() {
        self.side.close()
    }
}
