import Foundation
import Testing

/// Large bodies stream through with bounded proxy memory, and a slow reader stalls the backend
/// instead of filling the proxy. Serialized: these move hundreds of megabytes.
@Suite("Streaming and backpressure", .serialized, .junctionTimeLimit(minutes: 10))
struct StreamingTests {
    static let megabyte = 1 << 20

    @Test("A 200 MB upload and a 200 MB download stream through; proxy memory stays bounded")
    func largeBodies() throws {
        let monolith = try HTTPTestBackend(name: "monolith")
        defer { monolith.stop() }
        let junction = try JunctionProcess(yaml: TestConfig.split(monolith: [monolith.address], ddp: ["127.0.0.1:9"]))
        let base = "http://127.0.0.1:\(junction.port("http"))"
        // Warm up so the baseline includes the loops' steady-state allocations.
        _ = try Curl.json(base + "/echo")
        let before = junction.memory()

        let size = 200 * Self.megabyte
        let directory = try TestPaths.makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let file = directory.appendingPathComponent("upload.bin")
        _ = FileManager.default.createFile(atPath: file.path, contents: nil)
        let handle = try FileHandle(forWritingTo: file)
        let block = Data(repeating: 0x61, count: Self.megabyte)
        for _ in 0..<200 { handle.write(block) }
        try handle.close()

        // curl sends `Expect: 100-continue` for a body this size; Junction answers it.
        let upload = try Curl.json(base + "/sink", extra: ["-T", file.path])
        #expect(upload["bytes"] as? Int == size)
        #expect(upload["backend"] as? String == "monolith")

        // A chunked upload of unknown length (from stdin) streams too.
        let chunked = try ProcessRunner.run(
            ["sh", "-c", "head -c \(50 * Self.megabyte) /dev/zero | curl -sS -T - \(base)/sink"],
            timeout: 300
        )
        #expect(
            chunked.stdout.contains("\"bytes\":\(50 * Self.megabyte)"),
            "chunked upload: \(chunked.stdout) \(chunked.stderr)"
        )

        let download = try Curl.run(
            ["-o", "/dev/null", "-w", "%{size_download}", "\(base)/source?bytes=\(size)"],
            timeout: 300
        )
        #expect(Int(download) == size)

