import NIOCore
import NIOHTTP1

/// How a request's body is delimited on the wire.
public enum BodyFraming: Sendable, Equatable {
    /// No body (no Content-Length, no Transfer-Encoding).
    case none
    /// Exactly this many bytes.
    case contentLength(Int64)
    /// Chunked transfer coding.
    case chunked
}

/// What Junction needs to know about a client request head, read in one pass over its headers.
public struct RequestFacts: Sendable, Equatable {
    /// Body framing after the smuggling checks.
    public var framing: BodyFraming = .none
    /// The effective Host: the Host header, or an absolute-form target's authority (nil when absent).
    public var host: String? = nil
    /// An absolute-form target in origin-form: what goes upstream instead of the target as sent;
    /// its authority is `host` and replaces the client's Host header (nil: the target goes as it is).
    public var originForm: String? = nil
    /// True for `Upgrade: websocket` (with `Connection: upgrade`).
    public var isWebSocketUpgrade = false
    /// True when the client asked to close after this request (or is HTTP/1.0 without keep-alive).
    public var wantsClose = false
    /// True for `Expect: 100-continue`.
    public var expectsContinue = false
    /// The client's X-Request-ID when it is well-formed.
    public var requestID: String? = nil
    /// The Accept-Encoding value (fields joined), read by `compress: true` routes.
    public var acceptEncoding: String? = nil
    /// Referer and User-Agent, for the access log.
    public var referer: String? = nil
    public var userAgent: String? = nil
    /// Header names listed in `Connection` besides close/keep-alive/upgrade (hop-by-hop too); usually nil.
    var connectionTokens: [Substring]? = nil

    public init() {}
}

/// Why a request head is refused; each maps to 400 with a reason.
public enum RequestHeadProblem: Error, Equatable, CustomStringConvertible {
    case contentLengthWithTransferEncoding
    case conflictingContentLength
    case invalidContentLength
    case unsupportedTransferEncoding
    case missingHost
    case multipleHosts
    case invalidHost
    case unsupportedExpectation
    case target(RequestTarget.Problem)

    public var description: String {
        switch self {
        case .contentLengthWithTransferEncoding: return "Content-Length together with Transfer-Encoding"
        case .conflictingContentLength: return "conflicting Content-Length headers"
        case .invalidContentLength: return "invalid Content-Length"
        case .unsupportedTransferEncoding: return "Transfer-Encoding other than chunked"
        case .missingHost: return "HTTP/1.1 request without Host"
        case .multipleHosts: return "more than one Host header"
        case .invalidHost: return "Host is not host[:port]"
        case .unsupportedExpectation: return "unsupported Expect"
        case .target(let problem): return problem.description
        }
    }
}

