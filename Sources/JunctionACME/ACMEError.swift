/// What went wrong talking to the CA other than a problem document it sent.
public enum ACMEError: Error, CustomStringConvertible, Sendable {
    /// The answer could not be understood.
    case badResponse(url: String, status: Int, detail: String)
    /// An order, authorization or challenge ended in a state other than the one waited for.
    case failed(what: String, status: String, problem: ACMEProblem?)
    /// Polling went on longer than allowed.
    case timedOut(what: String)
    /// The CA offers no challenge of the configured type for a name.
    case noChallenge(domain: String, type: String)

    public var description: String {
        switch self {
        case .badResponse(let url, let status, let detail):
            return "unexpected answer \(status) from \(url): \(detail)"
        case .failed(let what, let status, let problem):
            return "\(what) is \(status)" + (problem.map { ": \($0)" } ?? "")
        case .timedOut(let what):
            return "\(what) did not finish in time"
        case .noChallenge(let domain, let type):
            return "the CA offers no \(type) challenge for \(domain)"
        }
    }
}
