/// One field of a journal entry: `NAME=value`.
struct JournalField: Hashable, Sendable {
    var name: String
    var value: String

    init(_ name: String, _ value: String) {
        self.name = name
        self.value = value
    }
}

/// systemd-journald's native protocol, the payload of one datagram to
/// `/run/systemd/journal/socket` (systemd's `docs/JOURNAL_NATIVE_PROTOCOL.md`):
///
///     NAME=value\n                                    a value without a newline
///     NAME\n <64-bit little-endian length> value\n    any value (used for one with a newline)
///
/// Implemented here rather than through `sd_journal_sendv` so a test can stand in for
/// journald with a socket of its own and read exactly what vigil sent.
enum JournalNativeEncoding {
    /// The datagram for `fields`, in order. A field whose name journald would drop (see
    /// `isValidName`) is left out rather than sent to be silently lost.
    static func encode(_ fields: [JournalField]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(fields.reduce(0) { $0 + $1.name.utf8.count + $1.value.utf8.count + 10 })
        for field in fields where isValidName(field.name) {
            let value = Array(field.value.utf8)
            out.append(contentsOf: field.name.utf8)
            if value.contains(0x0A) {
                out.append(0x0A)
                var length = UInt64(value.count).littleEndian
                withUnsafeBytes(of: &length) { out.append(contentsOf: $0) }
                out.append(contentsOf: value)
            } else {
                out.append(UInt8(ascii: "="))
                out.append(contentsOf: value)
            }
            out.append(0x0A)
        }
        return out
    }

    /// What journald accepts from a client: 1 to 64 characters of `A-Z`, `0-9` and `_`, not
    /// starting with `_` (those are the trusted fields journald adds itself) or a digit.
    static func isValidName(_ name: String) -> Bool {
        let bytes = Array(name.utf8)
        guard !bytes.isEmpty, bytes.count <= 64, bytes[0] != UInt8(ascii: "_"),
              !(UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[0]) else { return false }
        return bytes.allSatisfy {
            (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains($0) || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0)
                || $0 == UInt8(ascii: "_")
        }
    }
}
