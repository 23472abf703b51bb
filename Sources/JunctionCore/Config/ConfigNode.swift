import NIOCore
import Yams

/// A YAML node together with its key path and position, so every value can name itself in an error.
struct ConfigNode {
    /// The YAML node.
    let node: Node
    /// The key path, e.g. `pools.monolith.backends[0]`.
    let path: String
    /// Where the node starts in the file.
    let location: ConfigLocation?

    init(node: Node, path: String, file: String) {
        self.node = node
        self.path = path
        self.location = node.mark.map { ConfigLocation(file: file, line: $0.line, column: $0.column) }
    }

    /// The child at `key` of a mapping node.
    func child(_ key: String, node: Node) -> ConfigNode {
        ConfigNode(node: node, path: self.path.isEmpty ? key : "\(self.path).\(key)", file: self.file)
    }

    /// The element at `index` of a sequence node.
    func element(_ index: Int, node: Node) -> ConfigNode {
        ConfigNode(node: node, path: "\(self.path)[\(index)]", file: self.file)
    }

    var file: String { self.location?.file ?? "" }

    private init(node: Node, path: String, location: ConfigLocation?) {
        self.node = node
        self.path = path
        self.location = location
    }

    /// The resolved YAML type, as words for messages: `a mapping`, `a list`, `the integer 3`...
    var kindDescription: String {
        switch self.node {
        case .mapping: return "a mapping"
        case .sequence: return "a list"
        case .alias: return "an alias"
        case .scalar(let scalar):
            switch self.node.tagName {
            case .null: return "nothing"
            case .bool: return "the boolean \(scalar.string)"
            case .int: return "the integer \(scalar.string)"
            case .float: return "the number \(scalar.string)"
            default: return "\"\(scalar.string)\""
            }
        }
    }
}

/// Reads typed values out of `ConfigNode`s, recording every problem instead of stopping at the first.
final class ConfigReader {
    /// The problems found so far, in the order found.
    private(set) var diagnostics: [ConfigDiagnostic] = []

    var hasErrors: Bool { self.diagnostics.contains { $0.severity == .error } }

    func error(_ node: ConfigNode, _ message: String) {
        self.diagnostics.append(
            ConfigDiagnostic(severity: .error, location: node.location, path: node.path, message: message)
        )
    }

    func warning(_ node: ConfigNode, _ message: String) {
        self.diagnostics.append(
            ConfigDiagnostic(severity: .warning, location: node.location, path: node.path, message: message)
        )
    }

    func record(_ diagnostic: ConfigDiagnostic) {
        self.diagnostics.append(diagnostic)
    }

    /// The entries of a mapping, in file order; unknown keys are reported at the key itself.
    func mapping(_ node: ConfigNode, allowed: [String]) -> [(key: String, value: ConfigNode)]? {
        guard case .mapping(let mapping) = node.node else {
            self.error(node, "expected a mapping, got \(node.kindDescription)")
            return nil
        }
        var entries: [(key: String, value: ConfigNode)] = []
        for (keyNode, valueNode) in mapping {
            let keyConfigNode = ConfigNode(node: keyNode, path: node.path, file: node.file)
            guard case .scalar(let keyScalar) = keyNode else {
                self.error(keyConfigNode, "expected a key, got \(keyConfigNode.kindDescription)")
                continue
            }
            let key = keyScalar.string
            let child = node.child(key, node: valueNode)
            if !allowed.isEmpty && !allowed.contains(key) {
                let keyAtPath = ConfigNode(node: keyNode, path: child.path, file: node.file)
                self.error(keyAtPath, "unknown key \"\(key)\" (expected one of: \(allowed.joined(separator: ", ")))")
                continue
            }
            entries.append((key, child))
        }
        return entries
    }

    /// The elements of a list.
    func sequence(_ node: ConfigNode) -> [ConfigNode]? {
        guard case .sequence(let sequence) = node.node else {
            self.error(node, "expected a list, got \(node.kindDescription)")
            return nil
        }
        return sequence.enumerated().map { node.element($0.offset, node: $0.element) }
    }

    /// A string scalar; numbers and booleans written without quotes are refused.
    func string(_ node: ConfigNode, allowEmpty: Bool = false) -> String? {
        guard case .scalar(let scalar) = node.node, node.node.tagName == .str else {
            self.error(node, "expected a string, got \(node.kindDescription)")
            return nil
        }
        if !allowEmpty && scalar.string.isEmpty {
            self.error(node, "must not be empty")
            return nil
        }
        return scalar.string
    }

