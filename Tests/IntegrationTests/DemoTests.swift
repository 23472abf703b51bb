import Foundation
import Testing

/// `junction demo` as a new user runs it: it starts, prints where to go, serves the split with its
/// own backends, shows them in the admin status, and stops on SIGTERM.
@Suite("junction demo", .junctionTimeLimit(minutes: 3))
struct DemoTests {
    @Test("The demo answers through the split (curl, Python websockets, headless Chromium) and stops on SIGTERM")
    func demo() throws {
        let port = try TestPaths.freePort()
        let adminPort = try TestPaths.freePort()
        let junction = try JunctionProcess(
            arguments: ["demo", "--port", String(port), "--admin-port", String(adminPort)],
            waitForListeners: 2
        )
        let base = "http://127.0.0.1:\(port)"
        #expect(junction.stdout.contains("page      \(base)/"), "the URL to open is printed: \(junction.stdout)")
        #expect(junction.stdout.contains("status    http://127.0.0.1:\(adminPort)/status"))

        // The page and the API come from the monolith, gzipped for a client that accepts it.
        let page = try Curl.run(["--compressed", "-D", "-", base + "/"])
        #expect(page.contains("<h1>Junction demo</h1>"))
        #expect(page.lowercased().contains("content-encoding: gzip"))
        let info = try Curl.json(base + "/api/info")
        #expect(info["backend"] as? String == "monolith")
        #expect(info["host"] as? String == "127.0.0.1:\(port)", "the client's Host reaches the monolith")
        #expect(info["x-forwarded-for"] as? String == "127.0.0.1")

        // WebSockets go to the two ddp-streamers, raw DDP on /websocket, SockJS framing elsewhere.
        let client = try ProcessRunner.run(
            [
                "python3", "-c",
                """
                import asyncio, json, sys
                from websockets.asyncio.client import connect
                async def main():
                    sockets, backends = [], []
                    for _ in range(4):
                        ws = await connect("ws://127.0.0.1:\(port)/websocket")
                        sockets.append(ws)
                        assert json.loads(await ws.recv()) == {"server_id": "0"}
                        await ws.send(json.dumps({"msg": "connect", "version": "1", "support": ["1"]}))
                        assert json.loads(await ws.recv())["msg"] == "connected"
                        await ws.send(json.dumps({"msg": "method", "id": "1", "method": "whoami", "params": []}))
                        backends.append(json.loads(await ws.recv())["result"]["backend"])
                    sockjs = await connect("ws://127.0.0.1:\(port)/sockjs/123/abcdef/websocket")
                    assert await sockjs.recv() == "o"
                    framed = json.loads((await sockjs.recv()).removeprefix("a"))
                    status = __import__("urllib.request").request.urlopen("http://127.0.0.1:\(adminPort)/status").read()
                    print(json.dumps({"backends": backends, "sockjs": framed, "status": json.loads(status)}))
                    for ws in sockets + [sockjs]:
                        await ws.close()
                asyncio.run(main())
                """,
            ],
            timeout: 60
        )
        #expect(client.status == 0, "\(client.stderr)")
        let result = try JSONSerialization.jsonObject(with: Data(client.stdout.utf8)) as? [String: Any] ?? [:]
        let backends = result["backends"] as? [String] ?? []
        #expect(
            backends.sorted() == ["ddp-streamer-1", "ddp-streamer-1", "ddp-streamer-2", "ddp-streamer-2"],
            "least connections spreads 4 open WebSockets 2 and 2: \(backends)"
        )
        #expect(result["sockjs"] as? [String] == [#"{"server_id":"0"}"#], "SockJS framing off /websocket")
        let pools = (result["status"] as? [String: Any])?["pools"] as? [String: Any]
        let ddp = pools?["ddp-streamer"] as? [String: Any]
        #expect(ddp?["tunnels"] as? Int == 5, "the admin status counts the open tunnels: \(String(describing: ddp))")

        // A real browser: the page opens four WebSockets through Junction and names their backends.
        let browser = try ProcessRunner.run(["python3", TestPaths.fixture("chromium_ws.py"), base + "/"], timeout: 120)
        #expect(browser.status == 0, "\(browser.stderr.suffix(2000))")
        let seen = try JSONSerialization.jsonObject(with: Data(browser.stdout.utf8)) as? [String: Any] ?? [:]
        #expect(seen["ws_status"] as? Int == 101)
        #expect(
            seen["title"] as? String == "DDP 4 connected: ddp-streamer-1=2 ddp-streamer-2=2",
            "the page shows the split and the balance: \(seen)"
        )

        #expect(junction.stop() == 0, "SIGTERM stops the demo cleanly")
        #expect(junction.stderr.contains("junction stopped"))
    }
}
