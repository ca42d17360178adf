// Which snapshot files exist, which is next, which to drop, and in which order to try them
// for a restore: pure naming and ordering, so the rotation is unit-tested without files.

/// A rotating set of numbered snapshot files `<prefix>-<sequence, 8 digits>.db` in one
/// directory. The sequence only grows (the next is one more than the highest present),
/// so "newest" is the highest number, whatever the files' times say.
public struct SnapshotSet: Equatable, Sendable {
    /// One snapshot file.
    public struct Snapshot: Equatable, Sendable {
        public let sequence: Int
        public let fileName: String
    }

    public let prefix: String
    /// Valid snapshot names, newest first. Other names (partial copies, `.bad` ones) are ignored.
    public let newestFirst: [Snapshot]

    /// The set among `fileNames` (a directory listing).
    public init(prefix: String, fileNames: [String]) {
        self.prefix = prefix
        newestFirst = fileNames.compactMap { name in
            SnapshotSet.sequence(of: name, prefix: prefix).map { Snapshot(sequence: $0, fileName: name) }
        }.sorted { $0.sequence > $1.sequence }
    }

    /// The sequence number of `fileName` if it is exactly a snapshot name of `prefix`.
    public static func sequence(of fileName: String, prefix: String) -> Int? {
        guard fileName.hasPrefix(prefix + "-"), fileName.hasSuffix(".db") else { return nil }
        let digits = fileName.dropFirst(prefix.count + 1).dropLast(3)
        guard digits.count == 8, digits.utf8.allSatisfy({ $0 >= 48 && $0 <= 57 }) else { return nil }
        return Int(digits)
    }

    public static func fileName(prefix: String, sequence: Int) -> String {
        let digits = String(sequence)
        return "\(prefix)-\(String(repeating: "0", count: max(0, 8 - digits.count)))\(digits).db"
    }

    /// The name for the next snapshot: one past the newest.
    public var nextFileName: String {
        SnapshotSet.fileName(prefix: prefix, sequence: (newestFirst.first?.sequence ?? 0) + 1)
    }

    /// The files to delete so that only the `keep` newest remain.
    public func toDelete(keeping keep: Int) -> [String] {
        newestFirst.dropFirst(max(0, keep)).map(\.fileName)
    }
}
