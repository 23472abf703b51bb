extension String {
    /// This text as a JSON string literal, quotes included: for the few hand-written JSON lines
    /// (logs, the demo backends, JWS headers whose exact bytes are signed) where an encoder would
    /// be overkill. Here, in the lowest of the package's modules, so every module shares it.
    package var jsonLiteral: String {
        var out = "\""
        for scalar in self.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\t": out += "\\t"
            case "\r": out += "\\r"
            default:
                if scalar.value < 0x20 {
                    let hex = String(scalar.value, radix: 16)
                    out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out + "\""
    }
}
