import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// HTTP/2 to clients, RFC 8441 WebSockets, redirects and certificate reload, with real clients:
/// curl, nghttp, Python `h2`, openssl and headless Chromium.
@Suite("HTTP/2 and RFC 8441", .junctionTimeLimit(minutes: 5))
struct HTTP2Tests {
    /// A running Junction with a TLS listener (`https`, h2 on), an h2c listener (`h2c`) and a
    /// redirecting one (`redirect`), the monolith and one ddp-streamer behind it.
    final class Setup {
        let monolith: HTTPTestBackend
        let ddp: DDPBackend
        let junction: JunctionProcess
        let directory: URL
        let caFile: String
        let certificates: TestCertificates

        init(limits: String = "") throws {
            self.monolith = try HTTPTestBackend(name: "monolith")
            self.ddp = try DDPBackend(name: "ddp-a")
            self.certificates = try TestCertificates()
            let issued = try self.certificates.issue(commonName: "localhost", dnsNames: ["localhost"])
            self.directory = try TestPaths.makeTemporaryDirectory()
            self.caFile = self.directory.appendingPathComponent("ca.pem").path
            try self.certificates.caPEM.write(toFile: self.caFile, atomically: true, encoding: .utf8)
            let yaml = TestConfig.split(
                monolith: [self.monolith.address],
                ddp: [self.ddp.address],
                tls: true,
                http2: true,
                extraListeners: """
                      - name: h2c
                        address: 127.0.0.1:0
                        http2: true
                      - name: redirect
                        address: 127.0.0.1:0
                        redirect_https: 8443

                    """,
                limits: limits
            )
            self.junction = try JunctionProcess(
                yaml: yaml,
                files: ["cert.pem": issued.certificatePEM, "key.pem": issued.keyPEM],
                waitForListeners: 4
            )
        }

        deinit {
            self.monolith.stop()
            self.ddp.stop()
            try? FileManager.default.removeItem(at: self.directory)
        }

        var httpsPort: Int { self.junction.port("https") }
        var https: String { "https://localhost:\(self.httpsPort)" }
        var h2c: String { "http://127.0.0.1:\(self.junction.port("h2c"))" }
        var tlsArguments: [String] { ["--cacert", self.caFile, "--resolve", "localhost:\(self.httpsPort):127.0.0.1"] }
    }