/// Rewrites heads between client and upstream per the contract: Host kept, hop-by-hop headers
/// (and those `Connection` names) removed both ways, X-Forwarded-For appended, X-Forwarded-Proto,
/// X-Forwarded-Host and X-Real-IP set, X-Request-ID kept or generated and returned.
public enum HeaderRewriter {
    /// Reads and checks a client request head (request smuggling defences live here).
    public static func inspect(_ head: HTTPRequestHead) -> Result<RequestFacts, RequestHeadProblem> {
        var facts = RequestFacts()
        var contentLength: Int64?
        var sawTransferEncoding = false
        var chunkedLast = false
        var hostCount = 0
        var connectionClose = false
        var connectionKeepAlive = false
        var connectionUpgrade = false
        var upgradeWebSocket = false
        for (name, value) in head.headers {
            switch HeaderName(name) {
            case .contentLength:
                guard let length = Int64(value.trimmingOWS()), length >= 0,
                    value.trimmingOWS().utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 })
                else { return .failure(.invalidContentLength) }
                if let existing = contentLength, existing != length { return .failure(.conflictingContentLength) }
                contentLength = length
            case .transferEncoding:
                sawTransferEncoding = true
                // Only "chunked" is forwarded; any other coding we would have to re-frame blindly.
                for token in value.split(separator: ",") {
                    let coding = token.trimmingOWS()
                    guard coding.isEmpty || coding.equalsCaseInsensitive("chunked") else {
                        return .failure(.unsupportedTransferEncoding)
                    }
                    if !coding.isEmpty { chunkedLast = true }
                }
            case .host:
                hostCount += 1
                guard Authority.isValid(value) else { return .failure(.invalidHost) }
                facts.host = value
            case .connection:
                ConnectionOption.forEach(in: value) { option in
                    switch option {
                    case .close: connectionClose = true
                    case .keepAlive: connectionKeepAlive = true
                    case .upgrade: connectionUpgrade = true
                    case .named(let name): facts.connectionTokens = (facts.connectionTokens ?? []) + [name]
                    }
                }
            case .upgrade:
                upgradeWebSocket = value.split(separator: ",").contains {
                    $0.trimmingOWS().equalsCaseInsensitive("websocket")
                }
            case .expect:
                guard value.trimmingOWS().equalsCaseInsensitive("100-continue") else {
                    return .failure(.unsupportedExpectation)
                }
                facts.expectsContinue = true
            case .xRequestID:
                if RequestID.isAcceptable(value) { facts.requestID = value }
            case .acceptEncoding:
                facts.acceptEncoding = facts.acceptEncoding.map { "\($0), \(value)" } ?? value
            case .referer:
                facts.referer = value
            case .userAgent:
                facts.userAgent = value
            default:
                break
            }
        }
        if sawTransferEncoding && contentLength != nil { return .failure(.contentLengthWithTransferEncoding) }
        if sawTransferEncoding && !chunkedLast { return .failure(.unsupportedTransferEncoding) }
        if hostCount > 1 { return .failure(.multipleHosts) }
        if hostCount == 0 && head.version.isAtLeastHTTP11 { return .failure(.missingHost) }
        switch RequestTarget.parse(head.uri, method: head.method.rawValue) {
        case .success(.absolute(let authority, let originForm)):
            // RFC 9112 3.2.2: the target's authority replaces Host.
            facts.host = authority
            facts.originForm = originForm
        case .success(.origin), .success(.asterisk):
            break
        case .failure(let problem):
            return .failure(.target(problem))
        }
        facts.framing =
            sawTransferEncoding ? .chunked : contentLength.map { $0 > 0 ? .contentLength($0) : .none } ?? .none
        facts.isWebSocketUpgrade = upgradeWebSocket && connectionUpgrade && head.method == .GET
        facts.wantsClose = connectionClose || (!head.version.isAtLeastHTTP11 && !connectionKeepAlive)
        return .success(facts)
    }

    /// The head sent upstream, as HTTP/1.1 bytes: same method and target byte for byte, headers
    /// rewritten. This is what the data path writes.
    static func upstreamRequestBytes(
        _ head: HTTPRequestHead,
        facts: RequestFacts,
        clientAddress: String,
        scheme: String,
        requestID: String,
        defaultHost: String,
        allocator: ByteBufferAllocator
    ) -> ByteBuffer {
        var writer = HTTP1HeadWriter(
            allocator: allocator,
            capacity: 256 + head.uri.utf8.count + head.headers.count * 48
        )
        writer.requestLine(method: head.method, target: facts.originForm ?? head.uri)
        self.rewriteRequestHeaders(
            head.headers,
            facts: facts,
            clientAddress: clientAddress,
            scheme: scheme,
            requestID: requestID,
            defaultHost: defaultHost,
            into: &writer
        )
        return writer.finish()
    }

    /// The request header fields sent upstream.
    static func rewriteRequestHeaders<Sink: HeaderFieldSink>(
        _ fields: HTTPHeaders,
        facts: RequestFacts,
        clientAddress: String,
        scheme: String,
        requestID: String,
        defaultHost: String,
        into sink: inout Sink
    ) {
        var forwardedFor: String?
        for (name, value) in fields {
            switch HeaderName(name) {
            case .connection, .keepAlive, .proxyConnection, .te, .trailer, .transferEncoding, .upgrade, .expect,
                .xForwardedProto, .xForwardedHost, .xRealIP, .xRequestID, .contentLength:
                continue
            case .host where facts.originForm != nil:
                continue  // replaced by the target's authority below
            case .xForwardedFor:
                forwardedFor = forwardedFor.map { "\($0), \(value)" } ?? value
                continue
            default:
                if let named = facts.connectionTokens, named.contains(where: { name.equalsCaseInsensitive($0) }) {
                    continue
                }
                sink.append(name: name, value: value)
            }
        }
        if let host = facts.host, facts.originForm != nil {
            sink.append(name: "Host", value: host)
        } else if facts.host == nil {
            sink.append(name: "Host", value: defaultHost)
        }
        switch facts.framing {
        case .none: break
        case .contentLength(let length): sink.append(name: "Content-Length", value: String(length))
        case .chunked: sink.append(name: "Transfer-Encoding", value: "chunked")
        }
        if facts.isWebSocketUpgrade {
            sink.append(name: "Connection", value: "Upgrade")
            sink.append(name: "Upgrade", value: "websocket")
        }
        sink.append(name: "X-Forwarded-For", value: forwardedFor.map { "\($0), \(clientAddress)" } ?? clientAddress)
        sink.append(name: "X-Forwarded-Proto", value: scheme)
        if let host = facts.host { sink.append(name: "X-Forwarded-Host", value: host) }
        sink.append(name: "X-Real-IP", value: clientAddress)
        sink.append(name: "X-Request-ID", value: requestID)
    }

    /// The response head for an HTTP/1.x client, as bytes, and how its body goes on the wire.
    ///
    /// `bodyless` is true for responses to HEAD and for 1xx/204/304; `keepAlive` false adds
    /// `Connection: close`; `setCookie` adds an affinity cookie; `gzip` announces a body Junction
    /// compresses (`CompressionPolicy`).
    static func clientResponseBytes(
        _ upstream: HTTPResponseHead,
        requestID: String,
        clientVersion: HTTPVersion,
        bodyless: Bool,
        keepAlive: Bool,
        isTunnel: Bool = false,
        setCookie: String? = nil,
        gzip: Bool = false,
        rules: ResponseHeaderRules? = nil,
        allocator: ByteBufferAllocator
    ) -> (head: ByteBuffer, framing: WireFraming, closeDelimited: Bool) {
        var writer = HTTP1HeadWriter(
            allocator: allocator,
            capacity: 128 + upstream.headers.count * 48 + (rules?.http1Lines.readableBytes ?? 0)
        )
        writer.statusLine(version: clientVersion, status: upstream.status)
        let (framing, closeDelimited) = self.rewriteResponseHeaders(
            upstream,
            requestID: requestID,
            clientVersion: clientVersion,
            bodyless: bodyless,
            keepAlive: keepAlive,
            isTunnel: isTunnel,
            setCookie: setCookie,
            gzip: gzip,
            rules: rules,
            into: &writer
        )
        return (writer.finish(), framing, closeDelimited)
    }

    /// The response header fields sent to an HTTP/1.x client; returns the body's framing and
    /// whether the body ends with the connection.
    ///
    /// With `gzip` the body's length is unknown (the Content-Length goes), Accept-Ranges goes (byte
    /// ranges of the gzip stream are not those of the upstream's), a strong ETag becomes weak (RFC
    /// 9110 8.8.3: the bytes differ) and Content-Encoding and Vary are added.
    ///
    /// A route's `rules` (`response_headers`) drop every upstream field of a configured name and add
    /// the configured ones after the framing fields; Junction's own additions (gzip's fields, the
    /// affinity cookie, X-Request-ID) follow them and are not the rules' to change.
    static func rewriteResponseHeaders<Sink: HeaderFieldSink>(
        _ upstream: HTTPResponseHead,
        requestID: String,
        clientVersion: HTTPVersion,
        bodyless: Bool,
        keepAlive: Bool,
        isTunnel: Bool,
        setCookie: String? = nil,
        gzip: Bool = false,
        rules: ResponseHeaderRules? = nil,
        into sink: inout Sink
    ) -> (framing: WireFraming, closeDelimited: Bool) {
        let connectionNamed = self.connectionTokens(upstream.headers)
        var contentLength: String?
        for (name, value) in upstream.headers {
            switch HeaderName(name) {
            case .connection, .keepAlive, .proxyConnection, .te, .trailer, .transferEncoding, .xRequestID:
                continue
            case .upgrade:
                if isTunnel { sink.append(name: name, value: value) }
                continue
            case .contentLength:
                if !gzip { contentLength = value }
                continue
            case .acceptRanges where gzip, .contentEncoding where gzip:
                // An upstream `identity` goes: the body is gzip now.
                continue
            case .etag where gzip && !value.hasPrefix("W/"):
                if let rules, rules.covers(name) { continue }
                sink.append(name: name, value: "W/" + value)
                continue
            default:
                if let rules, rules.covers(name) { continue }
                if let connectionNamed, connectionNamed.contains(where: { name.equalsCaseInsensitive($0) }) { continue }
                sink.append(name: name, value: value)
            }
        }
        var framing = WireFraming.none
        var closeDelimited = false
        if isTunnel {
            sink.append(name: "Connection", value: "Upgrade")
        } else if let contentLength, upstream.status != .noContent {
            // HEAD and 304 keep Content-Length: it describes the representation, not this message.
            sink.append(name: "Content-Length", value: contentLength)
            framing = bodyless ? .none : .raw
        } else if !bodyless {
            if clientVersion.isAtLeastHTTP11 {
                sink.append(name: "Transfer-Encoding", value: "chunked")
                framing = .chunked
            } else {
                closeDelimited = true
                framing = .raw
            }
        }
        if !isTunnel && (!keepAlive || closeDelimited) {
            sink.append(name: "Connection", value: "close")
        } else if !isTunnel && !clientVersion.isAtLeastHTTP11 {
            sink.append(name: "Connection", value: "keep-alive")
        }
        if gzip {
            sink.append(name: "Content-Encoding", value: "gzip")
            sink.append(name: "Vary", value: "Accept-Encoding")
        }
        if let rules { sink.appendRules(rules) }
        if let setCookie { sink.append(name: "Set-Cookie", value: setCookie) }
        sink.append(name: "X-Request-ID", value: requestID)
        return (framing, closeDelimited)
    }

    /// Names listed in `Connection` besides the standard options, or nil (the usual case).
    static func connectionTokens(_ headers: HTTPHeaders) -> [Substring]? {
        var tokens: [Substring]?
        // Only a 10-byte name can be "Connection": most headers are skipped on their length.
        for (name, value) in headers where name.utf8.count == 10 && HeaderName(name) == .connection {
            ConnectionOption.forEach(in: value) { option in
                if case .named(let name) = option { tokens = (tokens ?? []) + [name] }
            }
        }
        return tokens
    }
}

