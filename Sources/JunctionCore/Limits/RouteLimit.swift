/// A route's `limit`: its own bucket per client, in a table of its own.
struct RouteLimit: Sendable {
    let rates: ClientRates
    let bucket: RateBucket
}
