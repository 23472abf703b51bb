#if canImport(Glibc)
    import Glibc
#endif

/// What an upgrading process hands the process it starts, in environment variables (the shape of
/// systemd's `LISTEN_FDS`; docs/operations.md documents them):
///
/// - `JUNCTION_LISTEN_FDS`: the listening sockets, comma-separated entries of four fields separated
///   by spaces: the descriptor, `listener` or `admin`, the listener's name (percent-encoded; `-`
///   for the admin listener) and its configured `host:port`, e.g.
///   `3 listener https 0.0.0.0:8443,4 admin - 127.0.0.1:9901`;
/// - `JUNCTION_READY_FD`: the pipe the new process writes `ready <pid>` to once it serves;
/// - `JUNCTION_STDERR_FD`: the real stderr, which the new process takes as its fd 2 once ready (until
///   then its stderr is a pipe the old process reads, to log the tail if it fails);
/// - `JUNCTION_GO_FD`: a pipe the old process closes once it stopped accepting; the new process
///   accepts only then, so the two never accept on one socket at once;
/// - `JUNCTION_UPGRADE_FROM`: the old process's pid, for the log.
public struct Handover: Sendable, Equatable {
    /// Whether a socket is a client-facing listener or the admin listener.
    public enum Kind: String, Sendable {
        case listener
        case admin
    }

    /// One inherited listening socket.
    public struct Socket: Sendable, Equatable {
        public var descriptor: CInt
        public var kind: Kind
        /// The listener's name (empty for the admin listener).
        public var name: String
        /// The configured `host:port` it was bound for (`HostPort.description`).
        public var address: String

        public init(descriptor: CInt, kind: Kind, name: String, address: String) {
            self.descriptor = descriptor
            self.kind = kind
            self.name = name
            self.address = address
        }
    }

    /// The environment variables, by role.
    public enum Variable {
        public static let sockets = "JUNCTION_LISTEN_FDS"
        public static let ready = "JUNCTION_READY_FD"
        public static let standardError = "JUNCTION_STDERR_FD"
        public static let previousPID = "JUNCTION_UPGRADE_FROM"
        public static let go = "JUNCTION_GO_FD"
        static let all = [sockets, ready, standardError, previousPID, go]
    }

    public var sockets: [Socket]
    /// The write end of the ready pipe.
    public var readyDescriptor: CInt
    /// The real stderr to take once ready (nil: keep fd 2 as it is).
    public var standardErrorDescriptor: CInt?
    /// The read end of the go pipe: accept once it ends (nil: accept at once).
    public var goDescriptor: CInt?
    /// The process that started this one.
    public var previousPID: Int32

    public init(
        sockets: [Socket],
        readyDescriptor: CInt,
        standardErrorDescriptor: CInt?,
        goDescriptor: CInt? = nil,
        previousPID: Int32
    ) {
        self.sockets = sockets
        self.readyDescriptor = readyDescriptor
        self.standardErrorDescriptor = standardErrorDescriptor
        self.goDescriptor = goDescriptor
        self.previousPID = previousPID
    }

    /// A malformed hand-over, as one line naming the variable.
    public struct ParseError: Error, Equatable, CustomStringConvertible {
        public var description: String
    }