/// The header names the rewriter cares about, recognised without allocating.
enum HeaderName: Equatable {
    case connection, keepAlive, proxyConnection, te, trailer, transferEncoding, upgrade, contentLength, host
    case expect, xForwardedFor, xForwardedProto, xForwardedHost, xRealIP, xRequestID
    case acceptEncoding, acceptRanges, contentEncoding, etag, referer, userAgent
    case other

    @inline(__always)
    init(_ name: String) {
        // Dispatch on length first so most headers are rejected with one comparison.
        var name = name
        self = name.withUTF8 { bytes -> HeaderName in
            switch bytes.count {
            case 2: return bytes.equalsLowercase("te") ? .te : .other
            case 4:
                if bytes.equalsLowercase("host") { return .host }
                return bytes.equalsLowercase("etag") ? .etag : .other
            case 6: return bytes.equalsLowercase("expect") ? .expect : .other
            case 7:
                if bytes.equalsLowercase("upgrade") { return .upgrade }
                if bytes.equalsLowercase("referer") { return .referer }
                return bytes.equalsLowercase("trailer") ? .trailer : .other
            case 9: return bytes.equalsLowercase("x-real-ip") ? .xRealIP : .other
            case 10:
                if bytes.equalsLowercase("connection") { return .connection }
                if bytes.equalsLowercase("user-agent") { return .userAgent }
                return bytes.equalsLowercase("keep-alive") ? .keepAlive : .other
            case 12: return bytes.equalsLowercase("x-request-id") ? .xRequestID : .other
            case 13: return bytes.equalsLowercase("accept-ranges") ? .acceptRanges : .other
            case 14: return bytes.equalsLowercase("content-length") ? .contentLength : .other
            case 15:
                if bytes.equalsLowercase("x-forwarded-for") { return .xForwardedFor }
                return bytes.equalsLowercase("accept-encoding") ? .acceptEncoding : .other
            case 16:
                if bytes.equalsLowercase("proxy-connection") { return .proxyConnection }
                if bytes.equalsLowercase("content-encoding") { return .contentEncoding }
                return bytes.equalsLowercase("x-forwarded-host") ? .xForwardedHost : .other
            case 17:
                if bytes.equalsLowercase("transfer-encoding") { return .transferEncoding }
                return bytes.equalsLowercase("x-forwarded-proto") ? .xForwardedProto : .other
            default: return .other
            }
        }
    }
}

