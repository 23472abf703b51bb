#if canImport(Glibc)
    import Glibc
#endif

/// The new process's wait for the old one to stop accepting (`JUNCTION_GO_FD`), so the two never
/// accept on one socket at once: the old process writes `go` once its sockets are closed, or
/// closes the pipe without a word when it calls the hand-over off (it then stops this process).
enum HandoverGo {
    /// What the wait found.
    enum Outcome: Equatable, Sendable {
        /// Accept now; why, for the log.
        case accept(String)
        /// The old process called the hand-over off.
        case stop
    }

    /// How long the old process has to close its sockets before this one accepts anyway.
    static let timeout: Int32 = 10_000

    /// Blocks until the pipe says go, ends, or the timeout passes; closes the pipe.
    static func wait(on descriptor: CInt, previousPID: Int32) -> Outcome {
        defer { close(descriptor) }
        var received: [UInt8] = []
        var waited: Int32 = 0
        while waited < Self.timeout {
            var entry = pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)
            guard poll(&entry, 1, 100) > 0 else {
                waited += 100
                continue
            }
            var buffer = [UInt8](repeating: 0, count: 16)
            let count = read(descriptor, &buffer, buffer.count)
            if count > 0 {
                received += buffer[0..<count]
                if received.contains(UInt8(ascii: "\n")) { return .accept("the old process stopped accepting") }
                continue
            }
            if count < 0 && errno == EINTR { continue }
            // The pipe ended without a word: called off, unless the old process is simply gone
            // (this one was re-parented), and then nobody else accepts.
            return getppid() == previousPID ? .stop : .accept("the old process is gone")
        }
        return .accept("the old process did not answer within 10 s")
    }
}