    /// The hand-over in `environment`; nil when this process was not started by an upgrade (no
    /// `JUNCTION_LISTEN_FDS`).
    public static func parse(_ environment: [String: String]) throws(ParseError) -> Handover? {
        guard let list = environment[Variable.sockets] else { return nil }
        var sockets: [Socket] = []
        for entry in list.isEmpty ? [] : list.split(separator: ",", omittingEmptySubsequences: false) {
            let fields = entry.split(separator: " ", omittingEmptySubsequences: false)
            guard fields.count == 4 else {
                throw ParseError(
                    description:
                        "\(Variable.sockets): entry \"\(entry)\" is not \"<fd> listener|admin <name> <host:port>\""
                )
            }
            let descriptor = try Self.descriptor(String(fields[0]), variable: Variable.sockets)
            guard let kind = Kind(rawValue: String(fields[1])) else {
                throw ParseError(description: "\(Variable.sockets): \"\(fields[1])\" is neither listener nor admin")
            }
            guard let name = Self.percentDecoded(String(fields[2])) else {
                throw ParseError(description: "\(Variable.sockets): bad percent-encoding in \"\(fields[2])\"")
            }
            guard !fields[3].isEmpty else {
                throw ParseError(description: "\(Variable.sockets): entry \"\(entry)\" has no address")
            }
            guard !sockets.contains(where: { $0.descriptor == descriptor }) else {
                throw ParseError(description: "\(Variable.sockets): descriptor \(descriptor) is listed twice")
            }
            sockets.append(
                Socket(descriptor: descriptor, kind: kind, name: kind == .admin ? "" : name, address: String(fields[3]))
            )
        }
        guard let ready = environment[Variable.ready] else {
            throw ParseError(description: "\(Variable.sockets) is set but \(Variable.ready) is not")
        }
        let readyDescriptor = try Self.descriptor(ready, variable: Variable.ready)
        var standardError: CInt?
        if let text = environment[Variable.standardError] {
            standardError = try Self.descriptor(text, variable: Variable.standardError)
        }
        var go: CInt?
        if let text = environment[Variable.go] {
            go = try Self.descriptor(text, variable: Variable.go)
        }
        let previous = environment[Variable.previousPID].flatMap { Int32($0) } ?? 0
        return Handover(
            sockets: sockets,
            readyDescriptor: readyDescriptor,
            standardErrorDescriptor: standardError,
            goDescriptor: go,
            previousPID: previous
        )
    }

    /// The variables that hand this over.
    public var environment: [String: String] {
        var variables = [
            Variable.sockets: self.sockets.map {
                "\($0.descriptor) \($0.kind.rawValue) \($0.kind == .admin ? "-" : Self.percentEncoded($0.name)) \($0.address)"
            }.joined(separator: ","),
            Variable.ready: String(self.readyDescriptor),
            Variable.previousPID: String(self.previousPID),
        ]
        if let standardError = self.standardErrorDescriptor {
            variables[Variable.standardError] = String(standardError)
        }
        if let go = self.goDescriptor {
            variables[Variable.go] = String(go)
        }
        return variables
    }

    /// Reads the hand-over from this process's environment and removes its variables, so a process
    /// this one starts later never sees stale descriptors.
    public static func takeFromEnvironment() throws(ParseError) -> Handover? {
        var environment: [String: String] = [:]
        for name in Variable.all {
            if let value = getenv(name) { environment[name] = String(cString: value) }
        }
        for name in Variable.all { unsetenv(name) }
        return try self.parse(environment)
    }

    private static func descriptor(_ text: String, variable: String) throws(ParseError) -> CInt {
        guard let value = CInt(text), value >= 3 else {
            throw ParseError(description: "\(variable): \"\(text)\" is not a file descriptor number (3 or more)")
        }
        return value
    }

    /// Names may hold anything YAML allows; the list's separators (space, comma) and `%` are
    /// encoded, and everything outside `[A-Za-z0-9._:-]` with them.
    static func percentEncoded(_ text: String) -> String {
        var out = ""
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: ":"),
                UInt8(ascii: "-"):
                out.unicodeScalars.append(Unicode.Scalar(byte))
            default:
                let hex = Array("0123456789ABCDEF".utf8)
                out += "%" + String(decoding: [hex[Int(byte >> 4)], hex[Int(byte & 15)]], as: UTF8.self)
            }
        }
        return out
    }

    static func percentDecoded(_ text: String) -> String? {
        var bytes: [UInt8] = []
        var utf8 = text.utf8.makeIterator()
        while let byte = utf8.next() {
            guard byte == UInt8(ascii: "%") else {
                bytes.append(byte)
                continue
            }
            guard let high = utf8.next().flatMap(Self.hexValue), let low = utf8.next().flatMap(Self.hexValue) else {
                return nil
            }
            bytes.append(high << 4 | low)
        }
        return String(validating: bytes, as: UTF8.self)
    }

    private static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
        case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
        case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
        default: nil
        }
    }
}
