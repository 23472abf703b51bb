import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// A fresh directory under /tmp for a test that writes files, removed with everything in it: the
/// storage tests look at real permissions and renames, which an in-memory fake would not have.
struct TemporaryDirectory {
    let path: String

    init() throws {
        var template = Array("/tmp/junction-test-XXXXXX".utf8CString)
        guard let made = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else {
            throw POSIXError(.init(rawValue: errno) ?? .EIO)
        }
        self.path = String(cString: made)
    }

    func remove() {
        try? FileManager.default.removeItem(atPath: self.path)
    }

    /// The names in `directory` (relative to this one), sorted; empty when it does not exist.
    func names(in directory: String = "") -> [String] {
        let full = directory.isEmpty ? self.path : "\(self.path)/\(directory)"
        return ((try? FileManager.default.contentsOfDirectory(atPath: full)) ?? []).sorted()
    }

    /// The permission bits of `path` (`stat`, so what another process sees), nil when it is missing.
    static func permissions(_ path: String) -> mode_t? {
        var info = stat()
        guard stat(path, &info) == 0 else { return nil }
        return info.st_mode & 0o7777
    }
}
