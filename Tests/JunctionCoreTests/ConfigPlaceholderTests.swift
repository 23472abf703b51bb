import NIOCore
import Testing

@testable import JunctionCore

/// Environment placeholders in the config file: `${VAR}`, `${VAR:-default}` and `$$`, expanded in
/// scalars before their types are read, and every problem one line with its position and key path.
@Suite("Config placeholders")
struct ConfigPlaceholderTests {
    /// Every kind of placeholder, each where a typed reader reads it.
    static let template = """
        threads: ${THREADS:-2}
        listeners:
          - name: "${LISTENER:-web}"
            address: ${LISTEN:-127.0.0.1:8080}
            http2: ${H2:-true}
        routes:
          - name: all
            match:
              path_prefix: ["${PREFIX:-/sockjs}"]
            pool: app
        pools:
          app:
            backends:
              - address: ${BACKEND_HOST:-127.0.0.1}:${BACKEND_PORT}
            health_check:
              path: /health$$check$x
            timeouts:
              connect: ${CONNECT:-5s}
        """

    static func load(_ yaml: String, _ environment: [String: String]) -> ConfigLoader.Outcome {
        ConfigLoader.parse(
            yaml: yaml,
            file: "j.yaml",
            baseDirectory: "/etc/junction",
            environment: ConfigEnvironment(environment)
        )
    }

    // MARK: the text of one scalar

    /// One scalar's text and what it expands to.
    struct Expansion: CustomStringConvertible, Sendable {
        var text: String
        var expected: String
        var description: String { self.text }
    }

    static let environment: ConfigEnvironment = ["A": "x", "B": "y", "EMPTY": "", "NESTED": "${A}"]

    static let expansions: [Expansion] = [
        Expansion(text: "${A}", expected: "x"),
        Expansion(text: "${A:-fallback}", expected: "x"),
        Expansion(text: "${UNSET:-fallback}", expected: "fallback"),
        Expansion(text: "${EMPTY:-fallback}", expected: "fallback"),
        Expansion(text: "${EMPTY}", expected: ""),
        Expansion(text: "${UNSET:-}", expected: ""),
        Expansion(text: "${UNSET:-two words, a:-b}", expected: "two words, a:-b"),
        Expansion(text: "${UNSET:-$$5}", expected: "$5"),
        Expansion(text: "http://${HOST:-localhost}:${A}${B}/", expected: "http://localhost:xy/"),
        Expansion(text: "$$", expected: "$"),
        Expansion(text: "$${A}", expected: "${A}"),
        Expansion(text: "$$${A}", expected: "$x"),
        Expansion(text: "$$$${A}", expected: "$${A}"),
        Expansion(text: "a$b $ 5$ $A {A} }", expected: "a$b $ 5$ $A {A} }"),
        Expansion(text: "${NESTED}", expected: "${A}"),
        Expansion(text: "no placeholder", expected: "no placeholder"),
    ]

    @Test("A scalar's placeholders, escapes and lone dollars expand as documented", arguments: Self.expansions)
    func expansion(_ expansion: Expansion) {
        let result = ConfigPlaceholderExpander.expand(expansion.text, in: Self.environment)
        #expect(result.problems.isEmpty, "\(result.problems)")
        #expect(result.text == expansion.expected)
    }

    /// A malformed or unset placeholder and the problems it gives.
    struct Malformed: CustomStringConvertible, Sendable {
        var text: String
        var problems: [String]
        var description: String { self.text }
    }

