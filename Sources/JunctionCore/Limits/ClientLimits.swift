import NIOCore

/// One configuration generation's `limits.per_client`, over the process's tables (which outlive
/// the generation, so a reload keeps every client's counts and buckets). Nil tables: that limit is
/// off, and the data path skips it without a lookup.
final class ClientLimits: Sendable {
    /// What a limit refused, for `junction_limited_total{reason}`.
    enum Reason: String, Sendable {
        case connections, tunnels, requests
    }

    /// The settings.
    let settings: PerClientLimits
    /// Concurrent connections and tunnels (nil: neither is limited).
    let counts: ClientCounts?
    /// The request rate (nil: off).
    let rates: ClientRates?
    /// The rate's bucket.
    let bucket: RateBucket?

    init(settings: PerClientLimits, counts: ClientCounts?, rates: ClientRates?) {
        self.settings = settings
        self.counts = settings.maxConnections > 0 || settings.maxTunnels > 0 ? counts : nil
        self.rates = settings.rate.isOn ? rates : nil
        self.bucket = settings.rate.isOn ? RateBucket(settings.rate) : nil
    }

    /// Whether any limit is on (else the data path does nothing).
    var isOn: Bool { self.counts != nil || self.rates != nil }

    /// What an admission decided.
    enum Admission: Sendable {
        /// Let in; the slot (nil: not counted) is released when it ends.
        case admitted(ClientSlot?)
        /// At the client's limit.
        case refused
    }

    /// Counts one connection of `client`, unless it is at `max_connections`.
    func admitConnection(of client: ClientKey) -> Admission {
        self.admit(.connections, of: client, limit: self.settings.maxConnections)
    }

    /// Counts one WebSocket of `client`, unless it is at `max_tunnels`.
    func admitTunnel(of client: ClientKey) -> Admission {
        self.admit(.tunnels, of: client, limit: self.settings.maxTunnels)
    }

    private func admit(_ kind: ClientCounts.Kind, of client: ClientKey, limit: Int) -> Admission {
        guard let counts = self.counts, limit > 0 else { return .admitted(nil) }
        switch counts.acquire(kind, for: client, limit: limit) {
        case .held(let index):
            return .admitted(ClientSlot(counts: counts, client: client, index: UInt32(index), kind: kind))
        case .untracked: return .admitted(nil)
        case .refused: return .refused
        }
    }

    /// Takes a token of `client`'s bucket at `now` (uptime nanoseconds): nil when within the rate,
    /// else the nanoseconds until a token is back.
    @inline(__always)
    func takeRequest(of client: ClientKey, now: UInt64) -> UInt64? {
        guard let rates = self.rates, let bucket = self.bucket else { return nil }
        return rates.take(for: client, bucket: bucket, now: now)
    }
}

extension RateBucket {
    /// The bucket of a configured rate (`requests_per_second` above 0, and its `burst`).
    init(_ rate: RequestRate) {
        self.init(interval: UInt64(min(1e18, max(1, (1e9 / rate.requestsPerSecond).rounded()))), size: rate.size)
    }
}