extension Collection<UInt8> {
    /// ASCII case-insensitive equality with a lowercase literal (header names, `Connection`
    /// options), on any bytes: a name's buffer or a slice of a String's UTF-8.
    @inline(__always)
    func equalsLowercase(_ lowercase: StaticString) -> Bool {
        guard self.count == lowercase.utf8CodeUnitCount else { return false }
        var other = lowercase.utf8Start
        for byte in self {
            let folded = byte >= 0x41 && byte <= 0x5A ? byte | 0x20 : byte
            if folded != other.pointee { return false }
            other += 1
        }
        return true
    }
}

extension StringProtocol {
    /// Without leading and trailing spaces and tabs (HTTP's optional whitespace).
    func trimmingOWS() -> SubSequence {
        var start = self.startIndex
        var end = self.endIndex
        while start < end, self[start] == " " || self[start] == "\t" { start = self.index(after: start) }
        while end > start, self[self.index(before: end)] == " " || self[self.index(before: end)] == "\t" {
            end = self.index(before: end)
        }
        return self[start..<end]
    }

    /// ASCII case-insensitive equality.
    func equalsCaseInsensitive<Other: StringProtocol>(_ other: Other) -> Bool {
        guard self.utf8.count == other.utf8.count else { return false }
        return zip(self.utf8, other.utf8).allSatisfy { a, b in
            a == b || (a | 0x20 == b | 0x20 && (a | 0x20) >= 0x61 && (a | 0x20) <= 0x7A)
        }
    }
}
