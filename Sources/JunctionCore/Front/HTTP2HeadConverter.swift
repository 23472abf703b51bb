import NIOCore
import NIOHPACK
import NIOHTTP1
import NIOWebSocket

/// Converts between HTTP/2 header blocks and the HTTP/1.1 heads Junction proxies upstream.
///
/// nghttp2 has already validated the block (pseudo-headers, lowercase names, no connection-specific
/// fields, `:protocol` only with SETTINGS_ENABLE_CONNECT_PROTOCOL); this maps it (RFC 9113 8.3,
/// RFC 8441 for WebSockets).
enum HTTP2HeadConverter {
    /// A request converted for the upstream.
    struct Request {
        var head: HTTPRequestHead
        var facts: RequestFacts
        /// For an RFC 8441 WebSocket: the Sec-WebSocket-Key Junction generated for the upstream
        /// upgrade, to check its Sec-WebSocket-Accept against.
        var webSocketKey: String?
    }

    /// Why a request block cannot be proxied.
    enum Problem: Error, Equatable {
        /// CONNECT without `:protocol websocket` (Junction is not a forward proxy) or another protocol.
        case unsupportedConnect(String)
        /// A pseudo-header is missing.
        case missingPseudoHeader(String)
        /// `:authority` (or Host) is not `uri-host[:port]`.
        case invalidAuthority
        /// Host names another authority than `:authority`.
        case conflictingHost
        /// `:path` does not start with "/" (and is not `*` for OPTIONS): a malformed request,
        /// answered with RST_STREAM PROTOCOL_ERROR (RFC 9113 8.1.1, 8.3.1).
        case invalidPath
        /// `:method` is not one the HTTP/1.1 parsers know (NIO's, llhttp's in Node.js): the request
        /// could not go upstream as HTTP/1.1, as it could not come in as HTTP/1.1.
        case invalidMethod

        /// A field value with a control character other than HTAB: swift-nio-http2 refuses only
        /// NUL, CR and LF, HTTP/1.1 parsers refuse them all (RFC 9110 5.5).
        case invalidFieldValue

        /// Whether the stream is reset instead of answered.
        var isStreamError: Bool { self == .invalidPath || self == .invalidMethod || self == .invalidFieldValue }

        var failure: ProxyFailure {
            switch self {
            case .unsupportedConnect(let what): return .badRequest("\(what) is not supported")
            case .missingPseudoHeader(let name): return .badRequest("missing \(name)")
            case .invalidAuthority: return .badRequest(":authority is not host[:port]")
            case .conflictingHost: return .badRequest("Host differs from :authority")
            case .invalidPath: return .badRequest(":path does not start with /")
            case .invalidMethod: return .badRequest(":method is not a known method")
            case .invalidFieldValue: return .badRequest("a field value holds a control character")
            }
        }
    }

    /// The HTTP/1.1 form of an HTTP/2 request header block. `endStream` is true when the HEADERS
    /// frame ended the stream (no body).
    static func request(_ block: HPACKHeaders, endStream: Bool) -> Result<Request, Problem> {
        var method: String?
        var path: String?
        var authority: String?
        var webSocketProtocol: String?
        var headers = HTTPHeaders()
        headers.reserveCapacity(block.count + 4)
        var facts = RequestFacts()
        var cookies: [String] = []
        var contentLength: Int64?
        var hostField: String?
        for (name, value, _) in block {
            guard name.utf8.first == UInt8(ascii: ":") else {
                guard !value.utf8.contains(where: { ($0 < 0x20 && $0 != 0x09) || $0 == 0x7F }) else {
                    return .failure(.invalidFieldValue)
                }
                switch name {
                case "cookie":
                    // RFC 9113 8.2.3: an HTTP/1.1 hop gets one Cookie field, crumbs joined by "; ".
                    cookies.append(value)
                    continue
                case "host":
                    guard hostField == nil else { return .failure(.conflictingHost) }
                    hostField = value
                    continue
                case "content-length":
                    contentLength = Int64(value)
                case "x-request-id":
                    if RequestID.isAcceptable(value) { facts.requestID = value }
                case "accept-encoding":
                    facts.acceptEncoding = facts.acceptEncoding.map { "\($0), \(value)" } ?? value
                case "referer":
                    facts.referer = value
                case "user-agent":
                    facts.userAgent = value
                default:
                    break
                }
                headers.add(name: name, value: value)
                continue
            }
            switch name {
            case ":method": method = value
            case ":path": path = value
            case ":authority": authority = value
            case ":protocol": webSocketProtocol = value
            default: break  // :scheme; nghttp2 refused any other
            }
        }
        guard let method else { return .failure(.missingPseudoHeader(":method")) }
        if case .RAW = HTTPMethod(rawValue: method) { return .failure(.invalidMethod) }
        if !cookies.isEmpty { headers.add(name: "cookie", value: cookies.joined(separator: "; ")) }
        if let hostField {
            // RFC 9113 8.3.1: a Host naming another entity than :authority is malformed.
            if let authority, !authority.equalsCaseInsensitive(hostField) { return .failure(.conflictingHost) }
            authority = hostField
        }
        if let authority {
            guard !authority.isEmpty, Authority.isValid(authority) else { return .failure(.invalidAuthority) }
            headers.replaceOrAdd(name: "host", value: authority)
            facts.host = authority
        }
        var webSocketKey: String?
        let httpMethod: HTTPMethod
        if method == "CONNECT" {
            guard let webSocketProtocol else { return .failure(.unsupportedConnect("CONNECT")) }
            guard webSocketProtocol.equalsCaseInsensitive("websocket") else {
                return .failure(.unsupportedConnect("CONNECT with :protocol \(webSocketProtocol)"))
            }
            // RFC 8441 -> RFC 6455: a GET with a fresh key; the backend's accept is checked against it.
            let key = NIOWebSocketClientUpgrader.randomRequestKey()
            headers.replaceOrAdd(name: "sec-websocket-key", value: key)
            if !headers.contains(name: "sec-websocket-version") {
                headers.add(name: "sec-websocket-version", value: "13")
            }
            webSocketKey = key
            facts.isWebSocketUpgrade = true
            httpMethod = .GET
        } else {
            httpMethod = HTTPMethod(rawValue: method)
        }
        guard let path else { return .failure(.missingPseudoHeader(":path")) }
        guard path.utf8.first == UInt8(ascii: "/") || (path == "*" && httpMethod == .OPTIONS) else {
            return .failure(.invalidPath)
        }
        if endStream || webSocketKey != nil {
            facts.framing = .none
        } else if let contentLength {
            facts.framing = contentLength > 0 ? .contentLength(contentLength) : .none
        } else {
            // A body of unknown length: chunked on the HTTP/1.1 hop.
            facts.framing = .chunked
        }
        headers.remove(name: "content-length")
        let head = HTTPRequestHead(
            version: HTTPVersion(major: 2, minor: 0),
            method: httpMethod,
            uri: path,
            headers: headers
        )
        return .success(Request(head: head, facts: facts, webSocketKey: webSocketKey))
    }

