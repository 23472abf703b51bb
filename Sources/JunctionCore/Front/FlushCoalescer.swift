import NIOCore

/// Sits under the HTTP/2 connection handler and turns the flushes of one event-loop tick into one.
///
/// Every stream that finishes a response flushes its connection; with many streams answered in the
/// same tick that is a TLS record and a `write(2)` each. Deferring the flush to the end of the tick
/// sends them together, without adding latency beyond the current tick.
final class FlushCoalescer: ChannelOutboundHandler {
    typealias OutboundIn = Any

    private var flushScheduled = false

    func flush(context: ChannelHandlerContext) {
        guard !self.flushScheduled else { return }
        self.flushScheduled = true
        context.eventLoop.assumeIsolated().execute {
            self.flushScheduled = false
            context.flush()
        }
    }
}
