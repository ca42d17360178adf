@preconcurrency import Glibc

/// A hand-rolled command-line parser for workers: `--name value` or `--name=value`, every
/// flag at most once, no positional arguments. Any mistake prints a clear error and the
/// usage to stderr and exits with status 2; `--help` prints the usage and exits 0.
///
///     var flags = Flags(usage: "usage: db-watchdog [--db PATH] [--interval DURATION]")
///     let db = flags.string("--db")
///     let interval = flags.duration("--interval", default: .seconds(2))
///     flags.finish()   // rejects anything not asked for
public struct Flags {
    /// Exit status for a bad command line.
    public static let usageExitCode: Int32 = 2

    private var values: [String: String] = [:]
    private var order: [String] = []
    public let usage: String
    private let program: String

    public init(_ arguments: [String] = CommandLine.arguments, usage: String) {
        self.usage = usage
        let argv0 = arguments.first ?? "worker"
        program = argv0.split(separator: "/").last.map(String.init) ?? argv0
        var i = 1
        while i < arguments.count {
            let arg = arguments[i]
            if arg == "--help" || arg == "-h" {
                Flags.emit(usage)
                exit(0)
            }
            guard arg.hasPrefix("--"), arg.count > 2 else { fail("unexpected argument '\(arg)'") }
            let name: String, value: String
            if let eq = arg.firstIndex(of: "=") {
                name = String(arg[..<eq])
                value = String(arg[arg.index(after: eq)...])
            } else {
                guard i + 1 < arguments.count else { fail("\(arg) needs a value") }
                name = arg
                value = arguments[i + 1]
                i += 1
            }
            guard values[name] == nil else { fail("\(name) given twice") }
            values[name] = value
            order.append(name)
            i += 1
        }
    }

    /// Prints `message` and the usage to stderr and exits with status 2.
    public func fail(_ message: String) -> Never {
        Flags.emit("\(program): error: \(message)\n\(usage)")
        exit(Flags.usageExitCode)
    }

    /// The raw value of `name`, if given (and marks it as known).
    public mutating func string(_ name: String) -> String? {
        values.removeValue(forKey: name).map { v in
            if v.isEmpty { fail("\(name) must not be empty") }
            return v
        }
    }

    /// A value converted by `parse`; nil from `parse` is a usage error naming `expected`.
    public mutating func value<T>(_ name: String, expected: String, _ parse: (String) -> T?) -> T? {
        guard let raw = string(name) else { return nil }
        guard let v = parse(raw) else { fail("\(name): expected \(expected), got '\(raw)'") }
        return v
    }

    /// A positive duration: an integer with a unit, `250ms`, `2s` or `1m`.
    public mutating func duration(_ name: String, default fallback: Duration) -> Duration {
        value(name, expected: "a positive duration like 200ms, 2s or 1m", Flags.parseDuration) ?? fallback
    }

    /// An integer in `range`.
    public mutating func int(_ name: String, default fallback: Int, range: ClosedRange<Int>) -> Int {
        value(name, expected: "an integer in \(range.lowerBound)...\(range.upperBound)") { s in
            Int(s).flatMap { range.contains($0) ? $0 : nil }
        } ?? fallback
    }

    /// A finite decimal number in `range`.
    public mutating func double(_ name: String, default fallback: Double, range: ClosedRange<Double>) -> Double {
        value(name, expected: "a number in \(range.lowerBound)...\(range.upperBound)") { s in
            Double(s).flatMap { $0.isFinite && range.contains($0) ? $0 : nil }
        } ?? fallback
    }

    /// Rejects every flag that no getter asked for. Call after the last getter.
    public func finish() {
        let unknown = order.filter { values[$0] != nil }
        if !unknown.isEmpty { fail("unknown flag\(unknown.count > 1 ? "s" : "") \(unknown.joined(separator: ", "))") }
    }

    /// Parses `250ms`, `2s`, `1m` (positive integers only).
    public static func parseDuration(_ s: String) -> Duration? {
        let units: [(String, Int64)] = [("ms", 1), ("s", 1000), ("m", 60_000)]
        for (suffix, scale) in units where s.hasSuffix(suffix) {
            let digits = s.dropLast(suffix.count)
            guard !digits.isEmpty, digits.allSatisfy({ $0.isASCII && $0.isNumber }),
                  let n = Int64(digits), n > 0, n <= 86_400_000 / scale else { return nil }
            return .milliseconds(n * scale)
        }
        return nil
    }

    static func emit(_ text: String) {
        var bytes = Array(text.utf8)
        bytes.append(10)
        _ = bytes.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
    }
}
