import JunctionACME

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

/// The back-off after failed orders, kept in the shared storage beside the lock
/// (`locks/<first domain>.retry`): every instance sharing it waits for the same next attempt, so
/// the CA sees one order per attempt, not one per instance.
struct RetryRecord {
    /// Failed orders in a row, and when the next may start.
    struct State: Codable {
        var failures: Int
        var at: Date
    }

    let storage: ACMEStorage
    let domain: String

    /// The current back-off; none (0 failures, no wait) when there is no record.
    func read() -> State {
        guard let bytes = try? self.storage.read(self.storage.retryPath(self.domain)),
            let state = try? JSONDecoder().decode(State.self, from: Data(bytes))
        else { return State(failures: 0, at: .distantPast) }
        return state
    }

    func write(failures: Int, at: Date) {
        let state = State(failures: failures, at: at)
        if let bytes = try? JSONEncoder().encode(state) {
            try? self.storage.write(Array(bytes), to: self.storage.retryPath(self.domain))
        }
    }

    func clear() {
        self.storage.remove(self.storage.retryPath(self.domain))
    }
}
