// Is the trading database usable? One answer for db-watchdog's periodic checks, its start
// and the verification of every snapshot it writes or restores.
@preconcurrency import Glibc
import CSQLite

/// The state of a database file.
public enum DatabaseHealth: Equatable, Sendable, CustomStringConvertible {
    case healthy
    /// No file at the path (deleted).
    case missing
    /// Present but not usable: what is wrong.
    case damaged(String)
    /// Not examined: another connection held a lock for longer than the busy timeout
    /// (not evidence of damage; ask again later).
    case busy(String)

    public var description: String {
        switch self {
        case .healthy: "healthy"
        case .missing: "missing"
        case .damaged(let why): "damaged: \(why)"
        case .busy(let why): "not examined (busy): \(why)"
        }
    }
}

extension TradingStore {
    /// Examines the file at `path` on a fresh connection (a long-lived one would answer
    /// from its page cache and miss damage on disk, or a deleted file): `quick_check`, or
    /// with `full` the slower `integrity_check`; and the schema and instruments, so a file
    /// truncated to nothing (a valid, empty SQLite database) is not taken for healthy.
    public static func examine(path: String, full: Bool = false) -> DatabaseHealth {
        if access(path, F_OK) != 0 && errno == ENOENT { return .missing }
        do {
            let probe = try TradingStore(path: path, create: false)
            defer { probe.close() }
            let rows = full ? try probe.integrityCheck() : try probe.quickCheck()
            guard rows == ["ok"] else { return .damaged((full ? "integrity_check: " : "quick_check: ") + rows.prefix(3).joined(separator: "; ").split(whereSeparator: \.isNewline).joined(separator: " ")) }
            guard try probe.hasSchema() else { return .damaged("the trading tables are missing (truncated or emptied?)") }
            guard try !probe.instruments().isEmpty else { return .damaged("no instruments (truncated or emptied?)") }
            return .healthy
        } catch {
            let text = String("\(error)".map { $0.isNewline ? " " : $0 })
            if [SQLITE_BUSY, SQLITE_LOCKED].contains(error.code & 0xFF) { return .busy(text) }
            return .damaged(text)
        }
    }
}

/// The flag db-watchdog raises when it finds the database damaged and lowers once it has
/// restored it: a file `<db>.unhealthy` beside the database holding the reason. While it
/// is there `LiveStore` refuses the database, so the gateway stops writing within one use
/// of the detection instead of filling a file about to be replaced (what it wrote before
/// the detection is in the fill journal). A file, not a message through vigil, because
/// it must hold across db-watchdog's own restart and reach every writer at once.
public enum UnhealthyFlag {
    public static func path(databasePath: String) -> String { databasePath + ".unhealthy" }

    /// Raises the flag (written and fsync'd before the caller goes on).
    public static func raise(databasePath: String, reason: String) {
        let p = path(databasePath: databasePath)
        let fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { return }
        let bytes = Array((reason + "\n").utf8)
        _ = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
        _ = fsync(fd)
        close(fd)
        _ = syncFile(parentDirectory(of: p))
    }

    public static func lower(databasePath: String) {
        _ = unlink(path(databasePath: databasePath))
    }

    public static func isRaised(databasePath: String) -> Bool {
        access(path(databasePath: databasePath), F_OK) == 0
    }
}
