import Foundation
import Testing

@testable import JunctionACME

#if canImport(Glibc)
    import Glibc
#endif

/// The lock file instances sharing a storage order under: one holder at a time, a refreshed time,
/// and a lock left by a crashed holder taken over once it is older than the expiry.
@Suite("ACME storage lock")
struct StorageLockTests {
    static let now = Date(timeIntervalSince1970: 1_780_000_000)

    static func lock(in temporary: TemporaryDirectory) -> StorageLock {
        let storage = ACMEStorage(root: temporary.path)
        return StorageLock(storage: storage, path: storage.lockPath("chat.example.com"), expiry: 60)
    }

    @Test("One holder: a second tryAcquire fails while the lock is fresh; release lets the next one in")
    func exclusive() throws {
        let temporary = try TemporaryDirectory()
        defer { temporary.remove() }
        let lock = Self.lock(in: temporary)
        #expect(!lock.isHeld(now: Self.now))
        #expect(try lock.tryAcquire(now: Self.now))
        #expect(lock.isHeld(now: Self.now))
        #expect(TemporaryDirectory.permissions(lock.path) == 0o600)
        #expect(TemporaryDirectory.permissions("\(temporary.path)/locks") == 0o700)

        let other = Self.lock(in: temporary)
        #expect(try !other.tryAcquire(now: Self.now + 30), "another instance, within the expiry")
        #expect(try !lock.tryAcquire(now: Self.now), "not reentrant either: a second order would run")

        // What the holder wrote: its pid and the time.
        let content = try JSONDecoder().decode(
            StorageLock.Content.self,
            from: Data(try #require(try lock.storage.read(lock.path)))
        )
        #expect(content.pid == getpid())
        #expect(content.updated == Self.now.timeIntervalSince1970)

        lock.release()
        #expect(access(lock.path, F_OK) != 0, "the file is gone")
        #expect(!lock.isHeld(now: Self.now))
        #expect(try other.tryAcquire(now: Self.now + 31))
    }

    @Test("A holder that stalled past the expiry neither refreshes nor removes the lock taken over from it")
    func stalledHolder() throws {
        let temporary = try TemporaryDirectory()
        defer { temporary.remove() }
        let stalled = Self.lock(in: temporary)
        let next = Self.lock(in: temporary)
        #expect(try stalled.tryAcquire(now: Self.now))
        #expect(try next.tryAcquire(now: Self.now + 61), "stale: taken over")
        #expect(try !stalled.refresh(now: Self.now + 62), "the stalled holder learns it lost the lock")
        stalled.release()
        #expect(next.isHeld(now: Self.now + 62), "and leaves the new holder's lock alone")
        let content = try JSONDecoder().decode(
            StorageLock.Content.self,
            from: Data(try #require(try next.storage.read(next.path)))
        )
        #expect(content.token == next.token && content.updated == (Self.now + 61).timeIntervalSince1970)
        #expect(try next.refresh(now: Self.now + 70))
        next.release()
        #expect(access(next.path, F_OK) != 0)
    }

    @Test("refresh keeps the lock fresh past the expiry counted from acquiring it")
    func refresh() throws {
        let temporary = try TemporaryDirectory()
        defer { temporary.remove() }
        let lock = Self.lock(in: temporary)
        #expect(try lock.tryAcquire(now: Self.now))
        #expect(!lock.isHeld(now: Self.now + 61), "not refreshed: stale after 60 s")
        try lock.refresh(now: Self.now + 50)
        #expect(lock.isHeld(now: Self.now + 61))
        #expect(try !Self.lock(in: temporary).tryAcquire(now: Self.now + 109))
        #expect(temporary.names(in: "locks") == ["chat.example.com.lock"], "refreshed by rename, nothing left beside")
    }

    @Test(
        "A lock last refreshed longer ago than the expiry is taken over; one within it is not",
        arguments: [(61.0, true), (3600.0, true), (59.0, false), (60.0, false), (-10.0, false)]
    )
    func staleTakeover(age: Double, takenOver: Bool) throws {
        let temporary = try TemporaryDirectory()
        defer { temporary.remove() }
        let lock = Self.lock(in: temporary)
        let old = Self.now.timeIntervalSince1970 - age
        try lock.storage.write(Array(#"{"pid":1,"host":"x","updated":\#(old)}"#.utf8), to: lock.path)
        #expect(lock.isHeld(now: Self.now) == !takenOver)
        #expect(try lock.tryAcquire(now: Self.now) == takenOver)
        let content = try JSONDecoder().decode(
            StorageLock.Content.self,
            from: Data(try #require(try lock.storage.read(lock.path)))
        )
        #expect(content.pid == (takenOver ? getpid() : 1), "the new holder's lock, or the old one untouched")
        #expect(content.updated == (takenOver ? Self.now.timeIntervalSince1970 : old))
    }

    @Test("An empty lock file (its holder is writing the time) is judged by its modification time")
    func emptyLock() throws {
        let temporary = try TemporaryDirectory()
        defer { temporary.remove() }
        let lock = Self.lock(in: temporary)
        try lock.storage.write([], to: lock.path)
        let modified = time(nil)
        let recent = Date(timeIntervalSince1970: Double(modified) + 5)
        #expect(lock.isHeld(now: recent))
        #expect(try !lock.tryAcquire(now: recent))
        let later = Date(timeIntervalSince1970: Double(modified) + 120)
        #expect(!lock.isHeld(now: later))
        #expect(try lock.tryAcquire(now: later))
    }
}
