#if canImport(Glibc)
import Glibc
#endif
import CSQLite

/// A checkpoint store failure, carrying SQLite's own message so an operator can act on it.
public struct CheckpointStoreError: Error, CustomStringConvertible, Sendable {
    /// The SQLite result code (extended), or 0 for errors raised by vigil itself.
    public var code: Int32
    /// What was being done, then SQLite's message.
    public var message: String

    /// Builds an error; `code` 0 marks one raised by vigil rather than SQLite.
    public init(code: Int32, message: String) {
        self.code = code
        self.message = message
    }

    /// The message, prefixed `checkpoint store:`, with the SQLite code when there is one.
    public var description: String {
        code == 0 ? "checkpoint store: \(message)" : "checkpoint store: \(message) (sqlite code \(code))"
    }
}

/// The last checkpoint of every child (`Frame.checkpoint`), kept durably so the next
/// incarnation is handed it (`Frame.restore`) even after vigil itself restarts.
///
/// One row per node, overwritten in place (UPSERT): only the newest checkpoint matters and
/// the table never grows with the number of saves. An empty state (`[]`) is stored as an
/// empty blob, distinct from no checkpoint at all.
///
/// Why a file of its own (`checkpoints.db` beside `journal.db`) rather than a table in
/// the journal: checkpoints are up to 16 KiB each and rewritten often, the journal's rows
/// are small and append-only. Sharing one WAL would make journal appends (which vigil
/// keeps cheap by checkpointing the WAL itself, at quiet moments) pay for copying state
/// blobs back, and a damaged or discarded state file (the operator's "forget every
/// worker's state") must not cost the history. Nothing needs the two in one transaction:
/// a checkpoint is stored or refused on its own, and the journal says which.
///
/// Same settings as the journal: WAL (readers such as a CLI never block vigil's writes),
/// `synchronous=NORMAL` (no fsync per save: durable against a crash of vigil, and against
/// power loss up to the last WAL checkpoint), a short busy timeout, mode 0600.
///
/// Not thread-safe: one instance belongs to one thread (vigil's event loop). Other threads
/// or processes open their own instance on the same file.
public final class CheckpointStore {
    /// The schema this build writes. Bump with a migration in `migrate()`.
    public static let schemaVersion = 1

    /// The database file.
    public let path: String

    private var db: OpaquePointer?
    private var statements: [String: OpaquePointer] = [:]

    private static let transient = unsafeBitCast(-1, to: sqlite3_destructor_type.self)

    /// Opens (creating if needed) the store: parent directories with mode 0700, the file
    /// with mode 0600, WAL mode, `synchronous=NORMAL`, a busy timeout, and the schema.
    /// - Parameter autoCheckpointPages: SQLite's `wal_autocheckpoint` (see
    ///   `Journal.init(path:autoCheckpointPages:)`): the save that crosses it copies the WAL
    ///   back with an fsync. The default keeps the WAL near 4 MB.
    public init(path: String, autoCheckpointPages: Int = 1000) throws(CheckpointStoreError) {
        self.path = path
        do throws(RuntimePathsError) {
            try RuntimePaths.makeDirectories(RuntimePaths.parent(of: path))
        } catch {
            throw CheckpointStoreError(code: 0, message: "cannot create the directory of \(path): \(error)")
        }
        // Create the file ourselves so its mode is 0600 whatever the umask (a checkpoint
        // may hold positions and order ids); tighten an existing one that we own.
        let fd = Glibc.open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        if fd < 0 {
            let e = errno
            throw CheckpointStoreError(code: 0, message: "cannot open \(path): \(RuntimePaths.errnoText(e))")
        }
        var st = stat()
        if fstat(fd, &st) == 0 && st.st_uid == geteuid() && st.st_mode & 0o077 != 0 {
            _ = fchmod(fd, 0o600)
        }
        Glibc.close(fd)

        var handle: OpaquePointer?
        let rc = sqlite3_open_v2(path, &handle, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nil)
        guard rc == SQLITE_OK, let handle else {
            let msg = handle.map { String(cString: sqlite3_errmsg($0)) } ?? String(cString: sqlite3_errstr(rc))
            if let handle { sqlite3_close_v2(handle) }
            throw CheckpointStoreError(code: rc, message: "cannot open \(path): \(msg)")
        }
        sqlite3_extended_result_codes(handle, 1)
        db = handle
        do throws(CheckpointStoreError) {
            // The writer is vigil's event loop: never wait long. Readers never block it.
            try exec("PRAGMA busy_timeout = 1000")
            var mode = ""
            try run("PRAGMA journal_mode = WAL") { (s) throws(CheckpointStoreError) in
                if try step(s) { mode = text(s, 0) ?? "" }
            }
            guard mode.lowercased() == "wal" else {
                throw CheckpointStoreError(code: 0, message: "cannot switch \(path) to WAL mode (got \(mode))")
            }
            try exec("PRAGMA synchronous = NORMAL")
            try exec("PRAGMA wal_autocheckpoint = \(max(0, autoCheckpointPages))")
            try migrate()
        } catch {
            close()
            throw error
        }
    }

