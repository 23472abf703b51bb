import JunctionACME

/// Presents a challenge on every listener of this process and, through the shared storage, of
/// every instance: the answer goes into `ChallengeAnswers` and into `<storage>/challenges/`, then
/// it waits long enough for the other instances' storage poll to have seen it.
struct ChallengePublisher: ChallengeSolver {
    let answers: ChallengeAnswers
    let storage: ACMEStorage
    /// Twice the other instances' poll interval.
    let propagation: Duration

    func present(_ challenge: PendingChallenge) async throws {
        try self.answers.add(challenge)
        try self.storage.store(challenge)
        try await Task.sleep(for: self.propagation)
    }

    func remove(_ challenge: PendingChallenge) async {
        self.answers.remove(challenge)
        self.storage.remove(self.storage.challengePath(challenge))
    }
}
