import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// systemd's notify protocol (sd_notify(3)): one datagram of `KEY=value` lines to the AF_UNIX socket
/// `NOTIFY_SOCKET` names (a path, or an abstract name written with a leading `@`). Without
/// `NOTIFY_SOCKET` every call does nothing.
///
/// Control plane only. A plain `notify` never blocks (`MSG_DONTWAIT`: a datagram systemd cannot
/// take now is dropped and the call says so); `notifyReliably` waits a little and tries again, for
/// the one message that must arrive (`MAINPID` on an upgrade). Reload messages go out only once the
/// process said `READY=1`: a SIGHUP during the start is not a reload systemd should hear of.
public final class SystemdNotifier: Sendable {
    /// The socket's address, as `sockaddr_un` bytes and their length; nil: not under systemd.
    private let address: [UInt8]?
    /// Set once this process handed over to another: from then on the new process is systemd's
    /// main one, and nothing this process says (`STOPPING=1` on its way out) may reach systemd.
    private let silenced = Atomic<Bool>(false)
    /// Set once `READY=1` went out.
    private let announced = Atomic<Bool>(false)

    /// Reads `NOTIFY_SOCKET` from `environment`.
    public init(environment: [String: String]) {
        self.address = environment["NOTIFY_SOCKET"].flatMap(Self.socketAddress)
    }

    /// Reads `NOTIFY_SOCKET` from this process's environment.
    public convenience init() {
        self.init(environment: getenv("NOTIFY_SOCKET").map { ["NOTIFY_SOCKET": String(cString: $0)] } ?? [:])
    }

    /// Whether systemd listens.
    public var isActive: Bool { self.address != nil }

    /// Sends `state` (lines such as `READY=1`); returns whether it went out.
    @discardableResult
    public func notify(_ state: String) -> Bool {
        let sent = self.send(state, blocking: false)
        if sent && state.split(separator: "\n").contains("READY=1") {
            self.announced.store(true, ordering: .relaxed)
        }
        return sent
    }

    /// `RELOADING=1` (with `MONOTONIC_USEC`) before a reload, once the process said it is ready.
    func reloading() {
        if self.announced.load(ordering: .relaxed) { self.notify(Self.reloading) }
    }

    /// `READY=1` after a reload (applied or refused), once the process said it is ready.
    func reloaded() {
        if self.announced.load(ordering: .relaxed) { self.notify("READY=1") }
    }

    /// Sends `state`, waiting up to a second for room and trying three times; true when it went out
    /// or nobody listens (not under systemd).
    func notifyReliably(_ state: String) -> Bool {
        guard self.address != nil else { return true }
        for _ in 0..<3 where self.send(state, blocking: true) {
            return true
        }
        return false
    }

    private func send(_ state: String, blocking: Bool) -> Bool {
        guard var address = self.address, !self.silenced.load(ordering: .relaxed) else { return false }
        let descriptor = socket(AF_UNIX, CInt(SOCK_DGRAM.rawValue) | CInt(SOCK_CLOEXEC.rawValue), 0)
        guard descriptor >= 0 else { return false }
        defer { close(descriptor) }
        if blocking {
            var timeout = timeval(tv_sec: 1, tv_usec: 0)
            _ = setsockopt(descriptor, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        }
        var message = Array(state.utf8)
        let sent = address.withUnsafeMutableBytes { addressBytes in
            message.withUnsafeMutableBytes { messageBytes in
                sendto(
                    descriptor,
                    messageBytes.baseAddress,
                    messageBytes.count,
                    CInt(MSG_NOSIGNAL) | (blocking ? 0 : CInt(MSG_DONTWAIT)),
                    addressBytes.baseAddress!.assumingMemoryBound(to: sockaddr.self),
                    socklen_t(addressBytes.count)
                )
            }
        }
        return sent == message.count
    }

    /// From now on nothing is sent (this process handed over).
    public func silence() {
        self.silenced.store(true, ordering: .relaxed)
    }

    /// `RELOADING=1` with the monotonic time systemd wants beside it.
    static var reloading: String {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        return "RELOADING=1\nMONOTONIC_USEC=\(Int64(now.tv_sec) * 1_000_000 + Int64(now.tv_nsec) / 1000)"
    }

    /// `sockaddr_un` bytes for `path` (`@name`: abstract); nil when it does not fit.
    static func socketAddress(_ path: String) -> [UInt8]? {
        var bytes = Array(path.utf8)
        guard !bytes.isEmpty else { return nil }
        if bytes[0] == UInt8(ascii: "@") { bytes[0] = 0 }
        let pathCapacity = MemoryLayout.size(ofValue: sockaddr_un().sun_path)
        guard bytes.count < pathCapacity else { return nil }
        let family = withUnsafeBytes(of: sa_family_t(AF_UNIX)) { Array($0) }
        // An abstract name is exactly its bytes; a path is NUL-terminated.
        return family + bytes + (bytes[0] == 0 ? [] : [0])
    }
}
