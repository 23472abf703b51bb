import Foundation
import Testing

/// `compress: true` routes with curl as the client: what is gzipped decompresses to the backend's
/// bytes, and what must not be touched is not.
@Suite("Compression", .junctionTimeLimit(minutes: 3))
struct CompressionTests {
    /// Junction with a plain listener and an h2c one; `plain.test` routes to the monolith without
    /// compression, everything else with it.
    final class Setup {
        let monolith: HTTPTestBackend
        let junction: JunctionProcess
        let directory: URL

        init() throws {
            self.monolith = try HTTPTestBackend(name: "monolith")
            self.directory = try TestPaths.makeTemporaryDirectory()
            let yaml = """
                threads: 2
                listeners:
                  - name: http
                    address: 127.0.0.1:0
                  - name: h2c
                    address: 127.0.0.1:0
                    http2: true
                routes:
                  - name: plain
                    match:
                      host: plain.test
                    pool: monolith
                  - name: monolith
                    pool: monolith
                    compress: true
                pools:
                  monolith:
                    backends:
                      - address: \(self.monolith.address)
                logging:
                  access_log: "off"

                """
            self.junction = try JunctionProcess(yaml: yaml, waitForListeners: 2)
        }

        deinit {
            self.monolith.stop()
            try? FileManager.default.removeItem(at: self.directory)
        }

        var http: String { "http://\(self.junction.address("http"))" }
        var h2c: String { "http://\(self.junction.address("h2c"))" }

        /// One request with curl: the response headers (lowercased names) and the body bytes as received.
        func fetch(_ url: String, _ arguments: [String] = []) throws -> (headers: [String: [String]], body: Data) {
            let name = UUID().uuidString
            let headerFile = self.directory.appendingPathComponent("\(name).headers").path
            let bodyFile = self.directory.appendingPathComponent("\(name).body").path
            try Curl.run(arguments + ["-D", headerFile, "-o", bodyFile, url])
            var headers: [String: [String]] = [:]
            for line in try String(contentsOfFile: headerFile, encoding: .utf8).split(separator: "\r\n") {
                guard let colon = line.firstIndex(of: ":") else { continue }
                let name = line[..<colon].lowercased()
                headers[name, default: []].append(
                    line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
                )
            }
            return (headers, try Data(contentsOf: URL(fileURLWithPath: bodyFile)))
        }
    }

    @Test(
        "Compressible JSON is gzipped (known length, chunked, HTTP/2) and decompresses to the original",
        arguments: [
            ("http", "/json?items=2000", [String]()),
            ("http", "/json?items=2000&chunked=1", []),
            ("h2c", "/json?items=2000", ["--http2-prior-knowledge"]),
            ("h2c", "/json?items=2000&chunked=1", ["--http2-prior-knowledge"]),
        ]
    )
    func gzipped(listener: String, path: String, extra: [String]) throws {
        let setup = try Setup()
        let base = listener == "http" ? setup.http : setup.h2c
        let original = Data(HTTPTestBackend.jsonBody(items: 2000).utf8)

        // As sent: gzip bytes, announced, with the length and byte ranges gone and the ETag weakened.
        let raw = try setup.fetch(base + path, extra + ["-H", "Accept-Encoding: gzip"])
        #expect(raw.headers["content-encoding"] == ["gzip"], "\(raw.headers)")
        #expect(raw.headers["vary"]?.contains("Accept-Encoding") == true, "\(raw.headers)")
        #expect(raw.headers["content-length"] == nil, "\(raw.headers)")
        #expect(raw.headers["accept-ranges"] == nil, "\(raw.headers)")
        #expect(raw.headers["etag"] == ["W/\"v1\""], "\(raw.headers)")
        #expect(raw.body.starts(with: [0x1F, 0x8B]), "a gzip member starts with 1f 8b")
        #expect(raw.body.count * 5 < original.count, "\(raw.body.count) compressed bytes for \(original.count)")

        // As curl decodes it: the backend's bytes exactly.
        let decoded = try setup.fetch(base + path, extra + ["--compressed"])
        #expect(decoded.body == original, "decoded \(decoded.body.count) bytes, sent \(original.count)")
    }

    @Test("Already-compressed, tiny, event-stream, not-accepted and compress: false responses are left alone")
    func leftAlone() throws {
        let setup = try Setup()
        let gzip = ["-H", "Accept-Encoding: gzip"]

        let precompressed = try setup.fetch(setup.http + "/precompressed", gzip)
        #expect(precompressed.headers["content-encoding"] == ["gzip"], "one Content-Encoding: \(precompressed.headers)")
        #expect(precompressed.headers["content-length"] == ["4096"])
        #expect(precompressed.body == Data(HTTPTestBackend.precompressedBody), "the backend's bytes untouched")

        let tiny = try setup.fetch(setup.http + "/json?items=2", gzip)
        #expect(tiny.headers["content-encoding"] == nil, "\(tiny.headers)")
        #expect(tiny.body == Data(HTTPTestBackend.jsonBody(items: 2).utf8))

        let events = try setup.fetch(setup.http + "/events", gzip)
        #expect(events.headers["content-encoding"] == nil, "\(events.headers)")

        let original = Data(HTTPTestBackend.jsonBody(items: 2000).utf8)
        for (what, arguments) in [
            ("no Accept-Encoding", ["-H", "Accept-Encoding:"]),
            ("gzip;q=0", ["-H", "Accept-Encoding: gzip;q=0, identity"]),
            ("compress: false route", gzip + ["-H", "Host: plain.test"]),
        ] {
            let response = try setup.fetch(setup.http + "/json?items=2000", arguments)
            #expect(response.headers["content-encoding"] == nil, "\(what): \(response.headers)")
            #expect(response.headers["content-length"] == [String(original.count)], "\(what): \(response.headers)")
            #expect(response.body == original, "\(what)")
        }
    }
}
