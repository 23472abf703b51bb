#if canImport(Glibc)
    import Glibc
#endif

/// Which process is serving: its pid, its release and when it started, as `/status` shows them
/// (`process`), so an upgrade (a new pid, a later start) can be followed from outside. Taken once,
/// as the process starts to serve, and never changed.
public struct ProcessIdentity: Sendable, Equatable {
    /// The process id.
    public let pid: Int32
    /// The release (`JunctionVersion.current`).
    public let version: String
    /// When the process started, in whole seconds since the epoch.
    public let startedAt: Int

    public init(pid: Int32, version: String, startedAt: Int) {
        self.pid = pid
        self.version = version
        self.startedAt = startedAt
    }

    /// This process, starting now: call it once, at start (`Junction.run`).
    public init() {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        self.init(pid: getpid(), version: JunctionVersion.current, startedAt: Int(now.tv_sec))
    }
}
