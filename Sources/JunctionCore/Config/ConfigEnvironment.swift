#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Where the `${VAR}` placeholders of a config file take their values: the process environment
/// when Junction runs, a fixed table in tests (so they neither read nor change the real one).
public struct ConfigEnvironment: Sendable, ExpressibleByDictionaryLiteral {
    private let lookup: @Sendable (String) -> String?

    /// Values from `lookup`, which answers nil for an unset variable.
    public init(lookup: @escaping @Sendable (String) -> String?) {
        self.lookup = lookup
    }

    /// Exactly these variables; every other one is unset.
    public init(_ variables: [String: String]) {
        self.lookup = { variables[$0] }
    }

    public init(dictionaryLiteral elements: (String, String)...) {
        self.init(Dictionary(elements, uniquingKeysWith: { $1 }))
    }

    /// The environment of this process. Read at each lookup rather than copied once, so the start
    /// and every reload see the same values without holding a copy of every variable.
    public static let process = ConfigEnvironment { name in
        getenv(name).map { String(cString: $0) }
    }

    /// The value of `name`; nil if it is unset (an empty value is set).
    public func value(of name: String) -> String? {
        self.lookup(name)
    }
}
