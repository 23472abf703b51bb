/// What a front handler needs to know about the listener it serves.
struct ListenerIdentity: Sendable {
    /// The listener's name, for logs.
    let name: String
    /// `http` or `https`, for X-Forwarded-Proto.
    let scheme: String
    /// `host:port` the listener is bound to, the Host of last resort for HTTP/1.0 clients.
    let authority: String
    /// `redirect_https`: answer every request with a 308 to HTTPS on this port instead of proxying.
    var redirectHTTPSPort: Int? = nil
    /// ACME http-01 answers, given at `/.well-known/acme-challenge/<token>` before routing and
    /// before `redirect_https` (nil: this listener answers none).
    var challenges: ChallengeAnswers? = nil
    /// The client's address as a PROXY protocol header announced it (nil: the socket's peer).
    var clientAddress: String? = nil
    /// That address as the per-client limits count it (nil: the socket's peer).
    var clientKey: ClientKey? = nil
}
