#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif
#if canImport(Glibc)
    import Glibc
#endif

/// A lock file in the shared storage: the instance that creates it orders, the others wait and
/// load what it stores. The holder refreshes the time in it; a lock whose time is older than
/// `expiry` is left by a holder that crashed and is taken over, so it blocks nobody for long.
public struct StorageLock: Sendable {
    /// What the file says.
    struct Content: Codable {
        var pid: Int32
        var host: String
        var updated: Double
        /// Which holder wrote it (nil in a lock written by hand).
        var token: String?
    }

    /// How long a lock lives without a refresh.
    public static let defaultExpiry: TimeInterval = 60
    /// How often the holder refreshes it.
    public static let refreshInterval: TimeInterval = 10

    public let path: String
    let storage: ACMEStorage
    let expiry: TimeInterval
    /// This holder's mark in the file: a holder that stalled past the expiry sees its lock was
    /// taken over and neither refreshes nor removes the new holder's.
    let token = Base64URL.encode((0..<12).map { _ in UInt8.random(in: 0...255) })

    public init(storage: ACMEStorage, path: String, expiry: TimeInterval = Self.defaultExpiry) {
        self.storage = storage
        self.path = path
        self.expiry = expiry
    }

    /// Takes the lock if nobody holds it (or its holder stopped refreshing it); false when
    /// another holder has it.
    public func tryAcquire(now: Date = Date()) throws -> Bool {
        if let slash = self.path.lastIndex(of: "/") { try self.storage.makeDirectory(String(self.path[..<slash])) }
        for _ in 0..<2 {
            let descriptor = open(self.path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
            if descriptor >= 0 {
                close(descriptor)
                return try self.refresh(now: now)
            }
            guard errno == EEXIST else {
                throw ACMEStorage.Problem(
                    description: "cannot create \(self.path): \(String(cString: strerror(errno)))"
                )
            }
            guard self.isStale(now: now) else { return false }
            // The holder is gone: remove its lock and race the others for a new one (O_EXCL
            // lets exactly one win).
            unlink(self.path)
        }
        return false
    }

    /// Writes the current time into the lock (aside and renamed, like every file); false, and
    /// nothing written, when another holder has taken the lock over.
    @discardableResult
    public func refresh(now: Date = Date()) throws -> Bool {
        guard self.isOwned() else { return false }
        var host = [CChar](repeating: 0, count: 256)
        gethostname(&host, host.count)
        let content = Content(
            pid: getpid(),
            host: String(decoding: host.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self),
            updated: now.timeIntervalSince1970,
            token: self.token
        )
        try self.storage.write(Array(try JSONEncoder().encode(content)), to: self.path)
        return true
    }

    /// Whether the lock file is this holder's: its token, or empty (just created by O_EXCL,
    /// before the first write).
    public func isOwned() -> Bool {
        guard let bytes = try? self.storage.read(self.path) else { return false }
        guard let content = try? JSONDecoder().decode(Content.self, from: Data(bytes)) else { return bytes.isEmpty }
        return content.token == self.token
    }

    /// Whether a lock is there and fresh: someone else (or this process) is ordering.
    public func isHeld(now: Date = Date()) -> Bool {
        guard (try? self.storage.read(self.path)) ?? nil != nil else { return false }
        return !self.isStale(now: now)
    }

    /// A lock older than `expiry`; one that cannot be read (being written) is not stale.
    func isStale(now: Date) -> Bool {
        guard let bytes = try? self.storage.read(self.path) else { return false }
        guard let content = try? JSONDecoder().decode(Content.self, from: Data(bytes)) else {
            // Empty: just created by its holder, which writes the time right after.
            var info = stat()
            guard stat(self.path, &info) == 0 else { return false }
            return now.timeIntervalSince1970 - Double(info.st_mtim.tv_sec) > self.expiry
        }
        return now.timeIntervalSince1970 - content.updated > self.expiry
    }

    /// Removes the lock, unless another holder took it over meanwhile.
    public func release() {
        if self.isOwned() { unlink(self.path) }
    }
}
