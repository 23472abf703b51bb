import Foundation

/// Config files for the tests: the Rocket.Chat split with the test's own backends, on port 0
/// (Junction prints the port it bound).
enum TestConfig {
    /// `monolith` and `ddp` are backend addresses; `tls` adds an HTTPS listener named `https` using
    /// cert.pem/key.pem next to the config (`http2` turns h2 on there); `extraListeners`, `limits`,
    /// the pool extras and `monolithRouteExtra` (keys of the monolith route, indented 4) are inserted
    /// verbatim.
    static func split(
        monolith: [String],
        ddp: [String],
        tls: Bool = false,
        http2: Bool = false,
        extraListeners: String = "",
        limits: String = "",
        ddpPoolExtra: String = "",
        monolithPoolExtra: String = "",
        monolithRouteExtra: String = "",
        accessLog: String = "stdout"
    ) -> String {
        var yaml = """
            threads: 2
            listeners:
              - name: http
                address: 127.0.0.1:0

            """
        if tls {
            yaml += """
                  - name: https
                    address: 127.0.0.1:0
                    http2: \(http2)
                    tls:
                      certificates:
                        - cert: cert.pem
                          key: key.pem

                """
        }
        yaml += extraListeners
        yaml += """
            routes:
              - name: ddp
                match:
                  path_prefix: [/sockjs, /websocket]
                pool: ddp-streamer
              - name: monolith
                pool: monolith
            \(monolithRouteExtra)
            pools:
              ddp-streamer:
                balance: least_conn
            \(ddpPoolExtra)
                backends:
            \(ddp.map { "      - address: \($0)" }.joined(separator: "\n"))
              monolith:
            \(monolithPoolExtra)
                backends:
            \(monolith.map { "      - address: \($0)" }.joined(separator: "\n"))
            logging:
              level: info
              access_log: \(accessLog)

            """
        if !limits.isEmpty {
            yaml += "limits:\n\(limits)\n"
        }
        return yaml
    }
}

/// curl, as a user runs it.
enum Curl {
    /// Runs curl with `arguments`; `-sS` is added. Returns stdout, or throws with stderr on failure.
    @discardableResult
    static func run(_ arguments: [String], timeout: TimeInterval = 120) throws -> String {
        let output = try ProcessRunner.run(["curl", "-sS"] + arguments, timeout: timeout)
        guard output.status == 0 else {
            throw ProcessRunner.TimedOut(
                command: "curl \(arguments.joined(separator: " ")) exited \(output.status): \(output.stderr)"
            )
        }
        return output.stdout
    }

    /// The status code of one request.
    static func status(_ url: String, extra: [String] = []) throws -> Int {
        Int(try self.run(["-o", "/dev/null", "-w", "%{http_code}"] + extra + [url])) ?? -1
    }

    /// The JSON body of one request.
    static func json(_ url: String, extra: [String] = []) throws -> [String: Any] {
        let body = try self.run(extra + [url])
        guard let object = try JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any] else {
            throw ProcessRunner.TimedOut(command: "not JSON from \(url): \(body)")
        }
        return object
    }
}
