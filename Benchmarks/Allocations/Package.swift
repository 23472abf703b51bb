// swift-tools-version: 6.1
import PackageDescription

/// Allocation budgets of Junction's hot paths, with package-benchmark (ordo-one/benchmark): each
/// benchmark drives real Junction code on `EmbeddedChannel`s and counts mallocs; the budgets in
/// `Thresholds/` are checked in CI (`run.sh check`). A package of its own so the main build stays
/// fast. Junction's internals are reached with `@testable import`, so the benchmarks run on a debug
/// build (`run.sh` passes `--benchmark-build-configuration debug`).
let package = Package(
    name: "junction-allocations",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(name: "junction", path: "../.."),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-http2.git", from: "1.46.0"),
        .package(url: "https://github.com/ordo-one/benchmark.git", from: "1.38.1", traits: ["MallocInterposer"]),
    ],
    targets: [
        .executableTarget(
            name: "HotPaths",
            dependencies: [
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "JunctionCore", package: "junction"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOHPACK", package: "swift-nio-http2"),
            ],
            path: "Benchmarks/HotPaths",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        )
    ]
)
