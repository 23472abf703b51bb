import Foundation
import Testing

/// Automatic certificates against a real ACME server (Debian's pebble): issuance by tls-alpn-01
/// and http-01, a restart that reuses the stored certificate, a renewal under open connections,
/// the CA down at start, two instances sharing one storage, and `check`.
@Suite("ACME", .serialized, .junctionTimeLimit(minutes: 10))
struct ACMETests {
    static let domain = "chat.example.com"

    /// A config with an `acme` block on the `https` listener; `plain` adds a plain listener.
    static func config(
        pebble: Pebble,
        httpsPort: Int,
        backend: String,
        storage: String,
        challenge: String = "tls-alpn-01",
        plain: String? = nil,
        directory: String? = nil,
        directoryCA: String? = nil,
        renewBefore: String = "30d",
        keyType: String = "ecdsa-p256",
        domains: [String] = [Self.domain]
    ) -> String {
        var yaml = """
            listeners:
              - name: https
                address: 127.0.0.1:\(httpsPort)
                tls:
                  acme:
                    domains: [\(domains.joined(separator: ", "))]
                    email: ops@example.com
                    directory: \(directory ?? pebble.directoryURL)
                    directory_ca: \(directoryCA ?? pebble.caPath)
                    challenge: \(challenge)
                    storage: \(storage)
                    renew_before: \(renewBefore)
                    key_type: \(keyType)

            """
        if let plain {
            yaml += plain
        }
        yaml += """
            admin:
              address: 127.0.0.1:0
            routes:
              - name: all
                pool: web
            pools:
              web:
                backends:
                  - address: \(backend)
            """
        return yaml
    }

    /// `/status`'s entry for the ACME certificate.
    static func certificate(_ junction: JunctionProcess) -> [String: Any]? {
        let status = try? Curl.json("http://\(junction.address("admin"))/status")
        let certificates = status?["certificates"] as? [[String: Any]]
        return certificates?.first { $0["source"] as? String == "acme" }
    }

    /// Waits until the ACME certificate is issued; returns its `/status` entry.
    static func waitForIssued(_ junction: JunctionProcess, timeout: TimeInterval = 60) throws -> [String: Any] {
        var entry: [String: Any]?
        let issued = JunctionProcess.wait(timeout: timeout) {
            entry = self.certificate(junction)
            return entry?["state"] as? String == "issued"
        }
        try #require(issued, "not issued: \(entry ?? [:])\n\(junction.stderr.suffix(3000))")
        return entry ?? [:]
    }

    /// The serial and issuer of the certificate a handshake with SNI `domain` gets.
    static func servedCertificate(port: Int, alpn: String? = nil) throws -> String {
        var arguments = ["openssl", "s_client", "-connect", "127.0.0.1:\(port)", "-servername", Self.domain]
        if let alpn { arguments += ["-alpn", alpn] }
        let handshake = try ProcessRunner.run(arguments, stdin: Data(), timeout: 20)
        let details = try ProcessRunner.run(
            ["openssl", "x509", "-noout", "-serial", "-issuer", "-subject"],
            stdin: Data(handshake.stdout.utf8),
            timeout: 20
        )
        return details.stdout
    }

    /// A request through the listener, verifying the chain against pebble's root and the name.
    static func verifiedStatus(port: Int, root: String) throws -> Int {
        try Curl.status(
            "https://\(Self.domain):\(port)/",
            extra: ["--cacert", root, "--resolve", "\(Self.domain):\(port):127.0.0.1"]
        )
    }

    static func count(_ needle: String, in text: String) -> Int {
        text.components(separatedBy: needle).count - 1
    }

