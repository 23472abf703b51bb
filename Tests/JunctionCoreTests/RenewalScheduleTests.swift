import Foundation
import JunctionACME
import Testing

/// When a certificate is renewed and how failed orders back off: tables over day numbers.
@Suite("Renewal schedule")
struct RenewalScheduleTests {
    static let day: TimeInterval = 86400
    /// Day `n` of a certificate issued at day 0.
    static func day(_ n: Double) -> Date { Date(timeIntervalSince1970: 1_700_000_000 + n * Self.day) }

    /// One row: the certificate's life in days, `renew_before` in days, the CA's suggested start
    /// (day) if any, the current day, and the day the renewal is due.
    struct Row: Sendable, CustomTestStringConvertible {
        var name: String
        var lifetime: Double
        var renewBefore: Double
        var suggested: Double?
        var now: Double
        var expected: Double
        var testDescription: String { self.name }
    }

    static let rows: [Row] = [
        Row(name: "90-day certificate, renew_before 30d: day 60", lifetime: 90, renewBefore: 30, now: 0, expected: 60),
        Row(name: "the default seen from later on: still day 60", lifetime: 90, renewBefore: 30, now: 45, expected: 60),
        Row(
            name: "renew_before 100d on a 90-day certificate: not before a third of its life",
            lifetime: 90,
            renewBefore: 100,
            now: 0,
            expected: 30
        ),
        Row(name: "renew_before equal to the life: a third", lifetime: 90, renewBefore: 90, now: 1, expected: 30),
        Row(name: "just past the third: renew_before counts", lifetime: 90, renewBefore: 59, now: 0, expected: 31),
        Row(name: "6-day certificate, renew_before 2d: day 4", lifetime: 6, renewBefore: 2, now: 0, expected: 4),
        Row(
            name: "the CA's window starts earlier (ARI): it wins",
            lifetime: 90,
            renewBefore: 30,
            suggested: 50,
            now: 0,
            expected: 50
        ),
        Row(
            name: "the CA's window may start before the third",
            lifetime: 90,
            renewBefore: 30,
            suggested: 10,
            now: 0,
            expected: 10
        ),
        Row(
            name: "the CA's window starts later: renew_before wins",
            lifetime: 90,
            renewBefore: 30,
            suggested: 70,
            now: 0,
            expected: 60
        ),
        Row(name: "already due: now, never in the past", lifetime: 90, renewBefore: 30, now: 75, expected: 75),
        Row(name: "expired: now", lifetime: 90, renewBefore: 30, now: 120, expected: 120),
        Row(
            name: "a suggested window in the past: now",
            lifetime: 90,
            renewBefore: 30,
            suggested: 20,
            now: 40,
            expected: 40
        ),
    ]

    @Test("renewalTime", arguments: Self.rows)
    func renewalTime(row: Row) {
        let time = RenewalSchedule.renewalTime(
            notBefore: Self.day(0),
            notAfter: Self.day(row.lifetime),
            renewBefore: row.renewBefore * Self.day,
            suggestedStart: row.suggested.map(Self.day),
            now: Self.day(row.now)
        )
        #expect(time == Self.day(row.expected), "got day \(time.timeIntervalSince(Self.day(0)) / Self.day)")
    }

    @Test(
        "retryDelay: 1 min after the first failure, doubling, capped at 1 h; nothing before a failure",
        arguments: [
            (0, 0), (-3, 0), (1, 60), (2, 120), (3, 240), (4, 480), (5, 960), (6, 1920), (7, 3600), (8, 3600),
            (13, 3600), (64, 3600), (1_000_000, 3600), (Int.max, 3600),
        ] as [(Int, TimeInterval)]
    )
    func retryDelay(failures: Int, delay: TimeInterval) {
        #expect(RenewalSchedule.retryDelay(failures: failures) == delay)
    }

    @Test("The delays never shrink as failures add up")
    func retryDelayMonotonic() {
        var previous: TimeInterval = 0
        for failures in 0...100 {
            let delay = RenewalSchedule.retryDelay(failures: failures)
            #expect(delay >= previous && delay <= RenewalSchedule.maxRetry, "\(failures)")
            previous = delay
        }
    }
}
