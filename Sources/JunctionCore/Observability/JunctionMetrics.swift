import NIOCore
import Prometheus
import Synchronization

import struct NIOConcurrencyHelpers.NIOLockedValueBox

/// Junction's Prometheus metrics, all in one swift-prometheus registry: per-request counters and
/// durations (handles cached per event loop), and gauges of the live state set when `/metrics` is
/// scraped.
///
/// - `junction_requests_total{route,pool,code}` — counter, `code` the exact status ("200").
/// - `junction_request_duration_seconds{pool}` — histogram, head received to response end.
/// - `junction_upstream_active_connections{pool,backend}` — in-flight requests plus open tunnels.
/// - `junction_backend_healthy{pool,backend}` — 1 when the backend takes new requests.
/// - `junction_tunnels_active{pool}` — open WebSocket tunnels.
/// - `junction_backend_tunnels{pool,backend}` — open WebSocket tunnels per backend.
/// - `junction_certificate_expiry_timestamp_seconds{listener,certificate}` — when each served
///   certificate expires (seconds since the epoch), for an alert well before it does.
/// - `junction_connections_active{listener}` — open client connections.
/// - `junction_acme_orders_total{result}` — ACME orders: `issued`, or `failed` for every attempt
///   that did not end in a certificate (an unreachable directory included).
/// - `junction_log_lines_dropped_total` — log and access-log lines a slow reader made Junction drop.
/// - `junction_tunnels_closed_total{pool,reason}` — WebSocket tunnels ended, by why: `client` or
///   `backend` (the side that sent the first close frame, else ended its side first), `idle`
///   (tunnel_idle), `drain` (a draining backend's, closed at drain_rate), `rebalance`, `shutdown`
///   (the shutdown grace).
/// - `junction_limited_total{listener,reason}` — what the per-client limits refused: `connections`
///   (closed at accept), `tunnels` and `requests` (answered 429).
public final class JunctionMetrics: Sendable {
    /// What `/metrics` renders.
    let registry = PrometheusCollectorRegistry()
    private let droppedLines: Prometheus.Counter
    /// The gauge series the last render set.
    private let gauges = NIOLockedValueBox<[GaugeKey: Prometheus.Gauge]>([:])
    /// `LineWriter.droppedLines` as last added to the counter.
    private let droppedLinesCounted = Atomic<Int>(0)

