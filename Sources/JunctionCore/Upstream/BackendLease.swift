/// One request or tunnel counted in a backend's active count, for exactly as long as the lease
/// lives: taking it counts, its end (however the owner goes) uncounts. Not copyable, so the count
/// cannot be released twice or leak by a forgotten path; the exchange moves it into the tunnel
/// when a WebSocket upgrade succeeds.
struct BackendLease: ~Copyable {
    /// The backend counted.
    let backend: Backend

    init(_ backend: Backend) {
        self.backend = backend
        backend.retain()
    }

    deinit {
        self.backend.release()
    }
}
