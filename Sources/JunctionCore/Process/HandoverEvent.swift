/// The pipeline event a listener fires into each of its connections when an upgrade handed its
/// socket to the new process: like NIO's `ChannelShouldQuiesceEvent`, requests in flight finish
/// (HTTP/1.1 `Connection: close`, HTTP/2 GOAWAY) and a connection still in its setup or waiting
/// for its first request is served first, but WebSocket tunnels stay open: the `TunnelDrainer`
/// closes them at each pool's `drain_rate`, so their clients come back to the new process as a
/// trickle.
struct HandoverEvent: Sendable {}
