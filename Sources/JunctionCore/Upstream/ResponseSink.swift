import NIOHTTP1

/// What an `UpstreamConnection` reports to the request it serves, on their shared event loop. The
/// request attaches itself when it takes the connection and detaches before it lets go of it (to
/// the pool, to a tunnel, or closed).
protocol ResponseSink: AnyObject {
    /// A part of the backend's response.
    func upstreamReceived(_ part: HTTPClientResponsePart)
    /// A read burst from the backend ended: what was relayed may go out.
    func upstreamReadComplete()
    /// The connection takes more request bytes again.
    func upstreamWritable()
    /// The connection closed (`error` nil) or failed; it has detached the sink already.
    func upstreamClosed(error: Error?)
}
