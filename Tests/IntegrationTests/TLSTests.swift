import Foundation
import Testing

/// TLS termination checked with openssl s_client and curl against certificates made at run time.
@Suite("TLS", .junctionTimeLimit(minutes: 5))
struct TLSTests {
    static func twoCertificateConfig(backend: String) -> String {
        """
        listeners:
          - name: https
            address: 127.0.0.1:0
            tls:
              certificates:
                - cert: a.pem
                  key: a-key.pem
                - cert: b.pem
                  key: b-key.pem
              min_version: "1.2"
        routes:
          - name: all
            pool: web
        pools:
          web:
            backends:
              - address: \(backend)
        """
    }

    static func sClient(port: Int, _ arguments: [String]) throws -> String {
        let output = try ProcessRunner.run(
            ["openssl", "s_client", "-connect", "127.0.0.1:\(port)"] + arguments,
            stdin: Data(),
            timeout: 20
        )
        return output.stdout + output.stderr
    }

    @Test("TLS 1.0 and 1.1 are refused, 1.2 and 1.3 accepted; SNI picks the certificate")
    func versionsAndSNI() throws {
        let backend = try HTTPTestBackend(name: "web")
        defer { backend.stop() }
        let certificates = try TestCertificates()
        let a = try certificates.issue(commonName: "a.test", dnsNames: ["a.test", "*.a.test"])
        let b = try certificates.issue(commonName: "b.test", dnsNames: ["b.test"])
        let junction = try JunctionProcess(
            yaml: Self.twoCertificateConfig(backend: backend.address),
            files: ["a.pem": a.certificatePEM, "a-key.pem": a.keyPEM, "b.pem": b.certificatePEM, "b-key.pem": b.keyPEM]
        )
        let port = junction.port("https")

        for old in ["-tls1", "-tls1_1"] {
            let output = try Self.sClient(port: port, [old, "-cipher", "DEFAULT:@SECLEVEL=0", "-servername", "a.test"])
            // The alert comes from the server: it refuses the version the client offered.
            #expect(output.contains("alert protocol version"), "\(old): \(output.suffix(400))")
        }
        for current in ["-tls1_2", "-tls1_3"] {
            let output = try Self.sClient(port: port, [current, "-servername", "a.test"])
            #expect(
                output.contains("subject=CN = a.test") || output.contains("subject=CN=a.test"),
                "\(current): \(output.suffix(600))"
            )
            #expect(output.contains(current == "-tls1_2" ? "TLSv1.2" : "TLSv1.3"))
        }
        let picked = [("a.test", "a.test"), ("x.a.test", "a.test"), ("b.test", "b.test"), ("other.test", "a.test")]
        for (serverName, expected) in picked {
            let output = try Self.sClient(port: port, ["-servername", serverName])
            #expect(output.contains("CN = \(expected)") || output.contains("CN=\(expected)"), "SNI \(serverName)")
        }
        // No SNI at all: the first certificate is the default.
        let noSNI = try Self.sClient(port: port, ["-noservername"])
        #expect(noSNI.contains("CN = a.test") || noSNI.contains("CN=a.test"))

