// db-watchdog's online backups: a rotating set of verified snapshot files of the trading
// database, written with SQLite's backup API while the gateway keeps trading.
@preconcurrency import Glibc

/// The snapshot directory of one database.
public struct SnapshotFiles: Sendable {
    public let databasePath: String
    public let directory: String
    /// Snapshot names are `<prefix>-<sequence>.db`; the prefix is the database's file name
    /// without `.db` (`trading`).
    public let prefix: String

    public init(databasePath: String, directory: String? = nil) {
        self.databasePath = databasePath
        self.directory = directory ?? SnapshotFiles.defaultDirectory(databasePath: databasePath)
        let base = databasePath.split(separator: "/").last.map(String.init) ?? databasePath
        prefix = base.hasSuffix(".db") ? String(base.dropLast(3)) : base
    }

    /// `snapshots/` beside the database.
    public static func defaultDirectory(databasePath: String) -> String {
        parentDirectory(of: databasePath) + "/snapshots"
    }

    /// The snapshots there now.
    public func current() -> SnapshotSet {
        SnapshotSet(prefix: prefix, fileNames: listDirectory(directory))
    }

    public func path(of fileName: String) -> String { directory + "/" + fileName }

    /// Takes a snapshot: backup API into `<next>.db.partial`, `integrity_check` on the copy,
    /// then fsync and rename to its final name (so a snapshot that exists under its name was
    /// verified), then deletes all but the `keep` newest. Returns the new file's name and
    /// what was deleted; throws (leaving no partial file) if the copy does not verify.
    public func take(keep: Int) throws(SnapshotError) -> (fileName: String, deleted: [String]) {
        if mkdir(directory, 0o700) != 0 && errno != EEXIST { throw SnapshotError("mkdir \(directory): \(describeErrno())") }
        let name = current().nextFileName
        let partial = path(of: name) + ".partial"
        removeDatabaseFiles(partial)
        do {
            let source = try Database(path: databasePath, create: false)
            defer { source.close() }
            try source.backup(to: partial)
        } catch {
            removeDatabaseFiles(partial)
            throw SnapshotError("backup failed: \(error)")
        }
        let health = TradingStore.examine(path: partial, full: true)
        guard health == .healthy else {
            removeDatabaseFiles(partial)
            throw SnapshotError("the copy does not verify (\(health)); not kept")
        }
        guard syncFile(partial), rename(partial, path(of: name)) == 0, syncFile(directory) else {
            let e = describeErrno()
            removeDatabaseFiles(partial)
            throw SnapshotError("cannot move \(partial) into place: \(e)")
        }
        var deleted: [String] = []
        for old in current().toDelete(keeping: keep) where unlink(path(of: old)) == 0 { deleted.append(old) }
        return (name, deleted)
    }

    /// Sets a snapshot that failed verification aside (`.bad`), so it is not tried again.
    public func setAside(_ fileName: String) {
        _ = rename(path(of: fileName), path(of: fileName) + ".bad")
    }
}

/// Why a snapshot or a restore failed.
public struct SnapshotError: Error, CustomStringConvertible, Sendable {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// The names in `path` (no `.`, `..`); empty if it cannot be read.
func listDirectory(_ path: String) -> [String] {
    guard let dir = opendir(path) else { return [] }
    defer { closedir(dir) }
    var names: [String] = []
    while let entry = readdir(dir) {
        let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
            String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
        }
        if name != "." && name != ".." { names.append(name) }
    }
    return names
}

/// Removes a database file and its WAL and shared-memory files, if present.
func removeDatabaseFiles(_ path: String) {
    for suffix in ["", "-wal", "-shm", "-journal"] { _ = unlink(path + suffix) }
}

/// fsync of a file or directory by path.
func syncFile(_ path: String) -> Bool {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { return false }
    defer { close(fd) }
    return fsync(fd) == 0
}

func describeErrno() -> String { String(cString: strerror(errno)) }
