// swift-tools-version: 6.1
import PackageDescription

/// libFuzzer targets for every parser of untrusted bytes in Junction. Built and run by `run.sh`
/// (`-sanitize=fuzzer,address` for the whole graph, so Junction's code is instrumented too); not
/// part of the main package's build.
let fuzzSettings: [SwiftSetting] = [.unsafeFlags(["-parse-as-library"])]

let targets = [
    "FuzzProxyProtocol", "FuzzConnectionSetup", "FuzzHTTP1Front", "FuzzHeaderRewrite", "FuzzHTTP2Head",
    "FuzzRouting", "FuzzHost", "FuzzConfig", "FuzzWebSocketFrames", "FuzzHTTP2Front", "FuzzClientHello",
]

let package = Package(
    name: "junction-fuzz",
    platforms: [.macOS(.v15)],
    products: targets.map { .executable(name: $0, targets: [$0]) },
    dependencies: [
        .package(name: "junction", path: "../.."),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
    ],
    targets: [.target(name: "CLibFuzzer")]
        + targets.map { name in
            .executableTarget(
                name: name,
                dependencies: [
                    "CLibFuzzer",
                    .product(name: "JunctionCore", package: "junction"),
                    .product(name: "NIOCore", package: "swift-nio"),
                    .product(name: "NIOEmbedded", package: "swift-nio"),
                    .product(name: "NIOHTTP1", package: "swift-nio"),
                ],
                path: "Sources/\(name)",
                swiftSettings: fuzzSettings
            )
        }
)
