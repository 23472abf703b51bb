import Yams

/// Expands the environment placeholders of a config file (`${VAR}`, `${VAR:-default}`, `$$`) in
/// every scalar of the composed YAML tree, before any typed reader looks at it.
///
/// It works on the tree rather than the text, so a value can never change the file's structure and
/// every problem keeps its scalar's line, column and key path. A plain (unquoted) scalar takes its
/// YAML type again from the expanded text (`threads: ${THREADS:-2}` is the integer 2); a quoted or
/// explicitly tagged one keeps its type, so `"${PORT}"` stays a string.
struct ConfigPlaceholderExpander {
    /// Where the variables come from.
    let environment: ConfigEnvironment
    /// Where problems go, each with its scalar's position and key path.
    let reader: ConfigReader

    /// Shown with the problems whose fix is the syntax itself.
    private static let syntax = "(write ${NAME} or ${NAME:-default}; $$ is a literal $)"

    /// `node` with every scalar below it expanded. Mapping keys are left as written (a key is
    /// schema, not a value). A scalar with a problem is left as written and the problem recorded.
    func expand(_ node: ConfigNode) -> Node {
        switch node.node {
        case .scalar(let scalar):
            return self.expand(scalar, at: node)
        case .sequence(let sequence):
            let elements = sequence.enumerated().map { self.expand(node.element($0.offset, node: $0.element)) }
            return .sequence(Node.Sequence(elements, sequence.tag, sequence.style, sequence.mark, sequence.anchor))
        case .mapping(let mapping):
            let pairs = mapping.map { key, value -> (Node, Node) in
                // A key that is not a scalar has no path; the reader refuses it and skips its value.
                guard case .scalar(let keyScalar) = key else { return (key, value) }
                return (key, self.expand(node.child(keyScalar.string, node: value)))
            }
            return .mapping(Node.Mapping(pairs, mapping.tag, mapping.style, mapping.mark, mapping.anchor))
        case .alias:
            // Yams.compose has already replaced every alias by a copy of its anchored node.
            return node.node
        }
    }

    private func expand(_ scalar: Node.Scalar, at node: ConfigNode) -> Node {
        // Most scalars have no `$`; they keep their node as it is.
        guard scalar.string.unicodeScalars.contains("$") else { return node.node }
        let expansion = Self.expand(scalar.string, in: self.environment)
        guard expansion.problems.isEmpty else {
            for problem in expansion.problems { self.reader.error(node, problem) }
            return node.node
        }
        // An implicit tag (a plain scalar without `!!type`) is resolved again from the new text. It
        // is a fresh Tag because resolving a Tag stores the result in that (shared) object.
        let isImplicit = scalar.tag.rawValue == Tag.Name.implicit.rawValue
        let tag = isImplicit ? scalar.tag.copy(with: .implicit) : scalar.tag
        return .scalar(Node.Scalar(expansion.text, tag, scalar.style, scalar.mark, scalar.anchor))
    }

    /// `text` with its placeholders replaced, and every problem found in it (one line each, naming
    /// the placeholder). A `$` followed by neither `{` nor `$` is kept as it is, so values written
    /// before placeholders existed keep their meaning. Values are not expanded again.
    static func expand(_ text: String, in environment: ConfigEnvironment) -> (text: String, problems: [String]) {
        let scalars = text.unicodeScalars
        var result = String.UnicodeScalarView()
        var problems: [String] = []
        var index = scalars.startIndex
        while index < scalars.endIndex {
            let next = scalars.index(after: index)
            guard scalars[index] == "$", next < scalars.endIndex, scalars[next] == "$" || scalars[next] == "{" else {
                result.append(scalars[index])
                index = next
                continue
            }
            if scalars[next] == "$" {
                result.append("$")
                index = scalars.index(after: next)
                continue
            }
            guard let close = scalars[next...].firstIndex(of: "}") else {
                let rest = String(scalars[index...])
                problems.append("unterminated placeholder \"\(rest)\": no closing \"}\" \(Self.syntax)")
                break
            }
            let placeholder = String(scalars[index...close])
            let body = scalars[scalars.index(after: next)..<close]
            index = scalars.index(after: close)
            let value = self.value(of: body, placeholder: placeholder, in: environment, problems: &problems)
            result.append(contentsOf: value.unicodeScalars)
        }
        return (String(result), problems)
    }

    /// The value of one placeholder whose text between the braces is `body`; "" after a problem.
    private static func value(
        of body: Substring.UnicodeScalarView,
        placeholder: String,
        in environment: ConfigEnvironment,
        problems: inout [String]
    ) -> String {
        guard !body.isEmpty else {
            problems.append("empty placeholder \"${}\" \(Self.syntax)")
            return ""
        }
        // The name runs to the first `:-`; the default is what follows, up to the `}`.
        var name = body
        var fallback: String?
        let separator = body.indices.first { body[$0] == ":" && body[body.index(after: $0)...].first == "-" }
        if let separator {
            name = body[..<separator]
            let rest = body[body.index(separator, offsetBy: 2)...]
            // The syntax of a default is checked even when the variable is set, so a file is
            // well-formed or not whatever the environment.
            guard let unescaped = Self.unescapeDefault(rest) else {
                problems.append("a default cannot contain a placeholder, in \"\(placeholder)\" \(Self.syntax)")
                return ""
            }
            fallback = unescaped
        }
        guard Self.isVariableName(name) else {
            if name.isEmpty {
                problems.append("missing variable name in placeholder \"\(placeholder)\" \(Self.syntax)")
            } else {
                problems.append(
                    "invalid variable name \"\(String(name))\" in placeholder \"\(placeholder)\": a name is letters, "
                        + "digits and _, not starting with a digit"
                )
            }
            return ""
        }
        let variable = String(name)
        let value = environment.value(of: variable)
        if let fallback {
            // `:-` as in the shell: the default also replaces an empty value.
            guard let value, !value.isEmpty else { return fallback }
            return value
        }
        guard let value else {
            problems.append("environment variable \(variable) is not set and \"\(placeholder)\" has no default")
            return ""
        }
        return value
    }

    /// A default as written, with `$$` as `$` like everywhere else; nil if it holds a `${`.
    private static func unescapeDefault(_ text: Substring.UnicodeScalarView) -> String? {
        var result = String.UnicodeScalarView()
        var index = text.startIndex
        while index < text.endIndex {
            let next = text.index(after: index)
            let following = next < text.endIndex ? text[next] : nil
            if text[index] == "$" && following == "{" { return nil }
            result.append(text[index])
            index = text[index] == "$" && following == "$" ? text.index(after: next) : next
        }
        return String(result)
    }

    /// `[A-Za-z_][A-Za-z0-9_]*`, as a shell accepts.
    private static func isVariableName(_ name: Substring.UnicodeScalarView) -> Bool {
        guard let first = name.first, first == "_" || Self.isLetter(first) else { return false }
        return name.dropFirst().allSatisfy { $0 == "_" || Self.isLetter($0) || ("0"..."9").contains($0) }
    }

    private static func isLetter(_ scalar: Unicode.Scalar) -> Bool {
        ("a"..."z").contains(scalar) || ("A"..."Z").contains(scalar)
    }
}
