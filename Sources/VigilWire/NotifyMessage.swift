/// One sd_notify datagram, as systemd reads it: newline-separated `KEY=VALUE` assignments
/// (`READY=1`, `STATUS=...`, `FDSTORE=1`, `FDNAME=...`). Kept apart from any socket so it
/// can be tested and fuzzed on bytes alone.
///
/// Like systemd: a datagram larger than `maximumSize`, or one that is not UTF-8 or holds a
/// NUL, is refused whole; a line without `=` or with an empty key is skipped; a later
/// assignment of the same key wins.
public struct NotifyMessage: Hashable, Sendable {
    /// systemd's limit for a notification datagram (NOTIFY_BUFFER_MAX is 4 KiB + 1 page;
    /// a state or fd name beyond that is a bug in the sender).
    public static let maximumSize = 8 * 1024
    /// systemd's limit on an FDNAME (FDNAME_MAX).
    public static let maximumFDNameLength = 255

    /// Every assignment, in datagram order.
    public let assignments: [(key: String, value: String)]

    public static func == (a: NotifyMessage, b: NotifyMessage) -> Bool {
        a.assignments.elementsEqual(b.assignments) { $0.key == $1.key && $0.value == $1.value }
    }

    public func hash(into h: inout Hasher) {
        for a in assignments { h.combine(a.key); h.combine(a.value) }
    }

    public enum ParseError: Error, Hashable, Sendable, CustomStringConvertible {
        case tooLarge(Int)
        case invalidUTF8
        case containsNUL

        public var description: String {
            switch self {
            case .tooLarge(let n): "notification of \(n) bytes exceeds the \(NotifyMessage.maximumSize)-byte limit"
            case .invalidUTF8: "notification is not UTF-8"
            case .containsNUL: "notification contains a NUL byte"
            }
        }
    }

    public init(parsing bytes: some Collection<UInt8>) throws(ParseError) {
        guard bytes.count <= NotifyMessage.maximumSize else { throw .tooLarge(bytes.count) }
        guard !bytes.contains(0) else { throw .containsNUL }
        guard let text = String(validating: bytes, as: UTF8.self) else { throw .invalidUTF8 }
        var out: [(key: String, value: String)] = []
        for line in text.split(separator: "\n", omittingEmptySubsequences: true) {
            guard let eq = line.firstIndex(of: "="), eq != line.startIndex else { continue }
            out.append((String(line[..<eq]), String(line[line.index(after: eq)...])))
        }
        assignments = out
    }

    /// The last value assigned to `key`, or nil.
    public subscript(key: String) -> String? {
        assignments.last { $0.key == key }?.value
    }

    /// True when `key` is assigned exactly `"1"` (how READY=1, FDSTORE=1, BARRIER=1 are meant).
    public func isSet(_ key: String) -> Bool { self[key] == "1" }

    /// `FDNAME=`, checked as systemd does (at most 255 characters, no control characters,
    /// no ':' since names are joined with ':' in LISTEN_FDNAMES). nil when absent: systemd
    /// then names the descriptors "stored".
    public func fdName() -> Result<String?, FDNameError> {
        guard let name = self["FDNAME"] else { return .success(nil) }
        if name.isEmpty || name.utf8.count > NotifyMessage.maximumFDNameLength {
            return .failure(FDNameError(name: name, why: "must be 1 to \(NotifyMessage.maximumFDNameLength) bytes"))
        }
        if name.unicodeScalars.contains(where: { $0 == ":" || $0.properties.generalCategory == .control }) {
            return .failure(FDNameError(name: name, why: "must not contain ':' or control characters"))
        }
        return .success(name)
    }

    public struct FDNameError: Error, Hashable, Sendable, CustomStringConvertible {
        public let name: String
        public let why: String
        public var description: String { "FDNAME '\(name.prefix(64))' \(why)" }
    }
}
