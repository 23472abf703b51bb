#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif
#if canImport(Glibc)
    import Glibc
#endif

/// The `storage` directory, in the layout the contract gives and certbot users know:
///
///     <storage>/accounts/<directory>/account.key        the account key per ACME directory
///     <storage>/certificates/<first domain>/fullchain.pem and privkey.pem
///     <storage>/challenges/<type>-<name>.json            challenges pending validation
///     <storage>/locks/<first domain>.lock                who is ordering now
///
/// Directories are 0700 and files 0600. Every file is written aside and renamed over its place,
/// so no reader, in this process or another instance sharing the directory, sees half a file.
public struct ACMEStorage: Sendable {
    /// A problem with the directory: one line naming the path.
    public struct Problem: Error, CustomStringConvertible {
        public var description: String

        public init(description: String) {
            self.description = description
        }
    }

    public let root: String

    public init(root: String) {
        self.root = root
    }

    // MARK: layout

    /// The account key's path for the directory at `directoryURL`.
    public func accountKeyPath(directoryURL: String) -> String {
        "\(self.root)/accounts/\(Self.fileName(directoryURL))/account.key"
    }

    /// The directory holding the certificate whose first name is `domain`.
    public func certificateDirectory(_ domain: String) -> String {
        "\(self.root)/certificates/\(Self.fileName(domain))"
    }

    public func chainPath(_ domain: String) -> String { "\(self.certificateDirectory(domain))/fullchain.pem" }
    public func keyPath(_ domain: String) -> String { "\(self.certificateDirectory(domain))/privkey.pem" }
    /// Which directory issued the certificate beside it (a switch from a staging CA to a
    /// production one must not keep serving the staging certificate).
    public func originPath(_ domain: String) -> String { "\(self.certificateDirectory(domain))/directory" }
    public var challengeDirectory: String { "\(self.root)/challenges" }

    public func challengePath(_ challenge: PendingChallenge) -> String {
        let name = challenge.type == .http01 ? challenge.token : challenge.domain
        return "\(self.challengeDirectory)/\(challenge.type.rawValue)-\(Self.fileName(name)).json"
    }

    public func lockPath(_ domain: String) -> String { "\(self.root)/locks/\(Self.fileName(domain)).lock" }
    /// The back-off the instances sharing the storage keep together after a failed order.
    public func retryPath(_ domain: String) -> String { "\(self.root)/locks/\(Self.fileName(domain)).retry" }

    /// A path component from free text: letters, digits, `.`, `-` and `_` kept, the rest `_`.
    static func fileName(_ text: String) -> String {
        var name = ""
        for scalar in text.unicodeScalars {
            let keep =
                (scalar >= "a" && scalar <= "z") || (scalar >= "A" && scalar <= "Z")
                || (scalar >= "0" && scalar <= "9") || scalar == "." || scalar == "-" || scalar == "_"
            name.unicodeScalars.append(keep ? scalar : "_")
        }
        // Never `.` or `..`.
        return name.allSatisfy { $0 == "." } ? "_" + name : name
    }

    // MARK: files

    /// Creates `path` and its parents as 0700 directories where missing.
    public func makeDirectory(_ path: String) throws {
        var partial = path.hasPrefix("/") ? "" : "."
        for component in path.split(separator: "/") {
            partial += "/\(component)"
            if mkdir(partial, 0o700) != 0 && errno != EEXIST {
                throw Problem(description: "cannot create \(partial): \(String(cString: strerror(errno)))")
            }
        }
    }

    /// Checks that the storage can be created and written, without leaving anything but the
    /// (empty) directories behind.
    public func checkWritable() throws {
        try self.makeDirectory(self.root)
        let probe = "\(self.root)/.junction-check-\(getpid())"
        try self.write(Array("ok".utf8), to: probe)
        unlink(probe)
    }

    /// Writes `bytes` to `path` (0600) through a file beside it and a rename.
    public func write(_ bytes: [UInt8], to path: String) throws {
        if let slash = path.lastIndex(of: "/") { try self.makeDirectory(String(path[..<slash])) }
        let aside = "\(path).\(getpid()).\(UInt32.random(in: 0...UInt32.max)).tmp"
        let descriptor = open(aside, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else {
            throw Problem(description: "cannot write \(aside): \(String(cString: strerror(errno)))")
        }
        var offset = 0
        while offset < bytes.count {
            let written = bytes[offset...].withUnsafeBytes { Glibc.write(descriptor, $0.baseAddress, $0.count) }
            if written < 0 {
                if errno == EINTR { continue }
                let reason = String(cString: strerror(errno))
                close(descriptor)
                unlink(aside)
                throw Problem(description: "cannot write \(aside): \(reason)")
            }
            offset += written
        }
        fsync(descriptor)
        close(descriptor)
        guard rename(aside, path) == 0 else {
            let reason = String(cString: strerror(errno))
            unlink(aside)
            throw Problem(description: "cannot rename \(aside) to \(path): \(reason)")
        }
    }

    /// The whole file at `path`, nil when it does not exist.
    public func read(_ path: String) throws -> [UInt8]? {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else {
            if errno == ENOENT { return nil }
            throw Problem(description: "cannot read \(path): \(String(cString: strerror(errno)))")
        }
        defer { close(descriptor) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 16384)
        while true {
            let count = chunk.withUnsafeMutableBytes { Glibc.read(descriptor, $0.baseAddress, $0.count) }
            if count < 0 {
                if errno == EINTR { continue }
                throw Problem(description: "cannot read \(path): \(String(cString: strerror(errno)))")
            }
            if count == 0 { break }
            bytes += chunk[0..<count]
            // Nothing Junction stores comes near this: a bigger file is not ours.
            if bytes.count > 1 << 20 { throw Problem(description: "\(path) is larger than 1 MiB") }
        }
        return bytes
    }

    public func remove(_ path: String) {
        unlink(path)
    }

    // MARK: challenges

    /// Writes a pending challenge where the other instances look for it.
    public func store(_ challenge: PendingChallenge) throws {
        try self.write(Array(try JSONEncoder().encode(challenge)), to: self.challengePath(challenge))
    }

    /// Every pending challenge in the storage (unreadable entries skipped).
    public func pendingChallenges() -> [PendingChallenge] {
        guard let directory = opendir(self.challengeDirectory) else { return [] }
        defer { closedir(directory) }
        var found: [PendingChallenge] = []
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
            }
            guard name.hasSuffix(".json") else { continue }
            if let bytes = try? self.read("\(self.challengeDirectory)/\(name)"),
                let challenge = try? JSONDecoder().decode(PendingChallenge.self, from: Data(bytes))
            {
                found.append(challenge)
            }
        }
        return found
    }
}