    @Test("tls-alpn-01: a trusted certificate without other tools; files 0600 in 0700 dirs; a restart reuses it")
    func tlsALPNIssuanceAndRestart() throws {
        let pebble = try Pebble()
        let backend = try HTTPTestBackend(name: "web")
        defer { backend.stop() }
        let storage = try TestPaths.makeTemporaryDirectory().appendingPathComponent("acme").path
        let yaml = Self.config(pebble: pebble, httpsPort: pebble.tlsPort, backend: backend.address, storage: storage)
        var junction: JunctionProcess? = try JunctionProcess(yaml: yaml, waitForListeners: 2)
        let first = try #require(junction)
        let issued = try Self.waitForIssued(first)
        #expect((issued["names"] as? [String]) == [Self.domain])
        #expect(issued["next_renewal"] as? Double ?? 0 > Date().timeIntervalSince1970)
        #expect(first.stderr.contains("serving a temporary self-signed one"))
        let root = try pebble.root()
        #expect(try Self.verifiedStatus(port: pebble.tlsPort, root: root) == 200)
        let served = try Self.servedCertificate(port: pebble.tlsPort)
        #expect(served.contains("Pebble Intermediate"), "\(served)")

        // The layout certbot users know, private.
        let fileManager = FileManager.default
        for path in [
            "\(storage)/certificates/\(Self.domain)/fullchain.pem",
            "\(storage)/certificates/\(Self.domain)/privkey.pem",
        ] {
            let attributes = try fileManager.attributesOfItem(atPath: path)
            #expect((attributes[.posixPermissions] as? Int) == 0o600, "\(path)")
        }
        for path in [
            storage, "\(storage)/certificates", "\(storage)/certificates/\(Self.domain)", "\(storage)/accounts",
        ] {
            let attributes = try fileManager.attributesOfItem(atPath: path)
            #expect((attributes[.posixPermissions] as? Int) == 0o700, "\(path)")
        }
        let metrics = try Curl.run(["http://\(first.address("admin"))/metrics"])
        #expect(metrics.contains(#"junction_acme_orders_total{result="issued"} 1"#))
        #expect(metrics.contains("junction_certificate_expiry_timestamp_seconds{listener=\"https\""))

        // The dashboard lists it.
        let browser = try ProcessRunner.run(
            [
                "chromium", "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
                "--virtual-time-budget=3000", "--dump-dom", "http://\(first.address("admin"))/",
            ],
            timeout: 90
        )
        #expect(
            browser.stdout.contains("<td>https</td><td>\(Self.domain)</td><td>acme</td><td>issued</td>"),
            "\(browser.stdout)"
        )

        // Only a validation gets a challenge certificate, and only while one is pending.
        let probe = try ProcessRunner.run(
            [
                "openssl", "s_client", "-connect", "127.0.0.1:\(pebble.tlsPort)", "-servername", Self.domain, "-alpn",
                "acme-tls/1",
            ],
            stdin: Data(),
            timeout: 20
        )
        #expect(!probe.stdout.contains("BEGIN CERTIFICATE"), "\(probe.stdout.suffix(500))")

        // A reload keeps the certificate and its schedule: no new order.
        first.signal(SIGHUP)
        #expect(first.waitForStderr(timeout: 20) { $0.contains("config reloaded") }, "\(first.stderr.suffix(1000))")
        #expect(try Self.servedCertificate(port: pebble.tlsPort) == served)
        #expect(Self.count("acme: order placed", in: first.stderr) == 1)

        #expect(first.stop() == 0)
        junction = nil
        // The restart serves the stored certificate at once and orders nothing.
        let second = try JunctionProcess(yaml: yaml, waitForListeners: 2)
        let again = try #require(Self.certificate(second))
        #expect(again["state"] as? String == "issued")
        #expect(again["not_after"] as? Double == issued["not_after"] as? Double)
        #expect(try Self.servedCertificate(port: pebble.tlsPort) == served)
        #expect(second.waitForStderr { $0.contains("serving the stored certificate") })
        #expect(again["next_renewal"] as? Double ?? 0 > Date().timeIntervalSince1970 + 86400)
        #expect(!second.stderr.contains("order placed"))
        #expect(second.stop() == 0)

