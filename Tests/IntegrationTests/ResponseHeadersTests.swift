import Foundation
import Testing

/// `routes[].response_headers` through the real binary: HSTS set and X-Powered-By removed on the
/// monolith route, over HTTP/1.1 and HTTP/2 (h2c, curl), on Junction's own 502 too; the ddp route,
/// which has no such key, passes the backend's fields untouched.
@Suite("Response headers (integration)", .junctionTimeLimit(minutes: 3))
struct ResponseHeadersTests {
    /// The response's header lines, names lowercased, as curl printed them (`-D -`).
    static func fields(_ arguments: [String]) throws -> (status: String, fields: [(String, String)]) {
        let output = try Curl.run(["-D", "-", "-o", "/dev/null"] + arguments)
        var lines = output.components(separatedBy: "\r\n").filter { !$0.isEmpty }
        let status = lines.isEmpty ? "" : lines.removeFirst()
        let fields = lines.compactMap { line -> (String, String)? in
            guard let colon = line.firstIndex(of: ":") else { return nil }
            return (
                line[..<colon].lowercased(),
                String(line[line.index(after: colon)...]).trimmingCharacters(in: .whitespaces)
            )
        }
        return (status, fields)
    }

    static func values(_ fields: [(String, String)], _ name: String) -> [String] {
        fields.filter { $0.0 == name }.map(\.1)
    }

    @Test("HSTS set and X-Powered-By removed on HTTP/1.1, HTTP/2 and a 502 of the route; another route untouched")
    func setAndRemove() throws {
        let monolith = try HTTPTestBackend(name: "monolith")
        // The ddp route goes to the same backend: only the route differs.
        let yaml = TestConfig.split(
            monolith: [monolith.address],
            ddp: [monolith.address],
            extraListeners: """
                  - name: h2c
                    address: 127.0.0.1:0
                    http2: true

                """,
            monolithRouteExtra: """
                    response_headers:
                      Strict-Transport-Security: max-age=63072000; includeSubDomains
                      X-Powered-By: ""
                """
        )
        let junction = try JunctionProcess(yaml: yaml, waitForListeners: 2)
        let http = "http://127.0.0.1:\(junction.port("http"))"
        let h2c = "http://127.0.0.1:\(junction.port("h2c"))"
        let hsts = "max-age=63072000; includeSubDomains"

        for (label, arguments) in [
            ("HTTP/1.1", [http + "/echo?powered=1"]),
            ("HTTP/2", ["--http2-prior-knowledge", h2c + "/echo?powered=1"]),
        ] {
            let (status, fields) = try Self.fields(arguments)
            #expect(status.contains(" 200"), "\(label): \(status)")
            #expect(Self.values(fields, "strict-transport-security") == [hsts], "\(label): \(fields)")
            #expect(Self.values(fields, "x-powered-by").isEmpty, "\(label): \(fields)")
            #expect(Self.values(fields, "x-backend") == ["monolith"], "\(label): other fields stay")
            #expect(Self.values(fields, "x-request-id").count == 1)
        }
        // A response whose backend sent neither field still gets HSTS.
        let (_, plain) = try Self.fields(["--http2-prior-knowledge", h2c + "/echo"])
        #expect(Self.values(plain, "strict-transport-security") == [hsts], "\(plain)")

        // The ddp route has no response_headers: the backend's fields go through as they were.
        for arguments in [
            [http + "/sockjs/info?powered=1"], ["--http2-prior-knowledge", h2c + "/sockjs/info?powered=1"],
        ] {
            let (_, fields) = try Self.fields(arguments)
            #expect(Self.values(fields, "x-powered-by") == ["Express", "Express again"], "\(fields)")
            #expect(Self.values(fields, "strict-transport-security") == ["max-age=1"], "\(fields)")
        }

        // Junction's own answers on the route: the backend is gone, 502 (connection refused), then
        // 503 while it backs off (1 s, then doubling); both with the route's headers. A slow machine
        // can let the first back-off pass between two curls, so the requests go on (at most six)
        // until a 503 has been seen; each refused connect doubles the back-off.
        monolith.stop()
        var statuses: [String] = []
        let kinds = [[http + "/echo"], ["--http2-prior-knowledge", h2c + "/echo"]]
        for attempt in 0..<6 where !(statuses.contains("503") && attempt >= 3) {
            let (status, fields) = try Self.fields(kinds[attempt % 2])
            statuses.append(String(status.split(separator: " ").dropFirst().first ?? ""))
            #expect(status.contains(" 502") || status.contains(" 503"), "\(status)")
            #expect(Self.values(fields, "strict-transport-security") == [hsts], "\(fields)")
        }
        #expect(statuses.first == "502" && statuses.contains("503"), "\(statuses)")
        // The ddp route's own 502 gets no headers: they belong to the monolith route.
        let (ddpStatus, ddpFields) = try Self.fields([http + "/sockjs/info"])
        #expect(ddpStatus.contains(" 502"), "\(ddpStatus)")
        #expect(Self.values(ddpFields, "strict-transport-security").isEmpty)
    }
}