        let after = junction.memory()
        let growthMiB = (after.peak - before.rss) / 1024
        #expect(junction.stop() == 0)
        try TestPaths.skipMemoryBoundUnderSanitizer()
        #expect(
            growthMiB < 48,
            "peak RSS grew by \(growthMiB) MiB moving 450 MB (before \(before.rss) KiB, peak \(after.peak) KiB)"
        )
    }

    @Test("A response head goes to the client when it comes, not held for the body that follows")
    func headBeforeBody() throws {
        let monolith = try HTTPTestBackend(name: "monolith")
        defer { monolith.stop() }
        let junction = try JunctionProcess(yaml: TestConfig.split(monolith: [monolith.address], ddp: ["127.0.0.1:9"]))
        // The front keeps a response head back to send it with a small body in one buffer; a head
        // whose body is not there yet must still go out at the end of the backend's read burst.
        let client = try RawClient(port: junction.port("http"))
        try client.send("GET /headfirst?ms=8000 HTTP/1.1\r\nHost: test\r\n\r\n")
        let head = try client.receive(until: "\r\n\r\n")
        #expect(head.hasPrefix("HTTP/1.1 200"), "\(head)")
        #expect(
            monolith.stats.headFirstBodies.load(ordering: .relaxed) == 0,
            "the head came only with the body, 8 s after the backend sent it"
        )
        let body = try client.receive(until: "later")
        #expect(body.hasSuffix("later"))
        // The next request on the connection is answered whole: a small body joins its head.
        try client.send("GET /echo HTTP/1.1\r\nHost: test\r\n\r\n")
        let next = try client.receive(until: "}")
        #expect(next.hasPrefix("HTTP/1.1 200") && next.contains("\"backend\":\"monolith\""), "\(next)")
        #expect(junction.stop() == 0)
    }

    @Test("A slow reader stalls the backend through the proxy instead of filling the proxy's memory")
    func slowReader() throws {
        let monolith = try HTTPTestBackend(name: "monolith")
        defer { monolith.stop() }
        let junction = try JunctionProcess(yaml: TestConfig.split(monolith: [monolith.address], ddp: ["127.0.0.1:9"]))
        let size = 256 * Self.megabyte
        let client = try RawClient(port: junction.port("http"), receiveBuffer: 64 * 1024)
        try client.send("GET /source?bytes=\(size) HTTP/1.1\r\nHost: test\r\n\r\n")
        let firstRead = try client.drain(1 * Self.megabyte)
        #expect(firstRead == 1 * Self.megabyte)
        let before = junction.memory()

        // Stop reading. The backend may fill the kernel's socket buffers and Junction's bounded
        // buffers, then it must stall far short of the 256 MB it wants to send: polled until what
        // it wrote has not moved for a second (at most 20 s), the time a trickle would show.
        var stalledAt = monolith.stats.sourceBytesWritten.load(ordering: .relaxed)
        var stillSince = Date()
        let stalled = JunctionProcess.wait(timeout: 20) {
            let written = monolith.stats.sourceBytesWritten.load(ordering: .relaxed)
            if written != stalledAt { (stalledAt, stillSince) = (written, Date()) }
            return Date().timeIntervalSince(stillSince) >= 1
        }
        #expect(stalled, "the backend is stalled, not trickling: \(stalledAt) bytes")
        #expect(stalledAt < 48 * Self.megabyte, "backend wrote \(stalledAt) bytes while the client read 1 MiB")
        let during = junction.memory()

        // Reading again resumes the transfer to the end.
        let rest = try client.drain(size - firstRead)
        #expect(rest == size - firstRead, "read \(firstRead + rest) of \(size) bytes (and the head)")
        #expect(monolith.stats.sourceBytesWritten.load(ordering: .relaxed) == size)
        #expect(junction.stop() == 0)
        try TestPaths.skipMemoryBoundUnderSanitizer()
        #expect((during.rss - before.rss) / 1024 < 16, "RSS grew \((during.rss - before.rss) / 1024) MiB while stalled")
    }

    @Test("A WebSocket that moved a large message keeps at most 16 KiB of read buffer per side while idle")
    func tunnelReadBuffersAfterALargeMessage() throws {
        let ddp = try DDPBackend(name: "A")
        defer { ddp.stop() }
        let junction = try JunctionProcess(yaml: TestConfig.split(monolith: ["127.0.0.1:9"], ddp: [ddp.address]))
        let url = "ws://127.0.0.1:\(junction.port("http"))/websocket"
        // Warm up so the baseline includes the loop's steady-state allocations.
        let warm = try LineProcess(["python3", TestPaths.fixture("ws_large_then_idle.py"), url, "4", "200000"])
        #expect(try warm.readLine() == "ready 4")
        warm.writeLine("")
        #expect(try warm.readLine() == "closed")
        let before = junction.memory()

        // 200 tunnels, each relays a 200 kB message both ways, then idles. NIO's read buffers only
        // grow: without the tunnel's 16 KiB cap both sides keep 64 KiB each (~135 kB a tunnel).
        let count = 200
        let clients = try LineProcess([
            "python3", TestPaths.fixture("ws_large_then_idle.py"), url, "\(count)", "200000",
        ])
        #expect(try clients.readLine(timeout: 120) == "ready \(count)")
        let perTunnel = (junction.memory().rss - before.rss) * 1024 / count
        clients.writeLine("")
        #expect(try clients.readLine() == "closed")
        #expect(junction.stop() == 0)
        try TestPaths.skipMemoryBoundUnderSanitizer()
        #expect(perTunnel < 56 * 1024, "RSS grew \(perTunnel) bytes per idle tunnel after a 200 kB message")
    }
}
