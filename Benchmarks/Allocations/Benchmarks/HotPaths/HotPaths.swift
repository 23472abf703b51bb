import Benchmark
import NIOCore
import NIOEmbedded

@testable import JunctionCore

#if canImport(Glibc)
    import Glibc
#endif

/// Mallocs per operation on Junction's hot paths, each on real code over `EmbeddedChannel`s: a
/// proxied HTTP/1.1 request (front, exchange, pooled upstream connection, response), a WebSocket
/// message relayed through a tunnel each way, a proxied HTTP/2 request (h2c through the libnghttp2
/// front), an HTTP/2 request head converted for upstream, a route match and a least_conn pick. `Thresholds/` holds the budgets CI checks.
let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(
        metrics: [.mallocCountTotal],
        scalingFactor: .kilo,
        maxDuration: .seconds(3),
        maxIterations: 20
    )

    Benchmark("HTTP/1.1 request proxied (front, exchange, pooled upstream, response)") { benchmark in
        let setup = try Exchange()
        // Warm: the upstream connection is made and pooled, buffers sized.
        try setup.roundTrip()
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            try setup.roundTrip()
        }
        benchmark.stopMeasurement()
    }

    Benchmark("HTTP/1.1 request proxied with every per-client limit on") { benchmark in
        let setup = try Exchange(limits: true)
        try setup.roundTrip()
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            try setup.roundTrip()
        }
        benchmark.stopMeasurement()
    }

    Benchmark("WebSocket message relayed both ways through a tunnel") { benchmark in
        let setup = try Exchange()
        try setup.upgrade()
        try setup.echo()
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            try setup.echo()
        }
        benchmark.stopMeasurement()
    }

    Benchmark("HTTP/2 request proxied (libnghttp2 front, exchange, pooled upstream, response)") { benchmark in
        let setup = try HTTP2Exchange()
        try setup.roundTrip()
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            try setup.roundTrip()
        }
        benchmark.stopMeasurement()
    }

    Benchmark("HTTP/2 request head converted and rewritten for upstream") { benchmark in
        let route = HotPathFixtures.routes()
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            blackHole(HotPathFixtures.convertHTTP2Head(route: route))
        }
        benchmark.stopMeasurement()
    }

    Benchmark("Route match") { benchmark in
        let table = HotPathFixtures.routes()
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            blackHole(table.route(hostHeader: "chat.example.com", target: "/websocket?x=1"))
        }
        benchmark.stopMeasurement()
    }

    Benchmark("least_conn pick among 4 backends") { benchmark in
        let backends = try (3001...3004).map { port in
            Backend(
                address: try SocketAddress(ipAddress: "127.0.0.1", port: port),
                label: "127.0.0.1:\(port)",
                weight: 1,
                poolName: "ddp"
            )
        }
        let balancer = LeastConnectionsBalancer()
        let now = NIODeadline.now()
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            blackHole(balancer.select(from: backends, excluding: [], now: now))
        }
        benchmark.stopMeasurement()
    }
}