    /// Request duration buckets, in seconds: 1 ms to 60 s.
    static let durationBuckets: [Duration] = [
        .milliseconds(1), .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50),
        .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1), .seconds(2.5), .seconds(5),
        .seconds(10), .seconds(30), .seconds(60),
    ]

    public init() {
        self.droppedLines = self.registry.makeCounter(
            descriptor: MetricNameDescriptor(
                metricName: "junction_log_lines_dropped",
                unitName: "total",
                helpText: "Log and access-log lines dropped because their reader could not keep up."
            )
        )
        // Both results from 0, so the first failed order is an increase an alert sees.
        for result in ["issued", "failed"] { _ = self.acmeOrders(result: result) }
    }

    func requestCounter(route: String, pool: String, code: UInt) -> Prometheus.Counter {
        self.registry.makeCounter(
            descriptor: MetricNameDescriptor(
                metricName: "junction_requests",
                unitName: "total",
                helpText: "Requests answered, by route, pool and exact status."
            ),
            labels: [("route", route), ("pool", pool), ("code", String(code))]
        )
    }

    func tunnelsClosedCounter(pool: String, reason: String) -> Prometheus.Counter {
        self.registry.makeCounter(
            descriptor: MetricNameDescriptor(
                metricName: "junction_tunnels_closed",
                unitName: "total",
                helpText: "WebSocket tunnels ended, by pool and why."
            ),
            labels: [("pool", pool), ("reason", reason)]
        )
    }

    func limitedCounter(listener: String, reason: String) -> Prometheus.Counter {
        self.registry.makeCounter(
            descriptor: MetricNameDescriptor(
                metricName: "junction_limited",
                unitName: "total",
                helpText: "Connections, WebSockets and requests the per-client limits refused, by listener and reason."
            ),
            labels: [("listener", listener), ("reason", reason)]
        )
    }

    /// Counts one ACME order by how it ended (`issued` or `failed`).
    func acmeOrder(result: String) {
        self.acmeOrders(result: result).increment()
    }

    private func acmeOrders(result: String) -> Prometheus.Counter {
        self.registry.makeCounter(
            descriptor: MetricNameDescriptor(
                metricName: "junction_acme_orders",
                unitName: "total",
                helpText: "ACME orders, by result: issued, or failed (any attempt that did not end in a certificate)."
            ),
            labels: [("result", result)]
        )
    }

    func durationHistogram(pool: String) -> DurationHistogram {
        self.registry.makeDurationHistogram(
            descriptor: MetricNameDescriptor(
                metricName: "junction_request_duration",
                unitName: "seconds",
                helpText: "From the request head to the end of the response."
            ),
            labels: [("pool", pool)],
            buckets: Self.durationBuckets
        )
    }

    /// One served certificate's expiry.
    struct CertificateExpiry {
        var listener: String
        var certificate: String
        var notValidAfter: Double
    }

    /// Sets the gauges from the live state, then renders the Prometheus text format. Series of
    /// backends, pools and listeners that are gone are removed, not left at their last value; a
    /// backend or pool a reload or DNS removed is not gone while it is listed (`PoolListing`: until
    /// its last tunnel or request ends).
    func render(
        pools: [PoolListing],
        listeners: [(name: String, connections: Int)],
        certificates: [CertificateExpiry] = []
    ) -> [UInt8] {
        let now = NIODeadline.now()
        var current: [GaugeKey: Prometheus.Gauge] = [:]
        func set(_ descriptor: MetricNameDescriptor, _ labels: [(String, String)], to value: Double) {
            let gauge = self.registry.makeGauge(descriptor: descriptor, labels: labels)
            gauge.set(to: value)
            current[GaugeKey(name: descriptor.name, labels: labels.map { $0.0 + "=" + $0.1 })] = gauge
        }
        for pool in pools {
            // Two backends of a pool may share an address (a removed one still draining and a
            // configured one under another name): one series, their counts added.
            // A removed backend is no longer health-checked: it has no health series (a value
            // frozen at its removal would hide or raise the health alerts while it drains).
            var seen: [String: (active: Int, tunnels: Int, healthy: Bool?)] = [:]
            var order: [String] = []
            for backend in pool.backends {
                let previous = seen[backend.label]
                if previous == nil { order.append(backend.label) }
                let healthy: Bool? = backend.isRemoved ? nil : backend.isHealthy(at: now)
                seen[backend.label] = (
                    (previous?.active ?? 0) + backend.active,
                    (previous?.tunnels ?? 0) + backend.tunnels,
                    healthy.map { $0 || previous?.healthy == true } ?? previous?.healthy
                )
            }
            for label in order {
                let backend = seen[label]!
                let labels = [("pool", pool.name), ("backend", label)]
                set(Self.activeConnections, labels, to: Double(backend.active))
                if let healthy = backend.healthy { set(Self.backendHealthy, labels, to: healthy ? 1 : 0) }
                set(Self.backendTunnels, labels, to: Double(backend.tunnels))
            }
            set(
                Self.tunnelsActive,
                [("pool", pool.name)],
                to: Double(pool.members.tunnelCount.load(ordering: .relaxed))
            )
        }
        for listener in listeners {
            set(Self.connectionsActive, [("listener", listener.name)], to: Double(listener.connections))
        }
        for certificate in certificates {
            let labels = [("listener", certificate.listener), ("certificate", certificate.certificate)]
            set(Self.certificateExpiry, labels, to: certificate.notValidAfter)
        }
        let gone = self.gauges.withLockedValue { gauges in
            let gone = gauges.filter { current[$0.key] == nil }.map(\.value)
            gauges = current
            return gone
        }
        for gauge in gone { self.registry.unregisterGauge(gauge) }
        let dropped = LineWriter.droppedLines.load(ordering: .relaxed)
        let counted = self.droppedLinesCounted.exchange(dropped, ordering: .relaxed)
        if dropped > counted { self.droppedLines.increment(by: Int64(dropped - counted)) }
        return self.registry.emitToBuffer()
    }

    /// One gauge series: its name and labels.
    private struct GaugeKey: Hashable {
        var name: String
        var labels: [String]
    }

    private static var activeConnections: MetricNameDescriptor {
        MetricNameDescriptor(
            metricName: "junction_upstream_active",
            unitName: "connections",
            helpText: "In-flight requests plus open WebSocket tunnels per backend."
        )
    }
    private static var backendHealthy: MetricNameDescriptor {
        MetricNameDescriptor(
            metricName: "junction_backend",
            unitName: "healthy",
            helpText: "1 when the backend takes new requests, 0 when it is down."
        )
    }
    private static var backendTunnels: MetricNameDescriptor {
        MetricNameDescriptor(
            metricName: "junction_backend",
            unitName: "tunnels",
            helpText: "Open WebSocket tunnels per backend."
        )
    }
    private static var certificateExpiry: MetricNameDescriptor {
        MetricNameDescriptor(
            metricName: "junction_certificate_expiry_timestamp",
            unitName: "seconds",
            helpText: "When each certificate a listener serves expires, in seconds since the epoch."
        )
    }
    private static var tunnelsActive: MetricNameDescriptor {
        MetricNameDescriptor(
            metricName: "junction_tunnels",
            unitName: "active",
            helpText: "Open WebSocket tunnels per pool."
        )
    }
    private static var connectionsActive: MetricNameDescriptor {
        MetricNameDescriptor(
            metricName: "junction_connections",
            unitName: "active",
            helpText: "Open client connections per listener."
        )
    }
}