        // And real HTTPS requests verify against the CA for both names.
        let directory = try TestPaths.makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let ca = directory.appendingPathComponent("ca.pem").path
        try certificates.caPEM.write(toFile: ca, atomically: true, encoding: .utf8)
        for name in ["a.test", "b.test"] {
            let echo = try Curl.json(
                "https://\(name):\(port)/echo",
                extra: ["--cacert", ca, "--resolve", "\(name):\(port):127.0.0.1"]
            )
            #expect(echo["backend"] as? String == "web")
            let headers = (echo["headers"] as? [[String]] ?? []).map { ($0[0].lowercased(), $0[1]) }
            #expect(headers.contains { $0 == ("x-forwarded-proto", "https") })
        }
        #expect(junction.stop() == 0)
    }

    @Test("min_version 1.3 refuses TLS 1.2")
    func minimumVersion13() throws {
        let backend = try HTTPTestBackend(name: "web")
        defer { backend.stop() }
        let certificates = try TestCertificates()
        let a = try certificates.issue(commonName: "a.test", dnsNames: ["a.test"])
        let yaml = """
            listeners:
              - address: 127.0.0.1:0
                tls:
                  certificates:
                    - cert: a.pem
                      key: a-key.pem
                  min_version: "1.3"
            routes:
              - name: all
                pool: web
            pools:
              web:
                backends:
                  - address: \(backend.address)
            """
        let junction = try JunctionProcess(yaml: yaml, files: ["a.pem": a.certificatePEM, "a-key.pem": a.keyPEM])
        let port = junction.port("127.0.0.1:0")
        #expect(try Self.sClient(port: port, ["-tls1_2"]).contains("alert protocol version"))
        #expect(try Self.sClient(port: port, ["-tls1_3"]).contains("TLSv1.3"))
    }

    @Test("A key that does not match its certificate fails `junction check` with a precise message")
    func mismatchedKey() throws {
        let certificates = try TestCertificates()
        let a = try certificates.issue(commonName: "a.test", dnsNames: ["a.test"])
        let b = try certificates.issue(commonName: "b.test", dnsNames: ["b.test"])
        let expired = try certificates.issue(commonName: "old.test", dnsNames: ["old.test"], expired: true)
        let directory = try TestPaths.makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        for (name, contents) in [
            ("a.pem", a.certificatePEM), ("b-key.pem", b.keyPEM), ("old.pem", expired.certificatePEM),
            ("old-key.pem", expired.keyPEM),
        ] {
            try contents.write(to: directory.appendingPathComponent(name), atomically: true, encoding: .utf8)
        }
        let config = directory.appendingPathComponent("junction.yaml").path
        try """
        listeners:
          - name: https
            address: 127.0.0.1:8443
            tls:
              certificates:
                - cert: a.pem
                  key: b-key.pem
                - cert: old.pem
                  key: missing-key.pem
        routes:
          - name: all
            pool: web
        pools:
          web:
            backends:
              - address: 127.0.0.1:3000
        """.write(toFile: config, atomically: true, encoding: .utf8)
        let output = try ProcessRunner.run([TestPaths.junctionBinary, "check", "--config", config])
        #expect(output.status == 1)
        #expect(
            output.stderr.contains(
                "\(config):6:11: listeners[0].tls.certificates[0].key: \(directory.path)/b-key.pem does not match the certificate in \(directory.path)/a.pem"
            ),
            "\(output.stderr)"
        )
        #expect(
            output.stderr.contains(
                "\(config):8:11: listeners[0].tls.certificates[1].key: cannot read \(directory.path)/missing-key.pem: No such file or directory"
            )
        )

        // An expired certificate is a warning, not an error.
        try FileManager.default.copyItem(
            at: directory.appendingPathComponent("old-key.pem"),
            to: directory.appendingPathComponent("missing-key.pem")
        )
        let fixedConfig = try String(contentsOfFile: config, encoding: .utf8).replacingOccurrences(
            of: "b-key.pem",
            with: "old-key.pem"
        )
        .replacingOccurrences(of: "cert: a.pem", with: "cert: old.pem")
        try fixedConfig.write(toFile: config, atomically: true, encoding: .utf8)
        let warned = try ProcessRunner.run([TestPaths.junctionBinary, "check", "--config", config])
        #expect(warned.status == 0, "\(warned.stderr)")
        #expect(
            warned.stderr.contains(
                "warning: \(config):6:11: listeners[0].tls.certificates[0].cert: the certificate in \(directory.path)/old.pem has expired"
            )
        )
    }

    /// Every TLS 1.2 suite openssl knows, each offered alone: the ones the listener accepts.
    static func acceptedSuites(port: Int, serverName: String) throws -> Set<String> {
        let all = try ProcessRunner.run(["openssl", "ciphers", "-tls1_2", "ALL:COMPLEMENTOFALL"]).stdout
        var accepted = Set<String>()
        for suite in all.trimmingCharacters(in: .whitespacesAndNewlines).split(separator: ":") {
            let output = try Self.sClient(port: port, ["-tls1_2", "-cipher", String(suite), "-servername", serverName])
            if output.contains("Cipher is \(suite)") { accepted.insert(String(suite)) }
        }
        return accepted
    }

    @Test(
        "TLS 1.2 suites: Mozilla's intermediate profile by default (ECDSA and RSA certificates), `ciphers` narrows it"
    )
    func cipherSuites() throws {
        let backend = try HTTPTestBackend(name: "web")
        defer { backend.stop() }
        let certificates = try TestCertificates()
        let ecdsa = try certificates.issue(commonName: "ec.test", dnsNames: ["ec.test"])
        let directory = try TestPaths.makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        // An RSA certificate too: the profile's ECDHE-RSA suites need one.
        let rsa = try ProcessRunner.run([
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=rsa.test",
            "-addext", "subjectAltName=DNS:rsa.test", "-keyout", directory.appendingPathComponent("rsa-key.pem").path,
            "-out", directory.appendingPathComponent("rsa.pem").path,
        ])
        #expect(rsa.status == 0, "\(rsa.stderr)")
        let files = [
            "ec.pem": ecdsa.certificatePEM, "ec-key.pem": ecdsa.keyPEM,
            "rsa.pem": try String(contentsOf: directory.appendingPathComponent("rsa.pem"), encoding: .utf8),
            "rsa-key.pem": try String(contentsOf: directory.appendingPathComponent("rsa-key.pem"), encoding: .utf8),
        ]
        func config(ciphers: String?) -> String {
            """
            listeners:
              - name: https
                address: 127.0.0.1:0
                tls:
                  certificates:
                    - cert: ec.pem
                      key: ec-key.pem
                    - cert: rsa.pem
                      key: rsa-key.pem
            \(ciphers.map { "      ciphers: \($0)" } ?? "")
            routes:
              - name: all
                pool: web
            pools:
              web:
                backends:
                  - address: \(backend.address)
            """
        }
        let junction = try JunctionProcess(yaml: config(ciphers: nil), files: files)
        let port = junction.port("https")
        #expect(
            try Self.acceptedSuites(port: port, serverName: "ec.test")
                == ["ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-ECDSA-AES256-GCM-SHA384", "ECDHE-ECDSA-CHACHA20-POLY1305"]
        )
        #expect(
            try Self.acceptedSuites(port: port, serverName: "rsa.test")
                == ["ECDHE-RSA-AES128-GCM-SHA256", "ECDHE-RSA-AES256-GCM-SHA384", "ECDHE-RSA-CHACHA20-POLY1305"],
            "no static RSA, no CBC"
        )
        // TLS 1.3 is there with its fixed suites.
        #expect(try Self.sClient(port: port, ["-tls1_3", "-servername", "ec.test"]).contains("TLSv1.3"))

        let narrowed = try JunctionProcess(yaml: config(ciphers: "ECDHE+CHACHA20"), files: files)
        #expect(
            try Self.acceptedSuites(port: narrowed.port("https"), serverName: "ec.test")
                == ["ECDHE-ECDSA-CHACHA20-POLY1305"]
        )

        // A list BoringSSL selects nothing from is an error at its key.
        let path = directory.appendingPathComponent("junction.yaml").path
        for (name, contents) in files {
            try contents.write(to: directory.appendingPathComponent(name), atomically: true, encoding: .utf8)
        }
        try config(ciphers: "NO-SUCH-SUITE").write(toFile: path, atomically: true, encoding: .utf8)
        let check = try ProcessRunner.run([TestPaths.junctionBinary, "check", "--config", path])
        #expect(check.status == 1)
        #expect(
            check.stderr.contains(
                "\(path):10:16: listeners[0].tls.ciphers: unknown cipher suite or alias \"NO-SUCH-SUITE\""
            ),
            "\(check.stderr)"
        )
    }
}