    /// The HTTP/2 response header block for an upstream HTTP/1.1 response.
    static func response(
        _ upstream: HTTPResponseHead,
        requestID: String,
        bodyless: Bool,
        setCookie: String? = nil,
        gzip: Bool = false,
        rules: ResponseHeaderRules? = nil
    )
        -> HPACKHeaders
    {
        // The upstream's fields, :status and x-request-id: one allocation instead of a doubling each.
        var sink = HPACKResponseSink(
            status: upstream.status.code,
            capacity: upstream.headers.count + 3 + (rules?.http2Fields.count ?? 0)
        )
        _ = HeaderRewriter.rewriteResponseHeaders(
            upstream,
            requestID: requestID,
            clientVersion: HTTPVersion(major: 2, minor: 0),
            bodyless: bodyless,
            keepAlive: true,
            isTunnel: false,
            setCookie: setCookie,
            gzip: gzip,
            rules: rules,
            into: &sink
        )
        return sink.headers
    }

    /// The `:status 200` that accepts an RFC 8441 WebSocket, with the subprotocol and extensions the
    /// backend chose.
    static func webSocketAccepted(
        _ upstream: HTTPResponseHead,
        requestID: String,
        rules: ResponseHeaderRules? = nil
    ) -> HPACKHeaders {
        var sink = HPACKResponseSink(status: 200)
        for name in ["sec-websocket-protocol", "sec-websocket-extensions"] where rules?.covers(name) != true {
            for value in upstream.headers[name] { sink.append(name: name, value: value) }
        }
        if let rules { sink.appendRules(rules) }
        sink.append(name: "x-request-id", value: requestID)
        return sink.headers
    }

    /// Request trailers as HTTP/1.1 fields for the upstream (pseudo-header fields dropped).
    static func http1Fields(_ block: HPACKHeaders) -> HTTPHeaders {
        var headers = HTTPHeaders()
        for (name, value, _) in block where name.utf8.first != UInt8(ascii: ":") {
            headers.add(name: name, value: value)
        }
        return headers
    }

    /// Trailers for an HTTP/2 HEADERS frame.
    static func trailers(_ trailers: HTTPHeaders) -> HPACKHeaders {
        var sink = HPACKResponseSink(status: nil)
        for (name, value) in trailers { sink.append(name: name, value: value) }
        return sink.headers
    }
}

/// Collects response fields for HTTP/2: names lowercased, connection-specific fields dropped
/// (RFC 9113 8.2.2), `:status` first.
struct HPACKResponseSink: HeaderFieldSink {
    private(set) var headers = HPACKHeaders()

    init(status: UInt?, capacity: Int = 0) {
        self.headers.reserveCapacity(capacity)
        if let status { self.headers.add(name: ":status", value: String(status)) }
    }

    mutating func append(name: String, value: String) {
        switch HeaderName(name) {
        case .connection, .keepAlive, .proxyConnection, .transferEncoding, .upgrade, .te, .trailer:
            return
        default:
            let hasUppercase = name.utf8.contains { $0 >= UInt8(ascii: "A") && $0 <= UInt8(ascii: "Z") }
            self.headers.add(name: hasUppercase ? name.lowercased() : name, value: value)
        }
    }

    /// The route's configured fields, lowercased at config load; never connection-specific (`check`
    /// refuses those names).
    mutating func appendRules(_ rules: ResponseHeaderRules) {
        for field in rules.http2Fields { self.headers.add(name: field.name, value: field.value) }
    }
}
