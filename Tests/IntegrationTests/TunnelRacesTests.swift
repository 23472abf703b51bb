import Foundation
import Testing

/// A tunnel end writes straight to its socket while NIO's queue is empty and through the queue
/// otherwise (`DirectWrites`). These drive real tunnels through the binary into every switch
/// between the two and every way a tunnel ends, with a backend and clients that check each byte:
/// order, nothing lost, nothing of another tunnel (a write to a descriptor number a new
/// connection reused would show as a foreign byte).
@Suite("Tunnel writes: backpressure and close races", .serialized, .junctionTimeLimit(minutes: 8))
struct TunnelRacesTests {
    /// The fixture (backend and clients in one process) and Junction in front of its backend.
    struct Setup {
        let races: LineProcess
        let junction: JunctionProcess

        init() throws {
            self.races = try LineProcess(["python3", TestPaths.fixture("tunnel_races.py")])
            let line = try self.races.readLine(timeout: 30)
            let port = try #require(line.split(separator: " ").last.flatMap { Int($0) }, "\(line)")
            self.junction = try JunctionProcess(
                yaml: TestConfig.split(monolith: ["127.0.0.1:9"], ddp: ["127.0.0.1:\(port)"])
                    + "admin:\n  address: 127.0.0.1:0\n",
                waitForListeners: 2
            )
        }

        /// Runs one command; its answer.
        func run(_ command: String, timeout: TimeInterval) throws -> [String: Any] {
            self.races.writeLine(command)
            let answer = try self.races.readLine(timeout: timeout)
            return try #require(
                try JSONSerialization.jsonObject(with: Data(answer.utf8)) as? [String: Any],
                "\(answer)"
            )
        }

        /// Polled until Junction has no tunnel open (bounded); the last figure seen.
        func tunnelsWhenSettled() -> String {
            var last = "?"
            _ = JunctionProcess.wait(timeout: 20) {
                let metrics = (try? Curl.run(["-s", "http://\(self.junction.address("admin"))/metrics"])) ?? ""
                let line = metrics.split(separator: "\n").first {
                    $0.hasPrefix("junction_tunnels_active{pool=\"ddp-streamer\"}")
                }
                last = line.map { String($0.split(separator: " ").last ?? "?") } ?? "?"
                return Double(last) == 0
            }
            return last
        }
    }

    @Test("16 MiB each way to a side that reads nothing until the sender is blocked: every byte, in order")
    func backpressureBothWays() throws {
        let setup = try Setup()
        defer { setup.races.writeLine("quit") }
        let peakBefore = setup.junction.memory().peak
        let answer = try setup.run("slow \(setup.junction.port("http"))", timeout: 150)
        #expect((answer["failures"] as? [String]) == [], "\(answer)")
        #expect(answer["tunnels"] as? Int == 1)
        #expect(answer["frames_to_clients"] as? Int == 4096)
        #expect(answer["frames_to_backend"] as? Int == 32768)
        let grew = setup.junction.memory().peak - peakBefore
        #expect(Double(setup.tunnelsWhenSettled()) == 0)
        #expect(setup.junction.stop() == 0)
        // Backpressure, not buffering: with it Junction holds about a write queue's 64 KiB per
        // direction. A tunnel that read on while its partner could not write would hold what the
        // kernel's socket buffers do not (Debian's tcp_wmem allows 4 MiB: 12 MiB of the 16 here).
        try TestPaths.skipMemoryBoundUnderSanitizer()
        #expect(grew < 8 * 1024, "Junction's peak resident memory grew by \(grew) KiB")
    }

    @Test(
        "240 tunnels, 40 at a time, ended by close, reset, reset while stalled, backend FIN or RST, half-close: every byte is its own tunnel's, in order"
    )
    func closeRaces() throws {
        let setup = try Setup()
        defer { setup.races.writeLine("quit") }
        let answer = try setup.run("churn \(setup.junction.port("http")) 240 40 23", timeout: 330)
        #expect((answer["failures"] as? [String]) == [], "\(answer)")
        #expect(answer["tunnels"] as? Int == 240)
        // Every tunnel moved bytes both ways: 20 client frames on each but a reset one's.
        #expect((answer["frames_to_backend"] as? Int ?? 0) >= 200 * 20, "\(answer)")
        #expect((answer["frames_to_clients"] as? Int ?? 0) >= 240 * 3, "\(answer)")
        #expect(Double(setup.tunnelsWhenSettled()) == 0, "tunnels still open after every tunnel ended")

        // Junction relays a new tunnel as before.
        let again = try setup.run("churn \(setup.junction.port("http")) 6 6 5", timeout: 120)
        #expect((again["failures"] as? [String]) == [], "\(again)")
        #expect(again["tunnels"] as? Int == 6)
        #expect(setup.junction.stop() == 0)
    }
}
