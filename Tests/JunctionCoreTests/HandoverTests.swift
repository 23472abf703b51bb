import Testing

@testable import JunctionCore

#if canImport(Glibc)
    import Glibc
#endif

/// The hand-over of an upgrade in environment variables: what the old process writes, the new one
/// reads back, and every malformed value named with its variable.
@Suite("Upgrade hand-over variables")
struct HandoverTests {
    static let sample = Handover(
        sockets: [
            .init(descriptor: 3, kind: .listener, name: "https", address: "0.0.0.0:8443"),
            .init(descriptor: 4, kind: .listener, name: "a name, with 100% odd bytes: é", address: "[::1]:0"),
            .init(descriptor: 5, kind: .admin, name: "", address: "127.0.0.1:9901"),
        ],
        readyDescriptor: 6,
        standardErrorDescriptor: 7,
        goDescriptor: 8,
        previousPID: 4242
    )

    @Test("What the old process writes, the new one reads back: names percent-encoded, admin named -")
    func roundTrip() throws {
        let environment = Self.sample.environment
        #expect(
            environment[Handover.Variable.sockets]
                == "3 listener https 0.0.0.0:8443,4 listener a%20name%2C%20with%20100%25%20odd%20bytes:%20%C3%A9 [::1]:0,5 admin - 127.0.0.1:9901"
        )
        #expect(environment[Handover.Variable.ready] == "6")
        #expect(environment[Handover.Variable.standardError] == "7")
        #expect(environment[Handover.Variable.previousPID] == "4242")
        #expect(environment[Handover.Variable.go] == "8")
        #expect(try Handover.parse(environment) == Self.sample)
    }

    @Test("No JUNCTION_LISTEN_FDS: a plain start")
    func absent() throws {
        #expect(try Handover.parse([:]) == nil)
        #expect(try Handover.parse(["JUNCTION_READY_FD": "5"]) == nil)
    }

    @Test(
        "Malformed hand-overs fail with one line naming the variable",
        arguments: [
            (["JUNCTION_LISTEN_FDS": "3 listener https"], "is not \"<fd> listener|admin <name> <host:port>\""),
            (
                ["JUNCTION_LISTEN_FDS": "x listener https 1.2.3.4:5"],
                "JUNCTION_LISTEN_FDS: \"x\" is not a file descriptor"
            ),
            (
                ["JUNCTION_LISTEN_FDS": "2 listener https 1.2.3.4:5"],
                "JUNCTION_LISTEN_FDS: \"2\" is not a file descriptor"
            ),
            (["JUNCTION_LISTEN_FDS": "3 socket https 1.2.3.4:5"], "\"socket\" is neither listener nor admin"),
            (["JUNCTION_LISTEN_FDS": "3 listener a%2 1.2.3.4:5"], "bad percent-encoding in \"a%2\""),
            (["JUNCTION_LISTEN_FDS": "3 listener a 1.2.3.4:5,3 admin - 1.2.3.4:6"], "descriptor 3 is listed twice"),
            (
                ["JUNCTION_LISTEN_FDS": "3 listener a 1.2.3.4:5"],
                "JUNCTION_LISTEN_FDS is set but JUNCTION_READY_FD is not"
            ),
            (
                ["JUNCTION_LISTEN_FDS": "3 listener a 1.2.3.4:5", "JUNCTION_READY_FD": "ready"],
                "JUNCTION_READY_FD: \"ready\" is not a file descriptor"
            ),
            (
                [
                    "JUNCTION_LISTEN_FDS": "3 listener a 1.2.3.4:5", "JUNCTION_READY_FD": "4",
                    "JUNCTION_STDERR_FD": "-1",
                ],
                "JUNCTION_STDERR_FD: \"-1\" is not a file descriptor"
            ),
        ] as [([String: String], String)]
    )
    func malformed(environment: [String: String], message: String) {
        #expect {
            _ = try Handover.parse(environment)
        } throws: { error in
            "\(error)".contains(message)
        }
    }

    @Test("The go pipe: go once the old process stopped accepting; called off; the old process gone")
    func goPipe() {
        func pipePair() -> (read: CInt, write: CInt) {
            var ends: [CInt] = [-1, -1]
            #expect(pipe(&ends) == 0)
            return (ends[0], ends[1])
        }
        let said = pipePair()
        let word = Array("go\n".utf8)
        _ = word.withUnsafeBytes { write(said.write, $0.baseAddress, $0.count) }
        close(said.write)
        #expect(HandoverGo.wait(on: said.read, previousPID: getppid()) == .accept("the old process stopped accepting"))

        let calledOff = pipePair()
        close(calledOff.write)
        #expect(HandoverGo.wait(on: calledOff.read, previousPID: getppid()) == .stop, "the old process lives: off")

        let gone = pipePair()
        close(gone.write)
        #expect(HandoverGo.wait(on: gone.read, previousPID: -2) == .accept("the old process is gone"))
    }

    @Test("An empty socket list is valid: every listener binds anew")
    func noSockets() throws {
        let handover = try Handover.parse(["JUNCTION_LISTEN_FDS": "", "JUNCTION_READY_FD": "3"])
        #expect(handover?.sockets == [])
        #expect(handover?.readyDescriptor == 3)
        #expect(handover?.standardErrorDescriptor == nil)
    }

    @Test("Inherited sockets go to the listener configured for them; port 0 by name; the rest are closed")
    func inheritedSockets() {
        let inherited = InheritedSockets([
            .init(descriptor: 900, kind: .listener, name: "web", address: "127.0.0.1:8080"),
            .init(descriptor: 901, kind: .listener, name: "a", address: "127.0.0.1:0"),
            .init(descriptor: 902, kind: .listener, name: "b", address: "127.0.0.1:0"),
            .init(descriptor: 903, kind: .admin, name: "", address: "127.0.0.1:9901"),
            .init(descriptor: 904, kind: .listener, name: "gone", address: "127.0.0.1:8081"),
        ])
        #expect(inherited.take(listener: "renamed", address: HostPort(host: "127.0.0.1", port: 8080)) == 900)
        #expect(inherited.take(listener: "web", address: HostPort(host: "127.0.0.1", port: 8080)) == nil, "taken once")
        #expect(inherited.take(listener: "b", address: HostPort(host: "127.0.0.1", port: 0)) == 902)
        #expect(inherited.take(listener: "c", address: HostPort(host: "127.0.0.1", port: 0)) == nil)
        #expect(inherited.takeAdmin(address: HostPort(host: "127.0.0.1", port: 9902)) == nil, "moved: bound anew")
        #expect(
            inherited.take(listener: "x", address: HostPort(host: "127.0.0.1", port: 9901)) == nil,
            "not a listener"
        )
        let closed = inherited.closeRest().map(\.descriptor)
        #expect(closed == [901, 903, 904])
        #expect(inherited.closeRest().isEmpty)
    }

    @Test("NOTIFY_SOCKET: a path is NUL-terminated, @ names an abstract socket, too long or empty is off")
    func notifySocketAddress() {
        let family: [UInt8] = [1, 0]  // AF_UNIX, little-endian
        #expect(
            SystemdNotifier.socketAddress("/run/systemd/notify") == family + Array("/run/systemd/notify".utf8) + [0]
        )
        #expect(SystemdNotifier.socketAddress("@abstract") == family + [0] + Array("abstract".utf8))
        #expect(SystemdNotifier.socketAddress("") == nil)
        #expect(SystemdNotifier.socketAddress("/" + String(repeating: "x", count: 200)) == nil)
        #expect(!SystemdNotifier(environment: [:]).isActive)
        #expect(!SystemdNotifier(environment: [:]).notify("READY=1"), "nothing is sent without systemd")
        #expect(SystemdNotifier.reloading.hasPrefix("RELOADING=1\nMONOTONIC_USEC="))
    }
}
