import Foundation

/// Debian's `pebble`, a real RFC 8555 ACME server, on loopback with `pebble-challtestsrv` as its
/// DNS (every name resolves to 127.0.0.1, no IPv6 so validations use IPv4). It validates
/// http-01 on `httpPort` and tls-alpn-01 on `tlsPort`, where the test's Junction listens. Its
/// directory's HTTPS certificate is made here with openssl; `root()` is the CA that signs the
/// certificates it issues.
final class Pebble {
    let directory: URL
    let acmePort: Int
    let managementPort: Int
    let dnsPort: Int
    let httpPort: Int
    let tlsPort: Int
    private var processes: [Process] = []

    /// The directory's URL.
    var directoryURL: String { "https://127.0.0.1:\(self.acmePort)/dir" }
    /// The CA of the directory's HTTPS certificate (`directory_ca`).
    var caPath: String { self.directory.appendingPathComponent("tls-ca.pem").path }

    /// Starts both servers; `validityPeriod` (seconds) shortens the certificates pebble issues.
    init(validityPeriod: Int? = nil, environment: [String: String] = [:]) throws {
        self.directory = try TestPaths.makeTemporaryDirectory()
        self.acmePort = try TestPaths.freePort()
        self.managementPort = try TestPaths.freePort()
        self.dnsPort = try TestPaths.freePort()
        self.httpPort = try TestPaths.freePort()
        self.tlsPort = try TestPaths.freePort()
        try self.makeCertificate()
        var config: [String: Any] = [
            "listenAddress": "127.0.0.1:\(self.acmePort)",
            "managementListenAddress": "127.0.0.1:\(self.managementPort)",
            "certificate": self.path("tls-leaf.pem"),
            "privateKey": self.path("tls-leaf.key"),
            "httpPort": self.httpPort,
            "tlsPort": self.tlsPort,
            "ocspResponderURL": "",
            "externalAccountBindingRequired": false,
        ]
        if let validityPeriod { config["certificateValidityPeriod"] = validityPeriod }
        let json = try JSONSerialization.data(withJSONObject: ["pebble": config])
        try json.write(to: self.directory.appendingPathComponent("pebble.json"))
        try self.start(
            [
                "pebble-challtestsrv", "-dns01", "127.0.0.1:\(self.dnsPort)", "-http01", "", "-https01", "",
                "-tlsalpn01", "", "-management", "127.0.0.1:\(try TestPaths.freePort())",
                "-defaultIPv4", "127.0.0.1", "-defaultIPv6", "",
            ],
            log: "challtestsrv.log",
            environment: [:]
        )
        // Every validation at once (no random sleep); a new authorization per order; badNonce on
        // 5% of requests as pebble's default, so the client's retry is exercised.
        var pebbleEnvironment = ["PEBBLE_VA_NOSLEEP": "1", "PEBBLE_AUTHZREUSE": "0"]
        pebbleEnvironment.merge(environment) { $1 }
        try self.start(
            ["pebble", "-config", self.path("pebble.json"), "-dnsserver", "127.0.0.1:\(self.dnsPort)"],
            log: "pebble.log",
            environment: pebbleEnvironment
        )
        let up = JunctionProcess.wait(timeout: 20) {
            (try? Curl.status(self.directoryURL, extra: ["--cacert", self.caPath])) == 200
        }
        if up { return }
        self.stop()
        throw ProcessRunner.TimedOut(command: "pebble at \(self.directoryURL): \(self.log)")
    }

    deinit { self.stop() }

    /// pebble's own output.
    var log: String {
        (try? String(contentsOf: self.directory.appendingPathComponent("pebble.log"), encoding: .utf8)) ?? ""
    }

    /// The PEM of the root that signs what pebble issues (a new one each run), written to a file.
    func root() throws -> String {
        let pem = try Curl.run(["--cacert", self.caPath, "https://127.0.0.1:\(self.managementPort)/roots/0"])
        let path = self.path("issuer-root.pem")
        try pem.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    func stop() {
        for process in self.processes where process.isRunning {
            process.terminate()
            process.waitUntilExit()
        }
        self.processes = []
    }

    private func path(_ name: String) -> String { self.directory.appendingPathComponent(name).path }

    private func start(_ arguments: [String], log: String, environment: [String: String]) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = arguments
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        let logPath = self.path(log)
        FileManager.default.createFile(atPath: logPath, contents: nil)
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: logPath))
        process.standardOutput = handle
        process.standardError = handle
        do {
            try process.run()
        } catch {
            throw ProcessRunner.TimedOut(
                command: "\(arguments[0]) cannot start (apt-get install pebble): \(error)"
            )
        }
        self.processes.append(process)
    }

    /// A throwaway CA and a certificate for 127.0.0.1, for the directory's HTTPS.
    private func makeCertificate() throws {
        let commands: [[String]] = [
            [
                "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                "-keyout", self.path("tls-ca.key"), "-out", self.caPath, "-days", "30", "-subj", "/CN=test ACME CA",
                "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign",
            ],
            [
                "openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                "-keyout", self.path("tls-leaf.key"), "-out", self.path("tls-leaf.csr"), "-subj", "/CN=localhost",
            ],
            [
                "openssl", "x509", "-req", "-in", self.path("tls-leaf.csr"), "-CA", self.caPath, "-CAkey",
                self.path("tls-ca.key"), "-CAcreateserial", "-days", "30", "-extfile", self.path("tls-leaf.ext"),
                "-out", self.path("tls-leaf.pem"),
            ],
        ]
        try "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n"
            .write(toFile: self.path("tls-leaf.ext"), atomically: true, encoding: .utf8)
        for command in commands {
            let output = try ProcessRunner.run(command, timeout: 30)
            guard output.status == 0 else {
                throw ProcessRunner.TimedOut(command: "\(command.joined(separator: " ")): \(output.stderr)")
            }
        }
    }
}
