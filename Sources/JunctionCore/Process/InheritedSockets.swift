import struct NIOConcurrencyHelpers.NIOLockedValueBox

#if canImport(Glibc)
    import Glibc
#endif

/// The listening sockets a new process was handed by the one it replaces, until each is taken by
/// the listener configured for it; what no listener takes is closed once the process serves (the
/// config it read no longer has that listener).
final class InheritedSockets: Sendable {
    private let remaining: NIOLockedValueBox<[Handover.Socket]>

    init(_ sockets: [Handover.Socket]) {
        self.remaining = NIOLockedValueBox(sockets)
    }

    /// The socket of the listener `name` at `address` (a port-0 address only by the same name:
    /// each such listener had its own port), taken out of the list.
    func take(listener name: String, address: HostPort) -> CInt? {
        self.take { socket in
            socket.kind == .listener && socket.address == address.description
                && (address.port != 0 || socket.name == name)
        }
    }

    /// The admin listener's socket when it was bound at `address`.
    func takeAdmin(address: HostPort) -> CInt? {
        self.take { $0.kind == .admin && $0.address == address.description }
    }

    /// Closes what nobody took; returns the entries closed.
    @discardableResult
    func closeRest() -> [Handover.Socket] {
        let rest = self.remaining.withLockedValue { remaining in
            defer { remaining = [] }
            return remaining
        }
        for socket in rest { close(socket.descriptor) }
        return rest
    }

    private func take(where matches: (Handover.Socket) -> Bool) -> CInt? {
        self.remaining.withLockedValue { remaining in
            guard let index = remaining.firstIndex(where: matches) else { return nil }
            return remaining.remove(at: index).descriptor
        }
    }
}
