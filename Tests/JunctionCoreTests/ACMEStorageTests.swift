import Foundation
import Testing

@testable import JunctionACME

#if canImport(Glibc)
    import Glibc
#endif

/// The storage directory on a real file system: its layout, names made safe, permissions (0700
/// directories, 0600 files), writes that replace a file whole, and the pending challenges.
@Suite("ACME storage")
struct ACMEStorageTests {
    @Test("The layout the contract documents, under the root")
    func layout() {
        let storage = ACMEStorage(root: "/var/lib/junction/acme")
        #expect(
            storage.accountKeyPath(directoryURL: "https://acme-v02.api.letsencrypt.org/directory")
                == "/var/lib/junction/acme/accounts/https___acme-v02.api.letsencrypt.org_directory/account.key"
        )
        #expect(
            storage.certificateDirectory("chat.example.com") == "/var/lib/junction/acme/certificates/chat.example.com"
        )
        #expect(
            storage.chainPath("chat.example.com")
                == "/var/lib/junction/acme/certificates/chat.example.com/fullchain.pem"
        )
        #expect(
            storage.keyPath("chat.example.com") == "/var/lib/junction/acme/certificates/chat.example.com/privkey.pem"
        )
        #expect(storage.lockPath("chat.example.com") == "/var/lib/junction/acme/locks/chat.example.com.lock")
        let http = PendingChallenge(type: .http01, domain: "chat.example.com", token: "tok-EN_1", keyAuthorization: "k")
        let tls = PendingChallenge(
            type: .tlsALPN01,
            domain: "chat.example.com",
            token: "tok-EN_2",
            keyAuthorization: "k"
        )
        #expect(storage.challengePath(http) == "/var/lib/junction/acme/challenges/http-01-tok-EN_1.json", "by token")
        #expect(
            storage.challengePath(tls) == "/var/lib/junction/acme/challenges/tls-alpn-01-chat.example.com.json",
            "by name: one certificate per name at a time"
        )
    }

    @Test(
        "fileName keeps letters, digits, . - _ and makes everything else _; never . or ..",
        arguments: [
            ("chat.example.com", "chat.example.com"), ("Tok-en_9", "Tok-en_9"), ("a/b", "a_b"),
            ("../../etc/passwd", ".._.._etc_passwd"), ("..", "_.."), (".", "_."), ("", "_"), ("...", "_..."),
            ("a b\tc\nd", "a_b_c_d"), ("é", "_"), ("x\u{0}y", "x_y"), ("https://ca:14000/dir", "https___ca_14000_dir"),
        ]
    )
    func fileName(text: String, name: String) {
        let made = ACMEStorage.fileName(text)
        #expect(made == name)
        #expect(!made.contains("/") && made != "." && made != ".." && !made.isEmpty)
    }

    @Test("Files are 0600 and every directory made is 0700, however deep")
    func permissions() throws {
        let temporary = try TemporaryDirectory()
        defer { temporary.remove() }
        let storage = ACMEStorage(root: "\(temporary.path)/acme")
        let keyPath = storage.keyPath("chat.example.com")
        try storage.write(Array("secret".utf8), to: keyPath)
        #expect(TemporaryDirectory.permissions(keyPath) == 0o600)
        for directory in ["acme", "acme/certificates", "acme/certificates/chat.example.com"] {
            #expect(TemporaryDirectory.permissions("\(temporary.path)/\(directory)") == 0o700, "\(directory)")
        }
        try storage.store(PendingChallenge(type: .http01, domain: "a.example.com", token: "t", keyAuthorization: "k"))
        #expect(TemporaryDirectory.permissions(storage.challengeDirectory) == 0o700)
        #expect(TemporaryDirectory.permissions("\(storage.challengeDirectory)/http-01-t.json") == 0o600)
    }

    @Test("A write replaces the file whole and leaves nothing beside it")
    func atomicReplace() throws {
        let temporary = try TemporaryDirectory()
        defer { temporary.remove() }
        let storage = ACMEStorage(root: temporary.path)
        let path = storage.chainPath("chat.example.com")
        let long = [UInt8](repeating: 0x41, count: 100_000)
        try storage.write(long, to: path)
        #expect(try storage.read(path) == long)
        var before = stat()
        stat(path, &before)
        try storage.write(Array("short".utf8), to: path)
        #expect(try storage.read(path) == Array("short".utf8), "not the start of the old content")
        var after = stat()
        stat(path, &after)
        #expect(before.st_ino != after.st_ino, "a new file renamed over the old one, not rewritten in place")
        #expect(temporary.names(in: "certificates/chat.example.com") == ["fullchain.pem"], "no .tmp file left")
        #expect(TemporaryDirectory.permissions(path) == 0o600)
    }

    @Test("read: nil for a missing file, the bytes for an empty one, up to 1 MiB; more is refused")
    func read() throws {
        let temporary = try TemporaryDirectory()
        defer { temporary.remove() }
        let storage = ACMEStorage(root: temporary.path)
        #expect(try storage.read("\(temporary.path)/missing") == nil)
        try storage.write([], to: "\(temporary.path)/empty")
        #expect(try storage.read("\(temporary.path)/empty") == [])
        let mebibyte = (0..<(1 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        try storage.write(mebibyte, to: "\(temporary.path)/limit")
        #expect(try storage.read("\(temporary.path)/limit") == mebibyte, "across reads of 16 KiB")
        try storage.write(mebibyte + [0], to: "\(temporary.path)/over")
        #expect(throws: ACMEStorage.Problem.self) { try storage.read("\(temporary.path)/over") }
        #expect(throws: ACMEStorage.Problem.self) { try storage.read(temporary.path + "/empty/below") }
    }

    @Test("checkWritable makes the root and leaves nothing in it")
    func checkWritable() throws {
        let temporary = try TemporaryDirectory()
        defer { temporary.remove() }
        let storage = ACMEStorage(root: "\(temporary.path)/a/b")
        try storage.checkWritable()
        #expect(TemporaryDirectory.permissions(storage.root) == 0o700)
        #expect(temporary.names(in: "a/b").isEmpty)
        // A root below a file cannot be made: the problem names the path.
        try storage.write(Array("x".utf8), to: "\(temporary.path)/file")
        let below = ACMEStorage(root: "\(temporary.path)/file/acme")
        let problem = #expect(throws: ACMEStorage.Problem.self) { try below.checkWritable() }
        #expect(
            problem?.description.hasPrefix("cannot create \(temporary.path)/file/acme") == true,
            "\(String(describing: problem))"
        )
    }

    @Test("pendingChallenges returns what store wrote; other files and unreadable entries are skipped")
    func pendingChallenges() throws {
        let temporary = try TemporaryDirectory()
        defer { temporary.remove() }
        let storage = ACMEStorage(root: temporary.path)
        #expect(storage.pendingChallenges().isEmpty, "no directory yet")
        let stored = [
            PendingChallenge(type: .http01, domain: "chat.example.com", token: "tokA", keyAuthorization: "tokA.thumb"),
            PendingChallenge(type: .http01, domain: "chat.example.com", token: "tokB", keyAuthorization: "tokB.thumb"),
            PendingChallenge(
                type: .tlsALPN01,
                domain: "www.example.com",
                token: "tokC",
                keyAuthorization: "tokC.thumb"
            ),
        ]
        for challenge in stored { try storage.store(challenge) }
        try storage.write(Array("{not json".utf8), to: "\(storage.challengeDirectory)/http-01-broken.json")
        try storage.write(Array(#"{"type":"dns-01"}"#.utf8), to: "\(storage.challengeDirectory)/dns-01-x.json")
        let encoded = Array(try JSONEncoder().encode(stored[0]))
        try storage.write(encoded, to: "\(storage.challengeDirectory)/note.txt")
        // Another instance's write in progress: the aside file is not a challenge (yet).
        try storage.write(Array(encoded.prefix(9)), to: "\(storage.challengeDirectory)/http-01-tokA.json.77.12345.tmp")
        #expect(storage.pendingChallenges().sorted { $0.token < $1.token } == stored)

        // Storing the same challenge again replaces its file; removing it takes it out.
        try storage.store(stored[0])
        #expect(storage.pendingChallenges().count == 3)
        storage.remove(storage.challengePath(stored[1]))
        #expect(storage.pendingChallenges().sorted { $0.token < $1.token } == [stored[0], stored[2]])
    }
}
