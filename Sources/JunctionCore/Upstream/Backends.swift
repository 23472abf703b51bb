import Logging
import NIOCore
import Synchronization

import struct NIOConcurrencyHelpers.NIOLockedValueBox

/// The members of one pool, for as long as the pool exists: each `Backend` object (its counts,
/// health and weight) lives here from the moment its address appears until it goes, whatever
/// reloads and DNS refreshes happen in between. `update(_:healthCheck:loops:)` is the only way
/// members change; the reload and DNS discovery both call it.
///
/// The data path reads a per-event-loop copy of the member list (`LoopContext.members(of:)`),
/// updated on each loop, so picking a backend takes no lock.
public final class Backends: Sendable {
    /// The pool's name.
    public let poolName: String
    /// Open WebSocket tunnels to this pool's backends (whatever generation opened them).
    let tunnelCount = Atomic<Int>(0)

    private let state: NIOLockedValueBox<State>

    /// One backend as the config (or DNS) describes it.
    public struct Member: Sendable, Equatable {
        /// The resolved address connections go to.
        public var address: SocketAddress
        /// `ip:port` of `address`.
        public var label: String
        /// The configured `host:port` (a name for DNS backends).
        public var configuredAddress: String
        /// Relative weight, 1...100.
        public var weight: Int

        public init(address: SocketAddress, label: String, configuredAddress: String, weight: Int) {
            self.address = address
            self.label = label
            self.configuredAddress = configuredAddress
            self.weight = weight
        }

        /// What makes two members the same backend: the address and the name it was found by.
        var key: String { Self.key(configuredAddress: self.configuredAddress, label: self.label) }

        static func key(configuredAddress: String, label: String) -> String {
            configuredAddress + " " + label
        }
    }

    /// What an update did.
    public struct Change: Sendable {
        /// Backends that appeared.
        public var added: [Backend] = []
        /// Backends that went (their requests and tunnels finish on the objects they hold).
        public var removed: [Backend] = []
        /// Backends whose weight changed.
        public var reweighted: [Backend] = []
        /// Whether the pool's health check changed.
        public var healthCheckChanged = false

        /// Whether the member set changed.
        public var membersChanged: Bool { !self.added.isEmpty || !self.removed.isEmpty }

        /// `pool`, `added`, `removed` (and `reweighted` when any) for the log line.
        func logMetadata(pool: String) -> [String: Logger.MetadataValue] {
            var metadata: [String: Logger.MetadataValue] = [
                "pool": "\(pool)",
                "added": "\(self.added.map(\.label).sorted().joined(separator: ","))",
                "removed": "\(self.removed.map(\.label).sorted().joined(separator: ","))",
            ]
            if !self.reweighted.isEmpty {
                metadata["reweighted"] =
                    "\(self.reweighted.map { "\($0.label)=\($0.weight)" }.sorted().joined(separator: ","))"
            }
            return metadata
        }
    }

    private struct State {
        var members: [Backend]
        var healthCheck: HealthCheckConfig?
        /// Backends no longer configured with requests or tunnels still open: they drain, then
        /// leave.
        var departed: [Backend] = []
        var drainPolicy = DrainPolicy()
    }

    /// How the pool closes tunnels on purpose (`drain_rate`, `rebalance`).
    public struct DrainPolicy: Sendable, Equatable {
        /// Tunnels closed per second on a draining backend or in a rebalance; 0: none.
        public var rate: Double = 20
        /// Whether a backend joining or coming back healthy rebalances the pool by itself.
        public var autoRebalance = false

        public init(rate: Double = 20, autoRebalance: Bool = false) {
            self.rate = rate
            self.autoRebalance = autoRebalance
        }
    }

    /// An empty pool; `update` fills it.
    public init(poolName: String) {
        self.poolName = poolName
        self.state = NIOLockedValueBox(State(members: [], healthCheck: nil))
    }

    /// A pool holding `backends` as they are (unit tests that need the objects up front).
    init(poolName: String, backends: [Backend]) {
        self.poolName = poolName
        self.state = NIOLockedValueBox(State(members: backends, healthCheck: nil))
    }

    /// The current members (control plane).
    public var all: [Backend] { self.state.withLockedValue { $0.members } }

