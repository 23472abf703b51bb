import CLibFuzzer

@testable import JunctionCore

/// The path normaliser and the route table with a fuzzed Host (first line) and target (the rest):
/// never traps; a normalised origin-form path starts with "/" and holds no "." or ".." segment.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let text = String(decoding: UnsafeBufferPointer(start: data, count: size), as: UTF8.self)
    let (host, target): (Substring, Substring) =
        text.firstIndex(of: "\n").map { (text[..<$0], text[text.index(after: $0)...]) } ?? ("", text[...])
    let path = PathNormalizer.routingPath(of: String(target))
    // Bytes, not Characters: "/" and a combining mark after it are one Character.
    if target.utf8.first == UInt8(ascii: "/") {
        precondition(path.utf8.first == UInt8(ascii: "/"), "\(path) from \(target)")
        let segments = path.utf8.split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: false)
        precondition(
            !segments.contains { $0.elementsEqual(".".utf8) || $0.elementsEqual("..".utf8) },
            "dot segment left in \(path)"
        )
        // Percent-decoding is one pass (decoding twice is the classic bypass): "%%34d" gives
        // "%4d", which must stay. Without a "%", normalising again changes nothing.
        if !target.utf8.contains(UInt8(ascii: "%")) {
            precondition(
                PathNormalizer.routingPath(of: String(path)).utf8.elementsEqual(path.utf8),
                "not idempotent: \(path)"
            )
        }
    }
    _ = Table.routes.route(hostHeader: host.isEmpty ? nil : String(host), target: String(target))
    return 0
}

/// Routes with path prefixes and host conditions, on a pool that is never used.
enum Table {
    static let routes: RouteTable = {
        var config = JunctionConfig()
        var ddp = RouteConfig(name: "ddp", pool: "p")
        ddp.pathPrefixes = ["/sockjs", "/websocket", "/"]
        ddp.hosts = ["chat.example.com", "*.example.org"]
        var api = RouteConfig(name: "api", pool: "p")
        api.pathPrefixes = ["/api/v1/"]
        config.routes = [ddp, api, RouteConfig(name: "all", pool: "p")]
        let pool = Pool(
            name: "p",
            backends: [],
            balancer: LeastConnectionsBalancer(),
            timeouts: UpstreamTimeouts(),
            retries: 0,
            healthCheck: nil
        )
        return RuntimeConfig(config: config, pools: ["p": pool]).routes
    }()
}

/// SwiftPM links an executable's entry point as `FuzzRouting_main`: hand over to libFuzzer's driver.
@_cdecl("FuzzRouting_main")
public func fuzzerMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    JunctionFuzzMain(argc, argv, fuzz)
}