    static let malformed: [Malformed] = [
        Malformed(
            text: "${",
            problems: [
                #"unterminated placeholder "${": no closing "}" (write ${NAME} or ${NAME:-default}; $$ is a literal $)"#
            ]
        ),
        Malformed(
            text: "a ${A:-b",
            problems: [
                #"unterminated placeholder "${A:-b": no closing "}" (write ${NAME} or ${NAME:-default}; $$ is a literal $)"#
            ]
        ),
        Malformed(
            text: "${}",
            problems: [#"empty placeholder "${}" (write ${NAME} or ${NAME:-default}; $$ is a literal $)"#]
        ),
        Malformed(
            text: "${1X}",
            problems: [
                #"invalid variable name "1X" in placeholder "${1X}": a name is letters, digits and _, not starting with a digit"#
            ]
        ),
        Malformed(
            text: "${A-b}",
            problems: [
                #"invalid variable name "A-b" in placeholder "${A-b}": a name is letters, digits and _, not starting with a digit"#
            ]
        ),
        Malformed(
            text: "${:-b}",
            problems: [
                #"missing variable name in placeholder "${:-b}" (write ${NAME} or ${NAME:-default}; $$ is a literal $)"#
            ]
        ),
        Malformed(
            text: "${A:-${B}}",
            problems: [
                #"a default cannot contain a placeholder, in "${A:-${B}" (write ${NAME} or ${NAME:-default}; $$ is a literal $)"#
            ]
        ),
        Malformed(
            text: "${UNSET}",
            problems: [#"environment variable UNSET is not set and "${UNSET}" has no default"#]
        ),
        Malformed(
            text: "${U1}:${A}:${U2}",
            problems: [
                #"environment variable U1 is not set and "${U1}" has no default"#,
                #"environment variable U2 is not set and "${U2}" has no default"#,
            ]
        ),
    ]

    @Test("A malformed placeholder or an unset variable without a default is named", arguments: Self.malformed)
    func malformedPlaceholder(_ malformed: Malformed) {
        #expect(ConfigPlaceholderExpander.expand(malformed.text, in: Self.environment).problems == malformed.problems)
    }

    // MARK: whole files

    /// The values of `template` that placeholders set.
    struct Values: Equatable, Sendable {
        var threads = 2
        var listener = "web"
        var listen = "127.0.0.1:8080"
        var http2 = true
        var prefix = "/sockjs"
        var backend = "127.0.0.1:3000"
        var healthPath = "/health$check$x"
        var connect: TimeAmount = .seconds(5)
    }

    /// An environment and the values `template` must load with under it.
    struct Loaded: CustomStringConvertible, Sendable {
        var name: String
        var environment: [String: String]
        var expected: Values
        var description: String { self.name }
    }

    static let loaded: [Loaded] = [
        Loaded(name: "unset variables take their defaults", environment: ["BACKEND_PORT": "3000"], expected: Values()),
        Loaded(
            name: "set variables replace the defaults and are read as int, bool and duration",
            environment: [
                "THREADS": "4", "LISTENER": "edge", "LISTEN": "0.0.0.0:9000", "H2": "false", "PREFIX": "/websocket",
                "BACKEND_HOST": "10.0.0.7", "BACKEND_PORT": "3001", "CONNECT": "250ms",
            ],
            expected: Values(
                threads: 4,
                listener: "edge",
                listen: "0.0.0.0:9000",
                http2: false,
                prefix: "/websocket",
                backend: "10.0.0.7:3001",
                connect: .milliseconds(250)
            )
        ),
        Loaded(
            name: "empty variables take their defaults too (:- as in the shell)",
            environment: ["THREADS": "", "H2": "", "CONNECT": "", "LISTEN": "", "BACKEND_PORT": "3000"],
            expected: Values()
        ),
        Loaded(
            name: "a quoted placeholder stays a string, even when its value looks like a number",
            environment: ["LISTENER": "1234", "BACKEND_PORT": "3000"],
            expected: Values(listener: "1234")
        ),
    ]

    @Test("A file loads with its placeholders expanded and typed", arguments: Self.loaded)
    func loads(_ loaded: Loaded) throws {
        let outcome = Self.load(Self.template, loaded.environment)
        #expect(outcome.errors.isEmpty, "\(outcome.errors)")
        let config = try #require(outcome.config)
        let pool = try #require(config.pool(named: "app"))
        let values = Values(
            threads: config.threads,
            listener: config.listeners[0].name,
            listen: config.listeners[0].address.description,
            http2: config.listeners[0].http2,
            prefix: config.routes[0].pathPrefixes.first ?? "",
            backend: pool.backends.first?.address.description ?? "",
            healthPath: pool.healthCheck?.path ?? "",
            connect: pool.timeouts.connect
        )
        #expect(values == loaded.expected)
        // Expansion keeps every node's position.
        #expect(pool.backends.first?.location?.description == "j.yaml:14:18")
    }

    /// A change to `template`, an environment, and the exact error lines it gives.
    struct Refused: CustomStringConvertible, Sendable {
        var name: String
        var replace: String = ""
        var with: String = ""
        var environment: [String: String] = ["BACKEND_PORT": "3000"]
        var errors: [String]
        var description: String { self.name }
    }

    static let syntax = "(write ${NAME} or ${NAME:-default}; $$ is a literal $)"

    static let refused: [Refused] = [
        Refused(
            name: "unset without a default, in a list element's mapping",
            environment: [:],
            errors: [
                #"j.yaml:14:18: pools.app.backends[0].address: environment variable BACKEND_PORT is not set and "${BACKEND_PORT}" has no default"#
            ]
        ),
        Refused(
            name: "unset without a default, in a nested mapping",
            replace: "${CONNECT:-5s}",
            with: "${CONNECT}",
            errors: [
                #"j.yaml:18:16: pools.app.timeouts.connect: environment variable CONNECT is not set and "${CONNECT}" has no default"#
            ]
        ),
        Refused(
            name: "unset without a default, a list element",
            replace: "${PREFIX:-/sockjs}",
            with: "${PREFIX}",
            errors: [
                #"j.yaml:9:21: routes[0].match.path_prefix[0]: environment variable PREFIX is not set and "${PREFIX}" has no default"#
            ]
        ),
        Refused(
            name: "two unset in one scalar",
            replace: "${BACKEND_HOST:-127.0.0.1}",
            with: "${BACKEND_HOST}",
            environment: [:],
            errors: [
                #"j.yaml:14:18: pools.app.backends[0].address: environment variable BACKEND_HOST is not set and "${BACKEND_HOST}" has no default"#,
                #"j.yaml:14:18: pools.app.backends[0].address: environment variable BACKEND_PORT is not set and "${BACKEND_PORT}" has no default"#,
            ]
        ),
        Refused(
            name: "unterminated",
            replace: "${THREADS:-2}",
            with: "${THREADS",
            errors: [#"j.yaml:1:10: threads: unterminated placeholder "${THREADS": no closing "}" "# + Self.syntax]
        ),
        Refused(
            name: "empty",
            replace: "${THREADS:-2}",
            with: "${}",
            errors: [#"j.yaml:1:10: threads: empty placeholder "${}" "# + Self.syntax]
        ),
        Refused(
            name: "a name starting with a digit",
            replace: "${THREADS:-2}",
            with: "${1X:-2}",
            errors: [
                #"j.yaml:1:10: threads: invalid variable name "1X" in placeholder "${1X:-2}": a name is letters, digits and _, not starting with a digit"#
            ]
        ),
        Refused(
            name: "a placeholder problem stops before the schema, whose errors would be about its text",
            replace: "pool: app",
            with: "pool: nowhere",
            environment: [:],
            errors: [
                #"j.yaml:14:18: pools.app.backends[0].address: environment variable BACKEND_PORT is not set and "${BACKEND_PORT}" has no default"#
            ]
        ),
        Refused(
            name: "a value of the wrong type is the schema's error, about the value",
            environment: ["THREADS": "many", "BACKEND_PORT": "3000"],
            errors: [#"j.yaml:1:10: threads: expected an integer, got "many""#]
        ),
        Refused(
            name: "a plain placeholder is typed by its value",
            replace: #""${LISTENER:-web}""#,
            with: "${LISTENER:-web}",
            environment: ["LISTENER": "1234", "BACKEND_PORT": "3000"],
            errors: ["j.yaml:3:11: listeners[0].name: expected a string, got the integer 1234"]
        ),
        Refused(
            name: "an explicit tag is kept",
            replace: "${THREADS:-2}",
            with: "!!str ${THREADS:-2}",
            errors: [#"j.yaml:1:10: threads: expected an integer, got "2""#]
        ),
        Refused(
            name: "keys are not expanded",
            replace: "connect: ${CONNECT:-5s}",
            with: "${KEY}: 5s",
            errors: [
                #"j.yaml:18:7: pools.app.timeouts.${KEY}: unknown key "${KEY}" (expected one of: connect, response, idle, tunnel_idle)"#
            ]
        ),
    ]

    @Test("Each placeholder problem is one line with file:line:column and key path", arguments: Self.refused)
    func refuses(_ refused: Refused) {
        #expect(refused.replace.isEmpty || Self.template.contains(refused.replace), "test case must change something")
        let yaml =
            refused.replace.isEmpty
            ? Self.template : Self.template.replacingOccurrences(of: refused.replace, with: refused.with)
        let outcome = Self.load(yaml, refused.environment)
        #expect(outcome.config == nil)
        #expect(outcome.errors.map(\.description) == refused.errors)
    }

    @Test("The default environment is the process's own")
    func processEnvironment() {
        #expect(ConfigEnvironment.process.value(of: "PATH") != nil)
        #expect(ConfigEnvironment.process.value(of: "JUNCTION_SURELY_UNSET_VARIABLE_1F2E") == nil)
    }
}
