import NIOCore

#if canImport(Glibc)
    import Glibc
#endif

/// A listening TCP socket as a descriptor Junction holds, not one NIO made: so an upgrade can hand
/// it to the next process, and that process can take it over (`ServerBootstrap.withBoundSocket`).
/// Every descriptor here is close-on-exec; an upgrade clears the flag only on the copies it hands
/// over.
enum ListeningSocket {
    /// The listen backlog of every socket (NIO's `withBoundSocket` listens with 128; this is said
    /// again once the channel exists).
    static let backlog: CInt = 4096

    /// A failure, as one line.
    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    /// A new socket bound to `address` and listening.
    static func bind(_ address: HostPort) throws -> CInt {
        let socketAddress: SocketAddress
        do {
            socketAddress = try SocketAddress.makeAddressResolvingHost(address.host, port: address.port)
        } catch {
            throw Failure(description: "\(error)")
        }
        let descriptor = socket(
            socketAddress.protocol.rawValue,
            CInt(SOCK_STREAM.rawValue) | CInt(SOCK_CLOEXEC.rawValue),
            0
        )
        guard descriptor >= 0 else { throw Failure(description: "socket: \(Self.lastError())") }
        var on: CInt = 1
        guard setsockopt(descriptor, SOL_SOCKET, SO_REUSEADDR, &on, socklen_t(MemoryLayout<CInt>.size)) == 0 else {
            let error = Self.lastError()
            close(descriptor)
            throw Failure(description: "SO_REUSEADDR: \(error)")
        }
        let bound = socketAddress.withSockAddr { Glibc.bind(descriptor, $0, socklen_t($1)) }
        guard bound == 0 else {
            let error = Self.lastError()
            close(descriptor)
            throw Failure(description: error)
        }
        guard listen(descriptor, Self.backlog) == 0 else {
            let error = Self.lastError()
            close(descriptor)
            throw Failure(description: "listen: \(error)")
        }
        return descriptor
    }

    /// The socket for `address`: `inherited` (checked and made close-on-exec) when an upgrade handed
    /// one over, else a new one bound there. An inherited socket that fails the check is closed.
    static func open(_ address: HostPort, inherited: CInt?) throws -> CInt {
        guard let inherited else { return try self.bind(address) }
        do {
            try self.adopt(inherited)
        } catch {
            close(inherited)
            throw error
        }
        return inherited
    }

    /// Checks that an inherited `descriptor` is a listening stream socket, and makes it
    /// close-on-exec (it came without the flag).
    static func adopt(_ descriptor: CInt) throws {
        var listening: CInt = 0
        var length = socklen_t(MemoryLayout<CInt>.size)
        guard getsockopt(descriptor, SOL_SOCKET, SO_ACCEPTCONN, &listening, &length) == 0 else {
            throw Failure(description: "descriptor \(descriptor) is not a socket (\(Self.lastError()))")
        }
        guard listening == 1 else {
            throw Failure(description: "descriptor \(descriptor) is a socket that is not listening")
        }
        _ = fcntl(descriptor, F_SETFD, FD_CLOEXEC)
    }

    /// Listens again with Junction's backlog (after NIO's own `listen`).
    static func relisten(_ descriptor: CInt) {
        _ = listen(descriptor, Self.backlog)
    }

    /// A close-on-exec copy of `descriptor` numbered `minimum` or above.
    static func duplicate(_ descriptor: CInt, minimum: CInt) throws -> CInt {
        let copy = fcntl(descriptor, F_DUPFD_CLOEXEC, minimum)
        guard copy >= 0 else {
            throw Failure(description: "cannot duplicate descriptor \(descriptor): \(Self.lastError())")
        }
        return copy
    }

    static func lastError() -> String {
        let code = errno
        return "\(String(cString: strerror(code))) (errno \(code))"
    }
}
