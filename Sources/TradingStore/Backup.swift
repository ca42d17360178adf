// Whole-database copies with SQLite's online backup API, and the checks and checkpoints
// db-watchdog runs: the pieces snapshots and restores are made of.
import CSQLite

extension Database {
    /// Copies this database, as of one read transaction, into a new file at
    /// `destinationPath` (which must not exist) with `sqlite3_backup_init/step/finish`.
    /// One step for all pages: in WAL mode the read does not block the gateway's writes,
    /// and a copy taken in several steps would start over each time a writer commits.
    public func backup(to destinationPath: String) throws(DatabaseError) {
        let destination = try Database(path: destinationPath, create: true)
        defer { destination.close() }
        guard let backup = sqlite3_backup_init(destination.handle, "main", handle, "main") else { throw destination.lastError }
        var rc: Int32
        repeat {
            rc = sqlite3_backup_step(backup, -1)
            if rc == SQLITE_BUSY || rc == SQLITE_LOCKED { sqlite3_sleep(5) }
        } while rc == SQLITE_OK || rc == SQLITE_BUSY || rc == SQLITE_LOCKED
        let finished = sqlite3_backup_finish(backup)
        guard rc == SQLITE_DONE, finished == SQLITE_OK else {
            let code = rc == SQLITE_DONE ? finished : rc
            throw DatabaseError(code: code, message: "backup of \(path) to \(destinationPath) failed: \(String(cString: sqlite3_errstr(code)))")
        }
    }

    /// Rows of a `PRAGMA` that lists problems (`quick_check`, `integrity_check`): ["ok"]
    /// when there are none.
    func checkRows(_ pragma: String) throws(DatabaseError) -> [String] {
        let s = try prepare("PRAGMA \(pragma)")
        var lines: [String] = []
        while try s.step() { lines.append(s.text(0)) }
        return lines
    }
}

extension TradingStore {
    /// `PRAGMA integrity_check`: ["ok"] when healthy, else the problems it lists. Slower
    /// than `quickCheck()`: it also checks that every index matches its table.
    public func integrityCheck() throws(DatabaseError) -> [String] {
        try db.checkRows("integrity_check")
    }

    /// `PRAGMA wal_checkpoint(PASSIVE)`: copies what it can of the WAL into the database
    /// without waiting for readers or writers. Returns the WAL's frames and how many are
    /// now checkpointed.
    public func checkpointWAL() throws(DatabaseError) -> (walFrames: Int64, checkpointed: Int64) {
        let s = try db.prepare("PRAGMA wal_checkpoint(PASSIVE)")
        guard try s.step() else { return (0, 0) }
        return (s.int64(1), s.int64(2))
    }
}
