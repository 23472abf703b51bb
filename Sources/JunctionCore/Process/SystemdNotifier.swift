import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// systemd's notify protocol (sd_notify(3)): one datagram of `KEY=value` lines to the AF_UNIX socket
/// `NOTIFY_SOCKET` names (a path, or an abstract name written with a leading `@`). Without
/// `NOTIFY_SOCKET` every call does nothing.
///
/// Control plane only; a send never blocks (`MSG_DONTWAIT`): a datagram systemd cannot take is
/// dropped, as libsystemd's own sd_notify would fail it.
public final class SystemdNotifier: Sendable {
    /// The socket's address, as `sockaddr_un` bytes and their length; nil: not under systemd.
    private let address: [UInt8]?
    /// Set once this process handed over to another: from then on the new process is systemd's
    /// main one, and nothing this process says (`STOPPING=1` on its way out) may reach systemd.
    private let silenced = Atomic<Bool>(false)

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
        guard var address = self.address, !self.silenced.load(ordering: .relaxed) else { return false }
        let descriptor = socket(AF_UNIX, CInt(SOCK_DGRAM.rawValue) | CInt(SOCK_CLOEXEC.rawValue), 0)
        guard descriptor >= 0 else { return false }
        defer { close(descriptor) }
        var message = Array(state.utf8)
        let sent = address.withUnsafeMutableBytes { addressBytes in
            message.withUnsafeMutableBytes { messageBytes in
                sendto(
                    descriptor,
                    messageBytes.baseAddress,
                    messageBytes.count,
                    CInt(MSG_NOSIGNAL) | CInt(MSG_DONTWAIT),
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