    deinit { close() }

    /// Closes the connection now (also done on deinit). Further calls throw.
    public func close() {
        for (_, s) in statements { sqlite3_finalize(s) }
        statements.removeAll()
        if let db { sqlite3_close_v2(db) }
        db = nil
    }

    // MARK: - Checkpoints

    /// Keeps `state` as `node`'s last checkpoint, replacing the previous one, in one
    /// statement (so atomically: a crash leaves the old checkpoint or the new one).
    /// - Parameters:
    ///   - incarnation: the incarnation that sent it.
    ///   - wallNanoseconds: when it arrived (`vigil_realtime_ns()`).
    public func save(node: String, incarnation: UInt64, state: [UInt8], at wallNanoseconds: Int64) throws(CheckpointStoreError) {
        try run("""
            INSERT INTO checkpoints(node, incarnation, at_ns, state) VALUES (?1, ?2, ?3, ?4)
            ON CONFLICT(node) DO UPDATE SET incarnation = excluded.incarnation, at_ns = excluded.at_ns, state = excluded.state
            """) { (s) throws(CheckpointStoreError) in
            sqlite3_bind_text(s, 1, node, -1, Self.transient)
            sqlite3_bind_int64(s, 2, Int64(bitPattern: incarnation))
            sqlite3_bind_int64(s, 3, wallNanoseconds)
            // A zero-length blob, not NULL: an empty checkpoint is still a checkpoint.
            let rc = state.isEmpty
                ? sqlite3_bind_zeroblob(s, 4, 0)
                : state.withUnsafeBytes { sqlite3_bind_blob(s, 4, $0.baseAddress, Int32($0.count), Self.transient) }
            guard rc == SQLITE_OK else { throw failure(rc, "binding a checkpoint of \(state.count) bytes") }
            try step(s)
        }
    }

    /// `node`'s last checkpoint: its bytes, the incarnation that sent it and when it was
    /// kept; nil when it has none.
    public func last(node: String) throws(CheckpointStoreError) -> (state: [UInt8], incarnation: UInt64, wallNanoseconds: Int64)? {
        var out: (state: [UInt8], incarnation: UInt64, wallNanoseconds: Int64)?
        try run("SELECT state, incarnation, at_ns FROM checkpoints WHERE node = ?1") { (s) throws(CheckpointStoreError) in
            sqlite3_bind_text(s, 1, node, -1, Self.transient)
            guard try step(s) else { return }
            let count = Int(sqlite3_column_bytes(s, 0))
            var state: [UInt8] = []
            if count > 0, let p = sqlite3_column_blob(s, 0) {
                state = Array(UnsafeRawBufferPointer(start: p, count: count))
            }
            out = (state, UInt64(bitPattern: sqlite3_column_int64(s, 1)), sqlite3_column_int64(s, 2))
        }
        return out
    }

    /// Forgets `node`'s checkpoint (its next incarnation starts from nothing). Removing
    /// one that does not exist is not an error.
    public func remove(node: String) throws(CheckpointStoreError) {
        try run("DELETE FROM checkpoints WHERE node = ?1") { (s) throws(CheckpointStoreError) in
            sqlite3_bind_text(s, 1, node, -1, Self.transient)
            try step(s)
        }
    }

    /// Every node that has a checkpoint, in name order (for status and cleanup).
    public func nodes() throws(CheckpointStoreError) -> [String] {
        var out: [String] = []
        try run("SELECT node FROM checkpoints ORDER BY node") { (s) throws(CheckpointStoreError) in
            while try step(s) { out.append(text(s, 0) ?? "") }
        }
        return out
    }

