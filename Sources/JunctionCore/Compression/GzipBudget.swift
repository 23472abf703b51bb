/// How many responses one event loop compresses at once: each holds a zlib stream, so a burst of
/// long compressed responses must not grow memory without bound. Past the limit responses go
/// uncompressed. Used on its event loop only.
final class GzipBudget {
    /// 256 streams of about 130 KiB: at most about 33 MiB per event loop.
    static let limit = 256

    private(set) var inUse = 0

    func acquire() -> Bool {
        guard self.inUse < Self.limit else { return false }
        self.inUse += 1
        return true
    }

    func release() {
        self.inUse -= 1
    }
}
