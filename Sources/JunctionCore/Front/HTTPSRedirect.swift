import NIOHTTP1

/// `redirect_https`: the 308 a plain listener answers with, pointing at the same target on HTTPS.
enum HTTPSRedirect {
    /// `https://<host>:<port><target>`; the host comes from the request (its port dropped), else
    /// `localhost`. Port 443 is left out of the URL.
    static func location(host: String?, port: Int, target: String) -> String {
        var name = Substring(host ?? "localhost")
        if name.hasPrefix("[") {
            if let close = name.firstIndex(of: "]") { name = name[...close] }
        } else if let colon = name.lastIndex(of: ":") {
            name = name[..<colon]
        }
        if name.isEmpty { name = "localhost" }
        // Bytes, not Characters: "/" and a combining mark after it are one Character.
        let path = target.utf8.first == UInt8(ascii: "/") ? target : "/"
        return port == 443 ? "https://\(name)\(path)" : "https://\(name):\(port)\(path)"
    }

    static func body(location: String) -> String {
        "308 Permanent Redirect: \(location)\n"
    }

    /// The 308's head, as a backend's would be (the wire adds X-Request-ID and `Connection`).
    static func responseHead(location: String) -> HTTPResponseHead {
        var headers = HTTPHeaders()
        headers.add(name: "Location", value: location)
        headers.add(name: "Content-Type", value: "text/plain; charset=utf-8")
        headers.add(name: "Content-Length", value: String(self.body(location: location).utf8.count))
        return HTTPResponseHead(version: .http1_1, status: .permanentRedirect, headers: headers)
    }
}