/// One event loop's handles on the request metrics, cached so a request costs a dictionary lookup
/// and an atomic add, not a registry lookup under its lock.
final class LoopMetrics {
    /// A `junction_requests_total` series.
    private struct RequestKey: Hashable {
        var route: String
        var pool: String
        var code: UInt
    }

    private let metrics: JunctionMetrics
    private var counters: [RequestKey: Prometheus.Counter] = [:]
    private var durations: [String: DurationHistogram] = [:]
    /// The series the previous request went to: most requests go where the one before went, and
    /// comparing the key (the same strings, compared by identity first) costs less than hashing it.
    private var lastRequest: (key: RequestKey, counter: Prometheus.Counter, duration: DurationHistogram)?
    private var tunnelsClosed: [TunnelKey: Prometheus.Counter] = [:]

    /// A `junction_tunnels_closed_total` series.
    private struct TunnelKey: Hashable {
        var pool: String
        var reason: TunnelLedger.CloseReason
    }

    /// A tunnel of `pool` ended for `reason`.
    func tunnelClosed(pool: String, reason: TunnelLedger.CloseReason) {
        let key = TunnelKey(pool: pool, reason: reason)
        if let counter = self.tunnelsClosed[key] {
            counter.increment()
        } else {
            let counter = self.metrics.tunnelsClosedCounter(pool: pool, reason: reason.rawValue)
            self.tunnelsClosed[key] = counter
            counter.increment()
        }
    }

    init(metrics: JunctionMetrics) {
        self.metrics = metrics
    }

    /// A `junction_limited_total` series.
    private struct LimitedKey: Hashable {
        var listener: String
        var reason: ClientLimits.Reason
    }

    private var limited: [LimitedKey: Prometheus.Counter] = [:]

    /// A per-client limit refused something on `listener`.
    func limited(listener: String, reason: ClientLimits.Reason) {
        let key = LimitedKey(listener: listener, reason: reason)
        if let counter = self.limited[key] {
            counter.increment()
        } else {
            let counter = self.metrics.limitedCounter(listener: listener, reason: reason.rawValue)
            self.limited[key] = counter
            counter.increment()
        }
    }

    func requestFinished(route: String?, pool: String?, status: UInt, durationNanoseconds: Int64) {
        let key = RequestKey(route: route ?? "none", pool: pool ?? "none", code: status)
        if let last = self.lastRequest, last.key == key {
            last.counter.increment()
            last.duration.record(.nanoseconds(durationNanoseconds))
            return
        }
        let counter: Prometheus.Counter
        if let cached = self.counters[key] {
            counter = cached
        } else {
            counter = self.metrics.requestCounter(route: key.route, pool: key.pool, code: key.code)
            self.counters[key] = counter
        }
        counter.increment()
        let duration: DurationHistogram
        if let cached = self.durations[key.pool] {
            duration = cached
        } else {
            duration = self.metrics.durationHistogram(pool: key.pool)
            self.durations[key.pool] = duration
        }
        duration.record(.nanoseconds(durationNanoseconds))
        self.lastRequest = (key, counter, duration)
    }
}
