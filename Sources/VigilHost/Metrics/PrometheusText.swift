/// Prometheus' text exposition format, version 0.0.4: per metric family a `# HELP` and a
/// `# TYPE` line, then its samples, `name{label="value",...} number`.
///
/// Written by hand (no client library can be fetched here) and kept to what the format
/// requires: label values escape `\`, `"` and newline; HELP text escapes `\` and newline;
/// numbers are integers or Go-style floats (`+Inf`, `NaN`).
struct PrometheusText {
    enum Kind: String { case counter, gauge }

    private(set) var text = ""

    /// Starts a family. `name` must match `[a-zA-Z_:][a-zA-Z0-9_:]*`; a counter's ends
    /// in `_total` (checked: a wrong name is a bug in vigil, not an operator's mistake).
    mutating func family(_ name: String, _ kind: Kind, _ help: String) {
        precondition(Self.isValidName(name), "metric name \(name)")
        precondition(kind != .counter || name.hasSuffix("_total"), "counter \(name) must end in _total")
        text += "# HELP \(name) \(Self.escapeHelp(help))\n# TYPE \(name) \(kind.rawValue)\n"
    }

    mutating func sample(_ name: String, _ labels: KeyValuePairs<String, String> = [:], _ value: Double) {
        text += name
        if !labels.isEmpty {
            text += "{" + labels.map { "\($0.key)=\"\(Self.escapeLabel($0.value))\"" }.joined(separator: ",") + "}"
        }
        text += " " + Self.format(value) + "\n"
    }

    mutating func sample(_ name: String, _ labels: KeyValuePairs<String, String> = [:], _ value: Int) {
        sample(name, labels, Double(value))
    }

    /// A sample without labels (a tree-wide value).
    mutating func sample(_ name: String, _ value: Double) { sample(name, [:], value) }
    mutating func sample(_ name: String, _ value: Int) { sample(name, [:], Double(value)) }

    static func format(_ v: Double) -> String {
        if v.isNaN { return "NaN" }
        if v.isInfinite { return v > 0 ? "+Inf" : "-Inf" }
        if v == v.rounded(), abs(v) < 9e15 { return String(Int64(v)) }
        return String(v)
    }

    static func escapeLabel(_ s: String) -> String {
        var out = ""
        for c in s {
            switch c {
            case "\\": out += "\\\\"
            case "\"": out += "\\\""
            case "\n": out += "\\n"
            default: out.append(c)
            }
        }
        return out
    }

    static func escapeHelp(_ s: String) -> String {
        var out = ""
        for c in s {
            switch c {
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            default: out.append(c)
            }
        }
        return out
    }

    static func isValidName(_ name: String) -> Bool {
        guard let first = name.unicodeScalars.first, first.isASCII,
              first.properties.isAlphabetic || first == "_" || first == ":" else { return false }
        return name.unicodeScalars.allSatisfy { $0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0) || $0 == "_" || $0 == ":") }
    }
}
