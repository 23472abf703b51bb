import Foundation
import Testing

@testable import JunctionCore

#if canImport(Glibc)
    import Glibc
#endif

/// sd_notify on a real AF_UNIX datagram socket in a temporary directory: what goes out when, and
/// that nothing does once the process handed over.
@Suite("systemd notifier")
struct SystemdNotifierTests {
    /// A bound datagram socket standing in for systemd's.
    final class Listener {
        let directory: TemporaryDirectory
        let path: String
        let descriptor: CInt

        init() throws {
            self.directory = try TemporaryDirectory()
            self.path = self.directory.path + "/notify"
            self.descriptor = socket(AF_UNIX, CInt(SOCK_DGRAM.rawValue) | CInt(SOCK_CLOEXEC.rawValue), 0)
            let address = try #require(SystemdNotifier.socketAddress(self.path))
            let bound = address.withUnsafeBytes {
                bind(self.descriptor, $0.baseAddress!.assumingMemoryBound(to: sockaddr.self), socklen_t($0.count))
            }
            #expect(bound == 0)
        }

        deinit {
            close(self.descriptor)
            self.directory.remove()
        }

        /// The datagrams waiting now (none: empty).
        func received() -> [String] {
            var messages: [String] = []
            var buffer = [UInt8](repeating: 0, count: 4096)
            while true {
                let count = recv(self.descriptor, &buffer, buffer.count, CInt(MSG_DONTWAIT))
                guard count > 0 else { return messages }
                messages.append(String(decoding: buffer[0..<count], as: UTF8.self))
            }
        }
    }

    @Test("Reload messages only once READY=1 went out; MAINPID reliably; nothing once silenced")
    func sequence() throws {
        let systemd = try Listener()
        let notifier = SystemdNotifier(environment: ["NOTIFY_SOCKET": systemd.path])
        #expect(notifier.isActive)
        notifier.reloading()
        notifier.reloaded()
        #expect(systemd.received() == [], "a SIGHUP during the start is no reload to systemd")
        #expect(notifier.notify("READY=1"))
        notifier.reloading()
        notifier.reloaded()
        let messages = systemd.received()
        #expect(messages.count == 3 && messages[0] == "READY=1" && messages[2] == "READY=1", "\(messages)")
        #expect(messages.count == 3 && messages[1].hasPrefix("RELOADING=1\nMONOTONIC_USEC="), "\(messages)")
        #expect(notifier.notifyReliably("MAINPID=42\nREADY=1"))
        notifier.silence()
        #expect(!notifier.notify("STOPPING=1"))
        #expect(systemd.received() == ["MAINPID=42\nREADY=1"])
    }

    @Test("Not under systemd: nothing is sent, and a reliable send has nobody to fail")
    func inactive() {
        let notifier = SystemdNotifier(environment: [:])
        #expect(!notifier.notify("READY=1"))
        #expect(notifier.notifyReliably("MAINPID=42"))
    }

    @Test("A NOTIFY_SOCKET nobody listens on: the reliable send fails, and says so")
    func nobodyListens() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let notifier = SystemdNotifier(environment: ["NOTIFY_SOCKET": directory.path + "/absent"])
        #expect(!notifier.notifyReliably("MAINPID=42"))
    }
}
