import NIOCore

/// How large the buffers are that sockets read into, on client and upstream connections alike.
///
/// NIO keeps each channel's read buffer for its next read, and the buffer never shrinks: what it
/// starts at is what every idle connection holds (NIO's default of 2 KiB was 4 KiB of the ~10 KiB
/// an idle WebSocket cost, client side plus upstream side). Reads start at 256 bytes and grow
/// with what arrives (a request head of a few KiB takes a few more reads once; an upload grows
/// the buffer to 64 KiB within a few reads). The sizing is NIO's adaptive one, in a struct small
/// enough to sit inside the channel (`CompactRecvByteBufferAllocator`).
enum ReadBuffers {
    /// Client and upstream connections, from accept or connect.
    static let connection = CompactRecvByteBufferAllocator(minimum: 64, initial: 256, maximum: 65536)

    /// A WebSocket tunnel's two sockets, from the splice on: DDP messages are small and a tunnel
    /// lives for hours, so one large message must not leave 64 KiB behind on each side for the
    /// rest of its life; 16 KiB still moves a large message in a few reads.
    static let tunnel = CompactRecvByteBufferAllocator(minimum: 64, initial: 256, maximum: 16384)

    /// Switches a spliced socket to tunnel buffers, on its event loop. One read per wake-up too:
    /// NIO keeps up to one buffer per read of a wake-up (a buffer still queued on the other side
    /// cannot be reused, so a large message left four behind on each side).
    static func useTunnelBuffers(on channel: Channel) {
        guard let options = channel.syncOptions else { return }
        _ = try? options.setOption(ChannelOptions.maxMessagesPerRead, value: 1)
        _ = try? options.setOption(ChannelOptions.recvAllocator, value: Self.tunnel)
    }
}
