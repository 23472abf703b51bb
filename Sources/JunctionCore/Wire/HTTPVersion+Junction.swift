import NIOHTTP1

extension HTTPVersion {
    /// HTTP/1.1 or later: persistent connections by default, chunked coding, Host required.
    var isAtLeastHTTP11: Bool { self.major > 1 || (self.major == 1 && self.minor >= 1) }
}
