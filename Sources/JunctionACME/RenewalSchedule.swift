#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

/// When a certificate is renewed and how failures are retried: pure arithmetic over dates, so
/// it is tested with tables.
public enum RenewalSchedule {
    /// The first retry after a failed order; each further failure doubles it.
    public static let firstRetry: TimeInterval = 60
    /// The longest wait between two attempts.
    public static let maxRetry: TimeInterval = 3600

    /// When to renew a certificate valid from `notBefore` until `notAfter`: `renewBefore` ahead
    /// of the end, but not in the first third of its life (a `renew_before` longer than the
    /// certificates a CA issues would otherwise order again at once, forever); or the start of the
    /// CA's suggested window (RFC 9773) when that comes first. Never before `now`.
    public static func renewalTime(
        notBefore: Date,
        notAfter: Date,
        renewBefore: TimeInterval,
        suggestedStart: Date?,
        now: Date
    ) -> Date {
        let lifetime = notAfter.timeIntervalSince(notBefore)
        var time = max(notAfter - renewBefore, notBefore + lifetime / 3)
        if let suggestedStart, suggestedStart < time { time = suggestedStart }
        return max(time, now)
    }

    /// The wait after the `failures`-th failure in a row (1 min, 2, 4 ... up to 1 h).
    public static func retryDelay(failures: Int) -> TimeInterval {
        guard failures > 0 else { return 0 }
        let doublings = min(failures - 1, 12)
        return min(Self.firstRetry * Double(1 << doublings), Self.maxRetry)
    }
}