    @Test("ALPN offers h2 and http/1.1; both work, and h2c prior knowledge works on a plain listener")
    func alpnAndH2c() throws {
        let setup = try Setup()
        #expect(setup.junction.stdout.contains("tls=on h2=on"), "the listening line says h2=on")
        for (offer, expected) in [("h2,http/1.1", "h2"), ("http/1.1", "http/1.1")] {
            let output = try ProcessRunner.run(
                [
                    "openssl", "s_client", "-connect", "127.0.0.1:\(setup.httpsPort)", "-alpn", offer, "-servername",
                    "localhost",
                ],
                stdin: Data(),
                timeout: 20
            )
            #expect(
                output.stdout.contains("ALPN protocol: \(expected)"),
                "offered \(offer): \(output.stdout.suffix(300))"
            )
        }
        for (flag, version) in [("--http2", "2"), ("--http1.1", "1.1")] {
            let answer = try Curl.run(
                ["-w", "\\n%{http_version}", flag] + setup.tlsArguments + [setup.https + "/echo"]
            )
            let lines = answer.split(separator: "\n")
            #expect(lines.last.map(String.init) == version, "\(flag): \(answer)")
            let echo = try JSONSerialization.jsonObject(with: Data(lines.first!.utf8)) as! [String: Any]
            let headers = (echo["headers"] as! [[String]]).map { ($0[0].lowercased(), $0[1]) }
            #expect(headers.contains { $0 == ("host", "localhost:\(setup.httpsPort)") }, ":authority became Host")
            #expect(headers.contains { $0 == ("x-forwarded-proto", "https") })
        }
        let prior = try Curl.run(["-w", "\\n%{http_version}", "--http2-prior-knowledge", setup.h2c + "/echo"])
        #expect(prior.hasSuffix("\n2"), "\(prior)")
        let plain = try Curl.run(["-w", "\\n%{http_version}", setup.h2c + "/echo"])
        #expect(plain.hasSuffix("\n1.1"), "HTTP/1.1 still works on an h2c listener: \(plain)")
    }

    @Test("nghttp: concurrent streams on one connection, each answered")
    func nghttp() throws {
        let setup = try Setup()
        let urls = ["/echo?a=1", "/echo?b=2", "/sockjs/info", "/nowhere", "/slow?ms=200"].map { setup.h2c + $0 }
        let output = try ProcessRunner.run(["nghttp", "-n", "-s"] + urls, timeout: 30)
        #expect(output.status == 0, "\(output.stderr)")
        let statuses = output.stdout.split(separator: "\n").filter { $0.contains(" 200 ") }
        #expect(statuses.count == 5, "\(output.stdout)")
        #expect(setup.junction.waitForStdout { $0.components(separatedBy: " HTTP/2.0\" 200 ").count - 1 >= 5 })
    }

    @Test("RFC 8441: SETTINGS_ENABLE_CONNECT_PROTOCOL, extended CONNECT, a DDP exchange through the tunnel")
    func extendedConnect() throws {
        let setup = try Setup()
        let script = TestPaths.fixture("h2_websocket.py")
        let runs: [[String]] = [
            ["localhost", String(setup.httpsPort), "/websocket", "--tls", setup.caFile],
            ["127.0.0.1", String(setup.junction.port("h2c")), "/sockjs/123/abc/websocket"],
        ]
        for arguments in runs {
            let output = try ProcessRunner.run(["python3", script] + arguments, timeout: 60)
            #expect(output.status == 0, "\(arguments): \(output.stdout) \(output.stderr)")
            let result = try JSONSerialization.jsonObject(with: Data(output.stdout.utf8)) as? [String: Any] ?? [:]
            #expect(result["connect_protocol_setting"] as? Int == 1)
            #expect(result["status"] as? String == "200")
            #expect(result["session"] as? String == "ddp-a-session", "DDP connect -> connected")
            #expect(result["target"] as? String == arguments[2], "the path is forwarded untouched")
            #expect(result["ok"] as? Bool == true, "a 200 kB message round-trips within flow control")
        }
        #expect(setup.junction.waitForStdout { $0.components(separatedBy: "\"CONNECT /").count - 1 == 2 })
    }

    @Test("Headless Chromium loads a page over HTTP/2 and runs its WebSocket inside it (RFC 8441)")
    func chromium() throws {
        let setup = try Setup()
        let output = try ProcessRunner.run(
            ["python3", TestPaths.fixture("chromium_ws.py"), "https://localhost:\(setup.httpsPort)/page"],
            timeout: 120
        )
        #expect(output.status == 0, "\(output.stderr.suffix(2000))")
        let result = try JSONSerialization.jsonObject(with: Data(output.stdout.utf8)) as? [String: Any] ?? [:]
        #expect(result["page_protocol"] as? String == "h2", "the page came over HTTP/2: \(result)")
        #expect(result["ws_status"] as? Int == 200, "an RFC 8441 handshake answers 200 (HTTP/1.1 would be 101)")
        #expect(result["title"] as? String == "DDP connected ddp-a-session", "the DDP exchange worked")
        #expect(
            setup.junction.waitForStdout {
                $0.contains("\"CONNECT /websocket HTTP/2.0\" 200 ") && $0.contains(" proto=ws/h2 ")
            }
        )
    }

    @Test(
        "Connection-specific headers are a stream error; big header lists get 431; trailers pass; rapid reset ends the connection"
    )
    func abuse() throws {
        let setup = try Setup(limits: "  max_header_bytes: 8KiB")
        let probe = TestPaths.fixture("h2_probe.py")
        let port = String(setup.junction.port("h2c"))
        func run(_ arguments: [String]) throws -> [String: Any] {
            let output = try ProcessRunner.run(["python3", probe, port] + arguments, timeout: 60)
            #expect(output.status == 0, "\(output.stderr)")
            return try JSONSerialization.jsonObject(with: Data(output.stdout.utf8)) as? [String: Any] ?? [:]
        }
        let connectionHeader = try run(["connection-header"])
        #expect(
            connectionHeader["bad"] as? [AnyHashable] == ["reset", 1],
            "RST_STREAM PROTOCOL_ERROR: \(connectionHeader)"
        )
        #expect(connectionHeader["good"] as? [AnyHashable] == ["status", 200], "the connection goes on")
        let big = try run(["big-headers", "10000"])
        #expect(big["result"] as? [AnyHashable] == ["status", 431], "\(big)")
        #expect(
            setup.junction.waitForStdout { $0.contains(" HTTP/2.0\" 431 ") },
            "the 431 the session answers itself is logged"
        )
        let trailers = try run(["trailers", "/trailers"])
        #expect(trailers["status"] as? Int == 200)
        #expect(trailers["body"] as? String == "hello trailers")
        #expect(
            (trailers["trailers"] as? [String: String])?["x-checksum"] == "abc123",
            "upstream trailers pass: \(trailers)"
        )
        let reset = try run(["rapid-reset", "1000"])
        #expect((reset["result"] as? [AnyHashable])?.first as? String != "status", "\(reset)")
        #expect(
            try Curl.status(setup.h2c + "/echo", extra: ["--http2-prior-knowledge"]) == 200,
            "the process serves on"
        )
    }

    @Test("redirect_https answers 308 to the same target on HTTPS")
    func redirect() throws {
        let setup = try Setup()
        let answer = try Curl.run([
            "-D", "-", "-o", "/dev/null", "-H", "Host: chat.example.com:8080",
            "http://127.0.0.1:\(setup.junction.port("redirect"))/home?x=1",
        ])
        #expect(answer.hasPrefix("HTTP/1.1 308 Permanent Redirect"), "\(answer)")
        #expect(answer.contains("Location: https://chat.example.com:8443/home?x=1"))
        #expect(setup.monolith.stats.requests.load(ordering: .relaxed) == 0, "nothing is proxied")
    }

    @Test("A 100 MB upload and download over HTTP/2 stream with bounded proxy memory")
    func largeBodies() throws {
        let setup = try Setup()
        _ = try Curl.run(["--http2"] + setup.tlsArguments + ["-o", "/dev/null", setup.https + "/echo"])
        let before = setup.junction.memory()
        let size = 100 << 20
        let file = setup.directory.appendingPathComponent("upload.bin")
        _ = FileManager.default.createFile(atPath: file.path, contents: nil)
        let handle = try FileHandle(forWritingTo: file)
        for _ in 0..<100 { handle.write(Data(repeating: 0x62, count: 1 << 20)) }
        try handle.close()
        let upload = try Curl.run(
            ["--http2", "-w", "\\n%{http_version}"] + setup.tlsArguments + ["-T", file.path, setup.https + "/sink"],
            timeout: 300
        )
        #expect(upload.contains("\"bytes\":\(size)"), "\(upload)")
        #expect(upload.hasSuffix("\n2"))
        let download = try Curl.run(
            ["--http2", "-o", "/dev/null", "-w", "%{size_download} %{http_version}"] + setup.tlsArguments + [
                setup.https + "/source?bytes=\(size)"
            ],
            timeout: 300
        )
        #expect(download == "\(size) 2")
        let growth = (setup.junction.memory().peak - before.rss) / 1024
        try TestPaths.skipMemoryBoundUnderSanitizer()
        #expect(growth < 48, "peak RSS grew by \(growth) MiB moving 200 MB over HTTP/2")
    }

    @Test("SIGHUP re-reads certificates: a new connection gets the new one, an open one keeps working")
    func certificateReload() throws {
        let setup = try Setup()
        let held = try LineProcess(["python3", TestPaths.fixture("tls_keepalive.py"), String(setup.httpsPort), "/echo"])
        let first = try held.readLine().split(separator: " ")
        #expect(first.count == 2 && first[1] == "200")
        func servedFingerprint() throws -> String {
            let output = try ProcessRunner.run(
                [
                    "sh", "-c",
                    "openssl s_client -connect 127.0.0.1:\(setup.httpsPort) -servername localhost </dev/null 2>/dev/null | openssl x509 -outform DER | sha256sum",
                ],
                timeout: 20
            )
            return String(output.stdout.prefix(64))
        }
        #expect(try servedFingerprint() == String(first[0]))

        // A broken file is refused: the old certificate keeps serving.
        let certPath = setup.junction.directory.appendingPathComponent("cert.pem").path
        let original = try String(contentsOfFile: certPath, encoding: .utf8)
        try "not a certificate".write(toFile: certPath, atomically: true, encoding: .utf8)
        setup.junction.signal(SIGHUP)
        #expect(
            setup.junction.waitForStderr {
                $0.contains("reload refused, generation 1 keeps serving")
                    && $0.contains("cert.pem holds no PEM certificate")
            }
        )
        #expect(try servedFingerprint() == String(first[0]))
        _ = original

        // A new certificate is picked up.
        let renewed = try setup.certificates.issue(commonName: "localhost", dnsNames: ["localhost"])
        try renewed.certificatePEM.write(toFile: certPath, atomically: true, encoding: .utf8)
        try renewed.keyPEM.write(
            to: setup.junction.directory.appendingPathComponent("key.pem"),
            atomically: true,
            encoding: .utf8
        )
        setup.junction.signal(SIGHUP)
        #expect(setup.junction.waitForStderr { $0.contains("config reloaded generation=2") })
        let after = try servedFingerprint()
        #expect(after != String(first[0]) && after.count == 64, "the new certificate is served to new connections")
        held.writeLine("again")
        #expect(try held.readLine() == "200", "the connection opened before the reload still works")
    }
}
