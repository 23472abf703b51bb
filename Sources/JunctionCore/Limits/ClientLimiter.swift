import NIOCore
import Synchronization

import struct NIOConcurrencyHelpers.NIOLockedValueBox

/// The process's per-client tables, made when a configuration first needs them and kept across
/// reloads (a route's bucket table by the route's name), and the pace of the log line for
/// connections closed at accept.
///
/// Memory: 1 MiB for the connection and tunnel counts, 1 MiB for the request rate, 256 KiB per
/// route with a `limit` (16 bytes a slot), allocated only for limits that are on and never grown.
/// The lock is taken only when a generation is built (start, reload), never on the data path.
final class ClientLimiter: Sendable {
    /// The tables made so far (nil: that limit was never on).
    private struct Tables {
        var counts: ClientCounts?
        var rates: ClientRates?
        var routes: [String: ClientRates] = [:]
    }

    private let tables = NIOLockedValueBox(Tables())
    private let countsCapacity: Int
    private let ratesCapacity: Int
    private let routeCapacity: Int
    /// When the last "connection closed at accept" line was logged (uptime nanoseconds), and how
    /// many were closed since without a line.
    private let lastRefusalLine = Atomic<UInt64>(0)
    private let unloggedRefusals = Atomic<Int>(0)

    /// At most one line a second about connections closed at accept.
    static let refusalLinePeriod: UInt64 = 1_000_000_000

    init(countsCapacity: Int = 65_536, ratesCapacity: Int = 65_536, routeCapacity: Int = 16_384) {
        self.countsCapacity = countsCapacity
        self.ratesCapacity = ratesCapacity
        self.routeCapacity = routeCapacity
    }

    /// The limits of `config`: the per-client ones and each limited route's, by route name.
    func limits(for config: JunctionConfig) -> (perClient: ClientLimits, routes: [String: RouteLimit]) {
        let settings = config.limits.perClient
        return self.tables.withLockedValue { tables in
            if settings.maxConnections > 0 || settings.maxTunnels > 0, tables.counts == nil {
                tables.counts = ClientCounts(capacity: self.countsCapacity)
            }
            if settings.rate.isOn, tables.rates == nil {
                tables.rates = ClientRates(capacity: self.ratesCapacity)
            }
            var routes: [String: RouteLimit] = [:]
            var kept: [String: ClientRates] = [:]
            for route in config.routes {
                guard let rate = route.limit, rate.isOn else { continue }
                let table = tables.routes[route.name] ?? ClientRates(capacity: self.routeCapacity)
                kept[route.name] = table
                routes[route.name] = RouteLimit(rates: table, bucket: RateBucket(rate))
            }
            // A route this configuration does not limit lets its table go (the generation still
            // running keeps what it holds until it is replaced; a refused reload that dropped a
            // route only costs that route's clients their state: full buckets again).
            tables.routes = kept
            return (ClientLimits(settings: settings, counts: tables.counts, rates: tables.rates), routes)
        }
    }

    /// Frees the idle buckets of every rate table (`ClientExpiry`).
    func sweep(now: UInt64) {
        let tables = self.tables.withLockedValue { $0 }
        tables.rates?.sweep(now: now)
        for table in tables.routes.values { table.sweep(now: now) }
    }

    /// How full the tables are, for `/status`: clients with open connections or WebSockets
    /// counted, clients with a request-rate bucket (the per-client one and each route's), and the
    /// slots each table has.
    struct Usage: Codable, Sendable, Equatable {
        var counted: Int
        var countSlots: Int
        var rated: Int
        var rateSlots: Int
        var routes: [String: Int]

        enum CodingKeys: String, CodingKey {
            case counted
            case countSlots = "count_slots"
            case rated
            case rateSlots = "rate_slots"
            case routes
        }
    }

    /// A scan of every table (off the data path).
    var usage: Usage {
        let tables = self.tables.withLockedValue { $0 }
        return Usage(
            counted: tables.counts?.table.occupied ?? 0,
            countSlots: tables.counts?.table.capacity ?? 0,
            rated: tables.rates?.table.occupied ?? 0,
            rateSlots: tables.rates?.table.capacity ?? 0,
            routes: tables.routes.mapValues { $0.table.occupied }
        )
    }

    /// A connection was closed at accept at `now`: whether to log a line now, with how many were
    /// closed since the last one (this one included); nil: stay quiet (counted for the next line).
    func refusalToLog(now: UInt64) -> Int? {
        self.unloggedRefusals.add(1, ordering: .relaxed)
        let last = self.lastRefusalLine.load(ordering: .relaxed)
        guard last == 0 || now &- last >= Self.refusalLinePeriod else { return nil }
        guard self.lastRefusalLine.compareExchange(expected: last, desired: now, ordering: .relaxed).exchanged else {
            return nil
        }
        return max(1, self.unloggedRefusals.exchange(0, ordering: .relaxed))
    }
}
