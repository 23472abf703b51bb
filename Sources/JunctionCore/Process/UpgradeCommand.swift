#if canImport(Glibc)
    import Glibc
#endif

/// What an upgrade starts: the executable at the path this process was started from (resolved at
/// start, so a package upgrade that renames a new file over it brings the new version) and this
/// process's arguments.
public struct UpgradeCommand: Sendable, Equatable {
    /// The absolute path of the executable.
    public var executable: String
    /// The arguments, argv[0] included.
    public var arguments: [String]

    public init(executable: String, arguments: [String]) {
        self.executable = executable
        self.arguments = arguments
    }

    /// This process's: `/proc/self/exe` read now (before anything could be renamed over it), and
    /// `arguments`. Nil when the path cannot be read.
    public static func current(arguments: [String]) -> UpgradeCommand? {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let count = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        guard count > 0 else { return nil }
        var path = String(decoding: buffer[0..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        // Already replaced before this ran: the name is still where the new file is.
        let deleted = " (deleted)"
        if path.hasSuffix(deleted) { path.removeLast(deleted.count) }
        return UpgradeCommand(executable: path, arguments: arguments)
    }
}