    // MARK: - Schema

    private func migrate() throws(CheckpointStoreError) {
        try exec("BEGIN IMMEDIATE")
        do throws(CheckpointStoreError) {
            try exec("CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            var stored: Int?
            try run("SELECT value FROM meta WHERE key = 'schema_version'") { (s) throws(CheckpointStoreError) in
                if try step(s) { stored = text(s, 0).flatMap { Int($0) } ?? -1 }
            }
            if let stored, stored > Self.schemaVersion {
                throw CheckpointStoreError(code: 0, message: "\(path) has schema version \(stored), newer than this vigil understands (\(Self.schemaVersion))")
            }
            if let stored, stored < 1 {
                throw CheckpointStoreError(code: 0, message: "\(path) has an unreadable schema version: not a vigil checkpoint store")
            }
            if stored == nil {
                // A plain rowid table: state blobs run to 16 KiB, too large for WITHOUT ROWID.
                try exec("""
                    CREATE TABLE IF NOT EXISTS checkpoints(
                        node TEXT NOT NULL PRIMARY KEY,
                        incarnation INTEGER NOT NULL,
                        at_ns INTEGER NOT NULL,
                        state BLOB NOT NULL);
                    INSERT INTO meta(key, value) VALUES ('schema_version', '\(Self.schemaVersion)');
                    """)
            }
            try exec("COMMIT")
        } catch {
            _ = sqlite3_exec(db, "ROLLBACK", nil, nil, nil)
            throw error
        }
    }

    // MARK: - SQLite plumbing

    private func connection() throws(CheckpointStoreError) -> OpaquePointer {
        guard let db else { throw CheckpointStoreError(code: 0, message: "\(path) is closed") }
        return db
    }

    private func failure(_ rc: Int32, _ doing: String) -> CheckpointStoreError {
        let msg = db.map { String(cString: sqlite3_errmsg($0)) } ?? String(cString: sqlite3_errstr(rc))
        return CheckpointStoreError(code: rc, message: "\(doing): \(msg)")
    }

    private func exec(_ sql: String) throws(CheckpointStoreError) {
        let db = try connection()
        var err: UnsafeMutablePointer<CChar>?
        let rc = sqlite3_exec(db, sql, nil, nil, &err)
        if rc != SQLITE_OK {
            let msg = err.map { String(cString: $0) } ?? String(cString: sqlite3_errstr(rc))
            sqlite3_free(err)
            throw CheckpointStoreError(code: rc, message: "\(sql.prefix(60)): \(msg)")
        }
    }

    /// Runs `body` with the cached prepared statement for `sql`, then resets it so it
    /// holds no read transaction open and keeps no bound data alive.
    private func run(_ sql: String, _ body: (OpaquePointer) throws(CheckpointStoreError) -> Void) throws(CheckpointStoreError) {
        let db = try connection()
        let s: OpaquePointer
        if let cached = statements[sql] {
            s = cached
        } else {
            var p: OpaquePointer?
            let rc = sqlite3_prepare_v3(db, sql, -1, UInt32(SQLITE_PREPARE_PERSISTENT), &p, nil)
            guard rc == SQLITE_OK, let p else { throw failure(rc, "preparing \(sql.prefix(60))") }
            statements[sql] = p
            s = p
        }
        defer {
            sqlite3_reset(s)
            sqlite3_clear_bindings(s)
        }
        try body(s)
    }

    /// Steps once: true when a row is available, false when the statement is done.
    @discardableResult
    private func step(_ s: OpaquePointer) throws(CheckpointStoreError) -> Bool {
        let rc = sqlite3_step(s)
        switch rc {
        case SQLITE_ROW: return true
        case SQLITE_DONE: return false
        default:
            let sql = sqlite3_sql(s).map { String(cString: $0) } ?? "?"
            throw failure(rc, String(sql.prefix(60)))
        }
    }

    private func text(_ s: OpaquePointer, _ i: Int32) -> String? {
        guard sqlite3_column_type(s, i) != SQLITE_NULL, let p = sqlite3_column_text(s, i) else { return nil }
        return String(cString: p)
    }
}