    /// A string or a list of strings, as `path_prefix` and `host` take.
    func stringList(_ node: ConfigNode) -> [String]? {
        if case .sequence = node.node {
            guard let elements = self.sequence(node) else { return nil }
            if elements.isEmpty {
                self.error(node, "must list at least one value")
                return nil
            }
            let strings = elements.compactMap { self.string($0) }
            return strings.count == elements.count ? strings : nil
        }
        return self.string(node).map { [$0] }
    }

    /// An integer in `range`.
    func int(_ node: ConfigNode, in range: ClosedRange<Int>) -> Int? {
        guard node.node.tagName == .int, let value = node.node.int else {
            self.error(node, "expected an integer, got \(node.kindDescription)")
            return nil
        }
        guard range.contains(value) else {
            self.error(node, "must be between \(range.lowerBound) and \(range.upperBound), got \(value)")
            return nil
        }
        return value
    }

    /// A number (integer or decimal) in `range`.
    func number(_ node: ConfigNode, in range: ClosedRange<Double>) -> Double? {
        guard node.node.tagName == .int || node.node.tagName == .float, let value = node.node.float,
            value.isFinite
        else {
            self.error(node, "expected a number, got \(node.kindDescription)")
            return nil
        }
        guard range.contains(value) else {
            self.error(
                node,
                "must be between \(Self.format(range.lowerBound)) and \(Self.format(range.upperBound)), got \(Self.format(value))"
            )
            return nil
        }
        return value
    }

    /// `20` rather than `20.0`.
    private static func format(_ value: Double) -> String {
        value == value.rounded() && abs(value) < 1e15 ? String(Int(value)) : String(value)
    }

    /// A boolean (`true`/`false`).
    func bool(_ node: ConfigNode) -> Bool? {
        guard node.node.tagName == .bool, let value = node.node.bool else {
            self.error(node, "expected true or false, got \(node.kindDescription)")
            return nil
        }
        return value
    }

    /// One of a fixed set of words.
    func choice<T: RawRepresentable & CaseIterable>(_ node: ConfigNode, as type: T.Type) -> T?
    where T.RawValue == String {
        let choices = T.allCases.map(\.rawValue)
        guard case .scalar(let scalar) = node.node, let value = T(rawValue: scalar.string) else {
            self.error(node, "expected one of \(choices.joined(separator: " | ")), got \(node.kindDescription)")
            return nil
        }
        return value
    }

    /// A duration such as `250ms`, `5s`, `2m` or `1h`, greater than zero.
    func duration(_ node: ConfigNode) -> TimeAmount? {
        guard case .scalar(let scalar) = node.node, let value = ConfigValueParser.duration(scalar.string) else {
            self.error(node, "expected a duration like 250ms, 5s, 2m, 1h or 30d, got \(node.kindDescription)")
            return nil
        }
        guard value.nanoseconds > 0 else {
            self.error(node, "must be greater than 0")
            return nil
        }
        return value
    }

    /// A size such as `64KiB`, `10MiB`, `1GiB` or a bare number of bytes.
    func size(_ node: ConfigNode) -> Int64? {
        guard case .scalar(let scalar) = node.node, let value = ConfigValueParser.size(scalar.string) else {
            self.error(node, "expected a size like 65536, 64KiB, 10MiB or 1GiB, got \(node.kindDescription)")
            return nil
        }
        return value
    }

    /// A `host:port` address; IPv6 in brackets.
    func hostPort(_ node: ConfigNode, allowPortZero: Bool = false) -> HostPort? {
        guard case .scalar(let scalar) = node.node, node.node.tagName == .str else {
            self.error(node, "expected host:port, got \(node.kindDescription)")
            return nil
        }
        switch ConfigValueParser.hostPort(scalar.string, allowPortZero: allowPortZero) {
        case .success(let hostPort):
            return hostPort
        case .failure(let problem):
            self.error(node, problem.message)
            return nil
        }
    }
}

extension Node {
    /// The resolved YAML tag (str, int, bool, null...) of this node.
    var tagName: Tag.Name { Tag.Name(rawValue: self.tag.rawValue) }
}