        // A name added: the stored certificate serves on while the one with both names is ordered.
        let third = try JunctionProcess(
            yaml: Self.config(
                pebble: pebble,
                httpsPort: pebble.tlsPort,
                backend: backend.address,
                storage: storage,
                domains: [Self.domain, "www.example.com"]
            ),
            waitForListeners: 2
        )
        #expect(try Self.servedCertificate(port: pebble.tlsPort) == served, "not a self-signed stand-in meanwhile")
        #expect(!third.stderr.contains("temporary self-signed"))
        let both = try Self.waitForIssued(third)
        #expect(JunctionProcess.wait(timeout: 30) { third.stderr.contains("acme: certificate issued") })
        #expect(try Self.servedCertificate(port: pebble.tlsPort) != served)
        // The new certificate carries the added name: curl verifies it for www.example.com.
        let www = try Curl.status(
            "https://www.example.com:\(pebble.tlsPort)/",
            extra: ["--cacert", try pebble.root(), "--resolve", "www.example.com:\(pebble.tlsPort):127.0.0.1"]
        )
        #expect(www == 200)
        #expect(third.stop() == 0)
    }

    @Test("http-01 is answered on the plain listener before redirect_https, and never reaches a backend")
    func http01Issuance() throws {
        let pebble = try Pebble()
        let backend = try HTTPTestBackend(name: "web")
        defer { backend.stop() }
        let storage = try TestPaths.makeTemporaryDirectory().appendingPathComponent("acme").path
        let httpsPort = try TestPaths.freePort()
        let plain = """
              - name: http
                address: 127.0.0.1:\(pebble.httpPort)
                redirect_https: \(httpsPort)

            """
        let junction = try JunctionProcess(
            yaml: Self.config(
                pebble: pebble,
                httpsPort: httpsPort,
                backend: backend.address,
                storage: storage,
                challenge: "http-01",
                plain: plain,
                keyType: "rsa-2048"
            ),
            waitForListeners: 3
        )
        _ = try Self.waitForIssued(junction)
        #expect(try Self.verifiedStatus(port: httpsPort, root: try pebble.root()) == 200)
        let key = try String(contentsOfFile: "\(storage)/certificates/\(Self.domain)/privkey.pem", encoding: .utf8)
        #expect(key.hasPrefix("-----BEGIN PRIVATE KEY-----"), "PKCS#8")
        let keyText = try ProcessRunner.run(
            ["openssl", "pkey", "-in", "\(storage)/certificates/\(Self.domain)/privkey.pem", "-noout", "-text"]
        )
        #expect(keyText.stdout.contains("Private-Key: (2048 bit"), "\(keyText.stdout.prefix(200))")
        #expect(backend.stats.proxiedRequests.load(ordering: .relaxed) == 1, "only the verified request above")
        #expect(!backend.stats.receivedText.contains("acme-challenge"))
        // A token no order placed is not Junction's: the listener's own rule (the redirect) applies.
        #expect(try Curl.status("http://127.0.0.1:\(pebble.httpPort)/.well-known/acme-challenge/unknown") == 308)
        #expect(junction.stop() == 0)
    }

    @Test("renewal: a new certificate for new handshakes, open connections keep going")
    func renewalUnderOpenConnections() throws {
        // Certificates of 45 s, renewed 30 s before their end: the first renewal comes ~15 s in.
        let pebble = try Pebble(validityPeriod: 45)
        let backend = try HTTPTestBackend(name: "web")
        defer { backend.stop() }
        let storage = try TestPaths.makeTemporaryDirectory().appendingPathComponent("acme").path
        let junction = try JunctionProcess(
            yaml: Self.config(
                pebble: pebble,
                httpsPort: pebble.tlsPort,
                backend: backend.address,
                storage: storage,
                renewBefore: "30s"
            ),
            waitForListeners: 2
        )
        _ = try Self.waitForIssued(junction)
        let script = """
            import http.client, json, socket, ssl, sys, time, urllib.request
            port, admin, root, name = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
            context = ssl.create_default_context(cafile=root)
            def connect():
                raw = socket.create_connection(("127.0.0.1", port), timeout=10)
                tls = context.wrap_socket(raw, server_hostname=name)
                connection = http.client.HTTPConnection(name)
                connection.sock = tls
                return connection, tls.getpeercert(binary_form=True)
            def get(connection):
                connection.request("GET", "/", headers={"Host": name})
                response = connection.getresponse()
                response.read()
                return response.status
            def not_after():
                status = json.load(urllib.request.urlopen("http://" + admin + "/status"))
                return [c for c in status["certificates"] if c["source"] == "acme"][0].get("not_after")
            old, old_cert = connect()
            first = get(old)
            before = not_after()
            deadline = time.time() + 90
            while time.time() < deadline and not_after() == before:
                time.sleep(0.2)
            renewed = not_after() != before
            second = get(old)
            new, new_cert = connect()
            print(json.dumps({"first": first, "renewed": renewed, "second": second, "third": get(new),
                              "new_certificate": new_cert != old_cert}))
            """
        let output = try ProcessRunner.run(
            [
                "python3", "-c", script, String(pebble.tlsPort), junction.address("admin"), try pebble.root(),
                Self.domain,
            ],
            timeout: 120
        )
        let result = try JSONSerialization.jsonObject(with: Data(output.stdout.utf8)) as? [String: Any]
        #expect(
            result?["renewed"] as? Bool == true,
            "\(output.stdout) \(output.stderr)\n\(junction.stderr.suffix(2000))"
        )
        #expect(result?["first"] as? Int == 200)
        #expect(result?["second"] as? Int == 200, "the connection opened before the renewal still serves")
        #expect(result?["third"] as? Int == 200)
        #expect(result?["new_certificate"] as? Bool == true)
        #expect(Self.count("acme: certificate issued", in: junction.stderr) >= 2)
        #expect(junction.stop() == 0)
    }

    @Test("the CA down at start: a temporary certificate serves, the failure is counted and shown")
    func caDownAtStart() throws {
        let pebble = try Pebble()
        pebble.stop()
        let backend = try HTTPTestBackend(name: "web")
        defer { backend.stop() }
        let storage = try TestPaths.makeTemporaryDirectory().appendingPathComponent("acme").path
        let junction = try JunctionProcess(
            yaml: Self.config(pebble: pebble, httpsPort: pebble.tlsPort, backend: backend.address, storage: storage),
            waitForListeners: 2
        )
        var entry: [String: Any]?
        let failed = JunctionProcess.wait(timeout: 30) {
            entry = Self.certificate(junction)
            return entry?["last_error"] != nil
        }
        #expect(failed, "\(entry ?? [:])")
        #expect(entry?["state"] as? String == "temporary")
        // The next attempt is a minute away, not a tight loop.
        let next = entry?["next_renewal"] as? Double ?? 0
        #expect(next > Date().timeIntervalSince1970 + 30)
        let metrics = try Curl.run(["http://\(junction.address("admin"))/metrics"])
        #expect(metrics.contains(#"junction_acme_orders_total{result="failed"} 1"#))
        #expect(junction.stderr.contains("order failed, retrying in 60s"))
        // Clients get the stand-in (self-signed, for the name) and are served.
        let served = try Self.servedCertificate(port: pebble.tlsPort)
        #expect(
            served.contains("subject=CN = \(Self.domain)") || served.contains("subject=CN=\(Self.domain)"),
            "\(served)"
        )
        #expect(try Curl.status("https://127.0.0.1:\(pebble.tlsPort)/", extra: ["-k"]) == 200)
        #expect(junction.stop() == 0)
    }

    @Test("two instances sharing storage: one order, both serve the certificate")
    func twoInstancesOneOrder() throws {
        let pebble = try Pebble()
        let backend = try HTTPTestBackend(name: "web")
        defer { backend.stop() }
        let storage = try TestPaths.makeTemporaryDirectory().appendingPathComponent("acme").path
        // Only one can listen where the CA validates (as behind a balancer, either may order).
        let otherPort = try TestPaths.freePort()
        let a = try JunctionProcess(
            yaml: Self.config(pebble: pebble, httpsPort: pebble.tlsPort, backend: backend.address, storage: storage),
            waitForListeners: 2
        )
        let b = try JunctionProcess(
            yaml: Self.config(pebble: pebble, httpsPort: otherPort, backend: backend.address, storage: storage),
            waitForListeners: 2
        )
        let issuedA = try Self.waitForIssued(a)
        let issuedB = try Self.waitForIssued(b)
        #expect(issuedA["not_after"] as? Double == issuedB["not_after"] as? Double)
        #expect(Self.count("acme: order placed", in: a.stderr + b.stderr) == 1, "\(a.stderr)\n\(b.stderr)")
        #expect(try Self.servedCertificate(port: pebble.tlsPort) == (try Self.servedCertificate(port: otherPort)))
        #expect(a.stop() == 0)
        #expect(b.stop() == 0)
    }

    @Test("the instance the CA reaches answers a challenge another instance placed in the storage")
    func sharedChallenge() throws {
        let pebble = try Pebble()
        let backend = try HTTPTestBackend(name: "web")
        defer { backend.stop() }
        let directory = try TestPaths.makeTemporaryDirectory()
        let storage = directory.appendingPathComponent("acme").path
        // A cannot reach the CA (it trusts another CA), so it never orders; it listens where the
        // CA validates. B orders from a port the CA never sees.
        let otherCA = try TestCertificates()
        let otherCAPath = directory.appendingPathComponent("other-ca.pem").path
        try otherCA.caPEM.write(toFile: otherCAPath, atomically: true, encoding: .utf8)
        let a = try JunctionProcess(
            yaml: Self.config(
                pebble: pebble,
                httpsPort: pebble.tlsPort,
                backend: backend.address,
                storage: storage,
                directoryCA: otherCAPath
            ),
            waitForListeners: 2
        )
        #expect(a.waitForStderr(timeout: 30) { $0.contains("order failed") })
        // A's failure set the back-off every instance sharing the storage keeps (one order per
        // attempt, not one per instance). Cleared here, so B orders now instead of in a minute.
        let retry = "\(storage)/locks/\(Self.domain).retry"
        #expect(FileManager.default.fileExists(atPath: retry))
        try FileManager.default.removeItem(atPath: retry)
        let b = try JunctionProcess(
            yaml: Self.config(
                pebble: pebble,
                httpsPort: try TestPaths.freePort(),
                backend: backend.address,
                storage: storage
            ),
            waitForListeners: 2
        )
        let issuedB = try Self.waitForIssued(b)
        // A loads what B stored within a poll.
        let issuedA = try Self.waitForIssued(a, timeout: 10)
        #expect(issuedA["not_after"] as? Double == issuedB["not_after"] as? Double)
        #expect(a.stderr.contains("loaded the certificate another instance stored"))
        #expect(!a.stderr.contains("order placed"))
        #expect(try Self.verifiedStatus(port: pebble.tlsPort, root: try pebble.root()) == 200)
        #expect(a.stop() == 0)
        #expect(b.stop() == 0)
    }

    @Test("check validates the block without contacting the CA")
    func check() throws {
        let directory = try TestPaths.makeTemporaryDirectory()
        let blocker = directory.appendingPathComponent("file").path
        try "x".write(toFile: blocker, atomically: true, encoding: .utf8)
        func check(_ acme: String) throws -> (Int32, String) {
            let yaml = """
                listeners:
                  - address: 127.0.0.1:0
                    tls:
                      acme:
                \(acme)
                routes:
                  - pool: web
                pools:
                  web:
                    backends:
                      - address: 127.0.0.1:9
                """
            let path = directory.appendingPathComponent("junction-\(UUID().uuidString).yaml").path
            try yaml.write(toFile: path, atomically: true, encoding: .utf8)
            let output = try ProcessRunner.run([TestPaths.junctionBinary, "check", "--config", path], timeout: 60)
            return (output.status, output.stdout + output.stderr)
        }
        // A directory nobody answers is fine for check.
        let (good, goodText) = try check(
            """
                    domains: [chat.example.com]
                    directory: https://127.0.0.1:9/dir
                    storage: \(directory.path)/acme
            """
        )
        #expect(good == 0, "\(goodText)")
        let (bad, badText) = try check(
            """
                    domains: ["*.example.com"]
                    directory: http://ca.example/dir
                    challenge: dns-01
                    key_type: rsa-1024
                    renew_before: soon
            """
        )
        #expect(bad == 1)
        for expected in [
            "listeners[0].tls.acme.domains: \"*.example.com\": a wildcard name needs the dns-01 challenge",
            "listeners[0].tls.acme.directory: expected an https:// URL",
            "listeners[0].tls.acme.challenge: expected one of tls-alpn-01 | http-01",
            "listeners[0].tls.acme.key_type: expected one of ecdsa-p256 | rsa-2048",
            "listeners[0].tls.acme.renew_before: expected a duration",
        ] {
            #expect(badText.contains(expected), "\(expected)\n\(badText)")
        }
        let (http01, http01Text) = try check(
            """
                    domains: [chat.example.com]
                    challenge: http-01
                    storage: \(directory.path)/acme
            """
        )
        #expect(http01 == 1)
        #expect(
            http01Text.contains("listeners[0].tls.acme.challenge: http-01 is answered on a plain listener"),
            "\(http01Text)"
        )
        let (unwritable, unwritableText) = try check(
            """
                    domains: [chat.example.com]
                    storage: \(blocker)/acme
            """
        )
        #expect(unwritable == 1)
        #expect(unwritableText.contains("listeners[0].tls.acme.storage: cannot create \(blocker)"), "\(unwritableText)")
    }
}