    /// The pool's active health check, if any.
    public var healthCheck: HealthCheckConfig? { self.state.withLockedValue { $0.healthCheck } }

    /// How the pool closes tunnels on purpose.
    public var drainPolicy: DrainPolicy { self.state.withLockedValue { $0.drainPolicy } }

    func setDrainPolicy(_ policy: DrainPolicy) {
        self.state.withLockedValue { $0.drainPolicy = policy }
    }

    /// Backends that left the pool with requests or tunnels still open (they are draining: an
    /// upgrade still waiting for its 101 becomes a tunnel to close too); the list forgets those
    /// with nothing open.
    var departed: [Backend] {
        self.state.withLockedValue { state in
            state.departed.removeAll { $0.active == 0 }
            return state.departed
        }
    }

    /// The members, then the backends that left with requests or tunnels still open, read together
    /// (a backend leaving between two reads would show twice or not at all): what `/status` and
    /// `/metrics` list.
    var listed: (members: [Backend], departed: [Backend]) {
        self.state.withLockedValue { state in
            state.departed.removeAll { $0.active == 0 }
            return (state.members, state.departed)
        }
    }

    /// Makes `members` the pool's backends, in that order: a backend already here keeps its object
    /// (counts, health, and what the admin API set), taking the new configured weight; new ones are
    /// created (or, when they left with tunnels still open, come back as they were, taking traffic
    /// again); missing ones drain and leave.
    /// Each loop in `loops` picks up the new list on its next turn (a loop made later starts from
    /// the members at hand).
    @discardableResult
    func update(
        _ members: [Member],
        healthCheck: HealthCheckConfig?,
        loops: [LoopContexts.Loop] = []
    ) -> Change {
        var change = Change()
        let next: [Backend] = self.state.withLockedValue { state in
            change.healthCheckChanged = state.healthCheck != healthCheck
            var existing: [String: Backend] = [:]
            for backend in state.members {
                existing[backend.memberKey] = backend
            }
            var departed: [String: Backend] = [:]
            for backend in state.departed {
                departed[backend.memberKey] = backend
            }
            var next: [Backend] = []
            var seen: Set<String> = []
            for member in members where seen.insert(member.key).inserted {
                if let backend = existing.removeValue(forKey: member.key) {
                    if backend.configuredWeight != member.weight {
                        backend.setConfiguredWeight(member.weight)
                        change.reweighted.append(backend)
                    }
                    if change.healthCheckChanged { backend.setHealthCheck(healthCheck) }
                    next.append(backend)
                } else if let backend = departed.removeValue(forKey: member.key) {
                    // Back before its tunnels were all closed (a DNS answer flapping): the same
                    // object, taking traffic again.
                    backend.setConfiguredWeight(member.weight)
                    backend.setHealthCheck(healthCheck)
                    backend.setDrain(.none)
                    change.added.append(backend)
                    next.append(backend)
                } else {
                    let backend = Backend(
                        address: member.address,
                        label: member.label,
                        weight: member.weight,
                        poolName: self.poolName,
                        configuredAddress: member.configuredAddress,
                        healthCheck: healthCheck
                    )
                    change.added.append(backend)
                    next.append(backend)
                }
            }
            change.removed = state.members.filter { existing[$0.memberKey] != nil }
            for backend in change.removed {
                backend.setDrain(.removed)
            }
            state.departed = departed.values.filter { $0.active > 0 } + change.removed.filter { $0.active > 0 }
            state.members = next
            state.healthCheck = healthCheck
            return next
        }
        if change.membersChanged {
            for loop in loops {
                loop.execute { $0.setMembers(next, of: self) }
            }
        }
        return change
    }

    /// The members as `update` takes them (DNS discovery keeps a name's last addresses this way).
    func members(configuredAs configuredAddress: String) -> [Member] {
        self.all.filter { $0.configuredAddress == configuredAddress }.map {
            Member(
                address: $0.address,
                label: $0.label,
                configuredAddress: $0.configuredAddress,
                weight: $0.configuredWeight
            )
        }
    }
}

extension Backend {
    /// This backend's `Backends.Member.key`.
    fileprivate var memberKey: String {
        Backends.Member.key(configuredAddress: self.configuredAddress, label: self.label)
    }
}
