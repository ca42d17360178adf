#if canImport(Glibc)
import Glibc
#endif
import CSQLite
import VigilCore

/// A journal failure, carrying SQLite's own message so an operator can act on it.
public struct JournalError: Error, CustomStringConvertible, Sendable {
    /// The SQLite result code (extended), or 0 for errors raised by vigil itself.
    public var code: Int32
    /// What was being done, then SQLite's message.
    public var message: String

    /// Builds an error; `code` 0 marks one raised by vigil rather than SQLite.
    public init(code: Int32, message: String) {
        self.code = code
        self.message = message
    }

    /// The message, prefixed `journal:`, with the SQLite code when there is one.
    public var description: String {
        code == 0 ? "journal: \(message)" : "journal: \(message) (sqlite code \(code))"
    }
}

/// One row of the `events` table: a journal record as it was stored.
public struct JournalEvent: Hashable, Sendable {
    /// Row id: strictly increasing in append order, so it orders events from one vigil.
    public var id: Int64
    /// Wall-clock time of the decision step, nanoseconds since the Unix epoch.
    public var wallNanoseconds: Int64
    /// The record kind's raw value (`spawned`, `restart`, ...). Kept as text so a journal
    /// written by a newer vigil still reads.
    public var kind: String
    /// The child or supervisor the record is about.
    public var node: String
    /// The child's pid, when the record is about one process.
    public var pid: Int32?
    /// Which start of the child, when the record is about one.
    public var incarnation: UInt64?
    /// The record's human sentence.
    public var detail: String

    /// Builds an event (for formatting code and its tests; the journal makes its own).
    public init(id: Int64, wallNanoseconds: Int64, kind: String, node: String, pid: Int32?,
                incarnation: UInt64?, detail: String) {
        self.id = id
        self.wallNanoseconds = wallNanoseconds
        self.kind = kind
        self.node = node
        self.pid = pid
        self.incarnation = incarnation
        self.detail = detail
    }

    /// The kind as the core knows it, or nil for a kind this build does not know.
    public var recordKind: RecordKind? { RecordKind(rawValue: kind) }

    /// The core record this row was written from (nil for an unknown kind).
    public var record: Record? {
        recordKind.map { Record($0, node: node, pid: pid, incarnation: incarnation, detail: detail) }
    }
}

/// One process lifetime of one child: a row of the `runs` table, derived from the records.
public struct ChildRun: Hashable, Sendable {
    /// The child's name in the topology.
    public var node: String
    /// Which start of this child (1, 2, ...), as the core numbers them.
    public var incarnation: UInt64
    /// nil for a run that failed to spawn.
    public var pid: Int32?
    /// Wall-clock time of the `spawned` record (or of the failed spawn).
    public var startedNanoseconds: Int64
    /// When the child said READY, if it did.
    public var readyNanoseconds: Int64?
    /// When its process group was gone (or the spawn failed).
    public var exitedNanoseconds: Int64?
    /// The exit record's detail (`exit 1`, `signal SIGKILL`, `spawn failed (errno 2)`).
    public var exit: String?
    /// The process it named with `MAINPID=`, if it did.
    public var mainPID: Int32?

    /// Builds a run (for formatting code and its tests; the journal makes its own).
    public init(node: String, incarnation: UInt64, pid: Int32?, startedNanoseconds: Int64,
                readyNanoseconds: Int64?, exitedNanoseconds: Int64?, exit: String?, mainPID: Int32? = nil) {
        self.node = node
        self.incarnation = incarnation
        self.pid = pid
        self.startedNanoseconds = startedNanoseconds
        self.readyNanoseconds = readyNanoseconds
        self.exitedNanoseconds = exitedNanoseconds
        self.exit = exit
        self.mainPID = mainPID
    }

    /// Still alive as far as the journal knows.
    public var isRunning: Bool { exitedNanoseconds == nil }
}

/// The durable journal: every supervision record and every child run, in one SQLite file.
///
/// Why SQLite in WAL mode: vigil appends *before* it acts (write-ahead for decisions), and
/// the CLI reads concurrently without ever blocking the writer. `synchronous=NORMAL` in WAL
/// mode keeps each commit free of fsync (durable against a vigil crash, and against power
/// loss up to the last checkpoint), so an append costs microseconds on the event loop.
///
/// Not thread-safe: one instance belongs to one thread (vigil's event loop, or the CLI).
public final class Journal {
    /// The schema this build writes. Bump with a migration in `migrate()`.
    public static let schemaVersion = 2

    /// The database file.
    public let path: String
    /// True for a connection opened with `init(readOnlyPath:)`.
    public let isReadOnly: Bool

    private var db: OpaquePointer?
    private var statements: [String: OpaquePointer] = [:]

    private static let transient = unsafeBitCast(-1, to: sqlite3_destructor_type.self)

    /// Opens (creating if needed) the journal for writing: parent directories with mode
    /// 0700, the file with mode 0600 (SQLite gives `-wal` and `-shm` the same mode), WAL
    /// mode, `synchronous=NORMAL`, a busy timeout, and the schema.
    /// - Parameter autoCheckpointPages: SQLite's `wal_autocheckpoint`. With the default
    ///   (1000 pages, ~4 MB of WAL) the commit that crosses it also checkpoints, with an
    ///   fsync: measured 5-20 ms on that one append, every ~1,500 decision steps, the rest
    ///   staying ~50 us. Pass 0 to keep every append cheap and call `checkpoint()` from
    ///   the event loop at quiet moments instead (the WAL grows until you do).
    public init(path: String, autoCheckpointPages: Int = 1000) throws(JournalError) {
        self.path = path
        self.isReadOnly = false
        do throws(RuntimePathsError) {
            try RuntimePaths.makeDirectories(RuntimePaths.parent(of: path))
        } catch {
            throw JournalError(code: 0, message: "cannot create the journal directory: \(error)")
        }
        // Create the file ourselves so its mode is 0600 whatever the umask; tighten an
        // existing one that we own.
        let fd = Glibc.open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        if fd < 0 {
            let e = errno
            throw JournalError(code: 0, message: "cannot open \(path): \(RuntimePaths.errnoText(e))")
        }
        var st = stat()
        if fstat(fd, &st) == 0 && st.st_uid == geteuid() && st.st_mode & 0o077 != 0 {
            _ = fchmod(fd, 0o600)
        }
        Glibc.close(fd)

        try openDatabase(flags: SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX)
        do throws(JournalError) {
            // The writer is vigil's event loop: a long wait would stall supervision. WAL
            // readers never block it; only another writer (a second vigil) could.
            try exec("PRAGMA busy_timeout = 1000")
            let mode = try scalarText("PRAGMA journal_mode = WAL")
            guard mode.lowercased() == "wal" else {
                throw JournalError(code: 0, message: "cannot switch \(path) to WAL mode (got \(mode))")
            }
            try exec("PRAGMA synchronous = NORMAL")
            try exec("PRAGMA wal_autocheckpoint = \(max(0, autoCheckpointPages))")
            try migrate()
        } catch {
            closeDatabase()
            throw error
        }
    }

    /// Opens an existing journal read-only, for the CLI (`vigil events`, `vigil runs`).
    ///
    /// Works while vigil is writing: in WAL mode a reader sees the last committed state
    /// and never blocks the writer. Waits up to 5 s for a lock in the rare cases a reader
    /// must (WAL recovery after a crash).
    public init(readOnlyPath path: String) throws(JournalError) {
        self.path = path
        self.isReadOnly = true
        if access(path, F_OK) != 0 {
            throw JournalError(code: 0, message: "no journal at \(path) (has vigil ever run with this state directory?)")
        }
        try openDatabase(flags: SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX)
        do throws(JournalError) {
            try exec("PRAGMA busy_timeout = 5000")
            let version = try storedSchemaVersion()
            guard let version else {
                throw JournalError(code: 0, message: "\(path) is not a vigil journal (no meta table)")
            }
            guard version <= Self.schemaVersion else {
                throw JournalError(code: 0, message: "\(path) has schema version \(version), newer than this vigil understands (\(Self.schemaVersion))")
            }
        } catch {
            closeDatabase()
            throw error
        }
    }

    deinit { closeDatabase() }

    /// Closes the connection now (also done on deinit). Further calls throw.
    public func close() { closeDatabase() }

    // MARK: - Writing

    /// Appends all records of one decision step in ONE transaction, and updates `runs`.
    ///
    /// vigil calls this before carrying out the effects the records describe, so after a
    /// crash the journal never lacks a decision that was acted on. Either all records are
    /// stored or none (the transaction is rolled back and the error rethrown).
    ///
    /// `runs` upkeep: `spawned` inserts the run (node, incarnation, pid, started); `ready`
    /// sets `ready_ns`; `exited` and `spawn_failed` set `exited_ns` and `exit` (the
    /// record's detail). A record without an incarnation updates the newest open run of
    /// its node (matching the pid when it has one).
    /// - Parameter wallNanoseconds: wall-clock time of the step (`vigil_realtime_ns()`).
    /// - Parameter meta: tree state to keep with these records, in the same transaction
    ///   (`safe_mode`; a nil value deletes the key), so after a crash the state and the
    ///   records that led to it agree.
    public func append(_ records: [Record], at wallNanoseconds: Int64, meta: [String: String?] = [:]) throws(JournalError) {
        guard !records.isEmpty || !meta.isEmpty else { return }
        try writable()
        try exec("BEGIN IMMEDIATE")
        do throws(JournalError) {
            for r in records {
                try insertEvent(r, at: wallNanoseconds)
                try updateRuns(r, at: wallNanoseconds)
            }
            for (key, value) in meta {
                if let value {
                    try run("INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value") { (s) throws(JournalError) in
                        sqlite3_bind_text(s, 1, key, -1, Self.transient)
                        sqlite3_bind_text(s, 2, value, -1, Self.transient)
                        try step(s, expectRow: false)
                    }
                } else {
                    try run("DELETE FROM meta WHERE key = ?") { (s) throws(JournalError) in
                        sqlite3_bind_text(s, 1, key, -1, Self.transient)
                        try step(s, expectRow: false)
                    }
                }
            }
            try exec("COMMIT")
        } catch {
            _ = sqlite3_exec(db, "ROLLBACK", nil, nil, nil)
            throw error
        }
    }

    /// Copies the WAL back into the database without waiting for readers (PASSIVE), so
    /// the WAL file stops growing. Costs an fsync (milliseconds). For callers that opened
    /// with `autoCheckpointPages: 0`.
    /// - Returns: WAL frames in the log and frames checkpointed (equal: WAL fully applied).
    @discardableResult
    public func checkpoint() throws(JournalError) -> (walFrames: Int, checkpointed: Int) {
        try writable()
        let db = try connection()
        var log: Int32 = 0
        var done: Int32 = 0
        let rc = sqlite3_wal_checkpoint_v2(db, nil, SQLITE_CHECKPOINT_PASSIVE, &log, &done)
        guard rc == SQLITE_OK else { throw failure(rc, "checkpoint") }
        return (Int(log), Int(done))
    }

    /// Records one start of vigil itself (`vigil_starts`): which process, when, and which
    /// topology file, so `vigil events` can show where one vigil's history ends.
    public func recordStart(pid: Int32, topology: String, at wallNanoseconds: Int64) throws(JournalError) {
        try writable()
        try run("INSERT INTO vigil_starts(pid, at_ns, topology) VALUES (?, ?, ?)") { (s) throws(JournalError) in
            sqlite3_bind_int64(s, 1, Int64(pid))
            sqlite3_bind_int64(s, 2, wallNanoseconds)
            sqlite3_bind_text(s, 3, topology, -1, Self.transient)
            try step(s, expectRow: false)
        }
    }

    // MARK: - Reading

    /// A value kept with `append(_:at:meta:)`, or nil.
    public func meta(_ key: String) throws(JournalError) -> String? {
        var value: String?
        try run("SELECT value FROM meta WHERE key = ?") { (s) throws(JournalError) in
            sqlite3_bind_text(s, 1, key, -1, Self.transient)
            if try step(s, expectRow: true) { value = String(cString: sqlite3_column_text(s, 0)) }
        }
        return value
    }

    /// The last `limit` events (optionally of one node), oldest first / newest last, as a
    /// terminal shows a log.
    public func events(limit: Int, node: String? = nil) throws(JournalError) -> [JournalEvent] {
        let sql = node == nil
            ? "SELECT id, at_ns, kind, node, pid, incarnation, detail FROM events ORDER BY id DESC LIMIT ?"
            : "SELECT id, at_ns, kind, node, pid, incarnation, detail FROM events WHERE node = ? ORDER BY id DESC LIMIT ?"
        var out: [JournalEvent] = []
        try run(sql) { (s) throws(JournalError) in
            var i: Int32 = 1
            if let node { sqlite3_bind_text(s, 1, node, -1, Self.transient); i = 2 }
            sqlite3_bind_int64(s, i, Int64(max(0, limit)))
            while try step(s, expectRow: true) {
                out.append(JournalEvent(
                    id: sqlite3_column_int64(s, 0),
                    wallNanoseconds: sqlite3_column_int64(s, 1),
                    kind: text(s, 2) ?? "",
                    node: text(s, 3) ?? "",
                    pid: int(s, 4).map { Int32(truncatingIfNeeded: $0) },
                    incarnation: int(s, 5).map { UInt64(bitPattern: $0) },
                    detail: text(s, 6) ?? ""))
            }
        }
        return out.reversed()
    }

    /// When each restart decision since `wallNanoseconds` was journaled, by node (the child
    /// that failed): what a new vigil that adopts the tree carries into intensity windows.
    public func restartDecisions(since wallNanoseconds: Int64) throws(JournalError) -> [String: [Int64]] {
        var out: [String: [Int64]] = [:]
        try run("SELECT node, at_ns FROM events WHERE kind = 'restart' AND at_ns >= ? ORDER BY id") { (s) throws(JournalError) in
            sqlite3_bind_int64(s, 1, wallNanoseconds)
            while try step(s, expectRow: true) {
                out[text(s, 0) ?? "", default: []].append(sqlite3_column_int64(s, 1))
            }
        }
        return out
    }

    /// The last `limit` child runs (optionally of one node), ordered by start time,
    /// newest last.
    public func runs(node: String?, limit: Int) throws(JournalError) -> [ChildRun] {
        let columns = "node, incarnation, pid, started_ns, ready_ns, exited_ns, exit, main_pid"
        let sql = node == nil
            ? "SELECT \(columns) FROM runs ORDER BY started_ns DESC, incarnation DESC LIMIT ?"
            : "SELECT \(columns) FROM runs WHERE node = ? ORDER BY started_ns DESC, incarnation DESC LIMIT ?"
        var out: [ChildRun] = []
        try run(sql) { (s) throws(JournalError) in
            var i: Int32 = 1
            if let node { sqlite3_bind_text(s, 1, node, -1, Self.transient); i = 2 }
            sqlite3_bind_int64(s, i, Int64(max(0, limit)))
            while try step(s, expectRow: true) {
                out.append(ChildRun(
                    node: text(s, 0) ?? "",
                    incarnation: UInt64(bitPattern: sqlite3_column_int64(s, 1)),
                    pid: int(s, 2).map { Int32(truncatingIfNeeded: $0) },
                    startedNanoseconds: sqlite3_column_int64(s, 3),
                    readyNanoseconds: int(s, 4),
                    exitedNanoseconds: int(s, 5),
                    exit: text(s, 6),
                    mainPID: int(s, 7).map { Int32(truncatingIfNeeded: $0) }))
            }
        }
        return out.reversed()
    }

    /// The highest incarnation journaled per node. A restarted vigil seeds its counters
    /// from this so a new run never reuses a (node, incarnation) key of an old one.
    public func lastIncarnations() throws(JournalError) -> [String: UInt64] {
        var out: [String: UInt64] = [:]
        try run("SELECT node, MAX(incarnation) FROM runs GROUP BY node") { (s) throws(JournalError) in
            while try step(s, expectRow: true) {
                out[text(s, 0) ?? ""] = UInt64(bitPattern: sqlite3_column_int64(s, 1))
            }
        }
        return out
    }

    /// The most recent starts of vigil itself, newest last.
    public func starts(limit: Int) throws(JournalError) -> [(pid: Int32, wallNanoseconds: Int64, topology: String)] {
        var out: [(pid: Int32, wallNanoseconds: Int64, topology: String)] = []
        try run("SELECT pid, at_ns, topology FROM vigil_starts ORDER BY id DESC LIMIT ?") { (s) throws(JournalError) in
            sqlite3_bind_int64(s, 1, Int64(max(0, limit)))
            while try step(s, expectRow: true) {
                out.append((Int32(truncatingIfNeeded: sqlite3_column_int64(s, 0)),
                            sqlite3_column_int64(s, 1), text(s, 2) ?? ""))
            }
        }
        return out.reversed()
    }

    // MARK: - Schema

    private func migrate() throws(JournalError) {
        try exec("BEGIN IMMEDIATE")
        do throws(JournalError) {
            try exec("CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            let stored = try storedSchemaVersion()
            if let stored, stored > Self.schemaVersion {
                throw JournalError(code: 0, message: "\(path) has schema version \(stored), newer than this vigil understands (\(Self.schemaVersion))")
            }
            if stored == nil {
                try exec("""
                    CREATE TABLE IF NOT EXISTS events(
                        id INTEGER PRIMARY KEY,
                        at_ns INTEGER NOT NULL,
                        kind TEXT NOT NULL,
                        node TEXT NOT NULL,
                        pid INTEGER NULL,
                        incarnation INTEGER NULL,
                        detail TEXT NOT NULL);
                    CREATE INDEX IF NOT EXISTS events_by_node ON events(node, id);
                    CREATE TABLE IF NOT EXISTS runs(
                        node TEXT NOT NULL,
                        incarnation INTEGER NOT NULL,
                        pid INTEGER NULL,
                        started_ns INTEGER NOT NULL,
                        ready_ns INTEGER NULL,
                        exited_ns INTEGER NULL,
                        exit TEXT NULL,
                        main_pid INTEGER NULL,
                        PRIMARY KEY(node, incarnation)) WITHOUT ROWID;
                    CREATE INDEX IF NOT EXISTS runs_by_start ON runs(started_ns);
                    CREATE TABLE IF NOT EXISTS vigil_starts(
                        id INTEGER PRIMARY KEY,
                        pid INTEGER NOT NULL,
                        at_ns INTEGER NOT NULL,
                        topology TEXT NOT NULL);
                    INSERT INTO meta(key, value) VALUES ('schema_version', '\(Self.schemaVersion)');
                    """)
            } else if stored == 1 {
                // 2: runs.main_pid, a forking daemon's MAINPID=, so a new vigil can adopt it.
                try exec("""
                    ALTER TABLE runs ADD COLUMN main_pid INTEGER NULL;
                    UPDATE meta SET value = '2' WHERE key = 'schema_version';
                    """)
            }
            try exec("COMMIT")
        } catch {
            _ = sqlite3_exec(db, "ROLLBACK", nil, nil, nil)
            throw error
        }
    }

    /// nil when there is no meta table or no version row yet.
    private func storedSchemaVersion() throws(JournalError) -> Int? {
        var hasMeta = false
        try run("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'") { (s) throws(JournalError) in
            hasMeta = try step(s, expectRow: true)
        }
        guard hasMeta else { return nil }
        var version: Int?
        try run("SELECT value FROM meta WHERE key = 'schema_version'") { (s) throws(JournalError) in
            if try step(s, expectRow: true) { version = text(s, 0).flatMap { Int($0) } }
        }
        return version
    }

    // MARK: - Record upkeep

    private func insertEvent(_ r: Record, at ns: Int64) throws(JournalError) {
        try run("INSERT INTO events(at_ns, kind, node, pid, incarnation, detail) VALUES (?, ?, ?, ?, ?, ?)") { (s) throws(JournalError) in
            sqlite3_bind_int64(s, 1, ns)
            sqlite3_bind_text(s, 2, r.kind.rawValue, -1, Self.transient)
            sqlite3_bind_text(s, 3, r.node, -1, Self.transient)
            bind(s, 4, r.pid.map(Int64.init))
            bind(s, 5, r.incarnation.map { Int64(bitPattern: $0) })
            sqlite3_bind_text(s, 6, r.detail, -1, Self.transient)
            try step(s, expectRow: false)
        }
    }

    private func updateRuns(_ r: Record, at ns: Int64) throws(JournalError) {
        switch r.kind {
        case .spawned:
            guard let inc = r.incarnation else { return }
            // A (node, incarnation) seen again means the counters restarted (see
            // lastIncarnations()); the newer run replaces the older row.
            try run("INSERT OR REPLACE INTO runs(node, incarnation, pid, started_ns) VALUES (?, ?, ?, ?)") { (s) throws(JournalError) in
                sqlite3_bind_text(s, 1, r.node, -1, Self.transient)
                sqlite3_bind_int64(s, 2, Int64(bitPattern: inc))
                bind(s, 3, r.pid.map(Int64.init))
                sqlite3_bind_int64(s, 4, ns)
                try step(s, expectRow: false)
            }
        case .ready:
            try updateRun(r, set: "ready_ns = ?1", at: ns, exit: nil)
        case .mainPID:
            guard let inc = r.incarnation, let main = r.pid else { return }
            try run("UPDATE runs SET main_pid = ? WHERE node = ? AND incarnation = ?") { (s) throws(JournalError) in
                sqlite3_bind_int64(s, 1, Int64(main))
                sqlite3_bind_text(s, 2, r.node, -1, Self.transient)
                sqlite3_bind_int64(s, 3, Int64(bitPattern: inc))
                try step(s, expectRow: false)
            }
        case .exited:
            try updateRun(r, set: "exited_ns = ?1, exit = ?2", at: ns, exit: r.detail)
        case .spawnFailed:
            guard let inc = r.incarnation else {
                try updateRun(r, set: "exited_ns = ?1, exit = ?2", at: ns, exit: r.detail)
                return
            }
            // No process ever existed, so there may be no `spawned` row: create the run
            // already finished.
            try run("""
                INSERT INTO runs(node, incarnation, pid, started_ns, exited_ns, exit) VALUES (?, ?, ?, ?, ?, ?)
                ON CONFLICT(node, incarnation) DO UPDATE SET exited_ns = excluded.exited_ns, exit = excluded.exit
                """) { (s) throws(JournalError) in
                sqlite3_bind_text(s, 1, r.node, -1, Self.transient)
                sqlite3_bind_int64(s, 2, Int64(bitPattern: inc))
                bind(s, 3, r.pid.map(Int64.init))
                sqlite3_bind_int64(s, 4, ns)
                sqlite3_bind_int64(s, 5, ns)
                sqlite3_bind_text(s, 6, r.detail, -1, Self.transient)
                try step(s, expectRow: false)
            }
        default:
            return
        }
    }

    /// `set` uses ?1 for the time and ?2 for the exit text; ?3 is the node, ?4 the
    /// incarnation or pid.
    private func updateRun(_ r: Record, set: String, at ns: Int64, exit: String?) throws(JournalError) {
        let target: String
        if r.incarnation != nil {
            target = "node = ?3 AND incarnation = ?4"
        } else {
            let byPID = r.pid != nil ? "AND pid = ?4 " : ""
            target = "node = ?3 AND incarnation = (SELECT incarnation FROM runs WHERE node = ?3 \(byPID)AND exited_ns IS NULL ORDER BY started_ns DESC, incarnation DESC LIMIT 1)"
        }
        try run("UPDATE runs SET \(set) WHERE \(target)") { (s) throws(JournalError) in
            sqlite3_bind_int64(s, 1, ns)
            if let exit { sqlite3_bind_text(s, 2, exit, -1, Self.transient) }
            sqlite3_bind_text(s, 3, r.node, -1, Self.transient)
            if let inc = r.incarnation {
                sqlite3_bind_int64(s, 4, Int64(bitPattern: inc))
            } else if let pid = r.pid {
                sqlite3_bind_int64(s, 4, Int64(pid))
            }
            try step(s, expectRow: false)
        }
    }

    // MARK: - SQLite plumbing

    private func openDatabase(flags: Int32) throws(JournalError) {
        var handle: OpaquePointer?
        let rc = sqlite3_open_v2(path, &handle, flags, nil)
        guard rc == SQLITE_OK, let handle else {
            let msg = handle.map { String(cString: sqlite3_errmsg($0)) } ?? String(cString: sqlite3_errstr(rc))
            if let handle { sqlite3_close_v2(handle) }
            throw JournalError(code: rc, message: "cannot open \(path): \(msg)")
        }
        sqlite3_extended_result_codes(handle, 1)
        db = handle
    }

    private func closeDatabase() {
        for (_, s) in statements { sqlite3_finalize(s) }
        statements.removeAll()
        if let db { sqlite3_close_v2(db) }
        db = nil
    }

    private func writable() throws(JournalError) {
        if isReadOnly { throw JournalError(code: 0, message: "\(path) was opened read-only") }
    }

    private func connection() throws(JournalError) -> OpaquePointer {
        guard let db else { throw JournalError(code: 0, message: "\(path) is closed") }
        return db
    }

    private func failure(_ rc: Int32, _ doing: String) -> JournalError {
        let msg = db.map { String(cString: sqlite3_errmsg($0)) } ?? String(cString: sqlite3_errstr(rc))
        return JournalError(code: rc, message: "\(doing): \(msg)")
    }

    private func exec(_ sql: String) throws(JournalError) {
        let db = try connection()
        var err: UnsafeMutablePointer<CChar>?
        let rc = sqlite3_exec(db, sql, nil, nil, &err)
        if rc != SQLITE_OK {
            let msg = err.map { String(cString: $0) } ?? String(cString: sqlite3_errstr(rc))
            sqlite3_free(err)
            throw JournalError(code: rc, message: "\(sql.prefix(60)): \(msg)")
        }
    }

    private func scalarText(_ sql: String) throws(JournalError) -> String {
        var value = ""
        try run(sql) { (s) throws(JournalError) in
            if try step(s, expectRow: true) { value = text(s, 0) ?? "" }
        }
        return value
    }

    /// Runs `body` with the cached prepared statement for `sql`, then resets it so it
    /// holds no read transaction open and keeps no bound text alive.
    private func run(_ sql: String, _ body: (OpaquePointer) throws(JournalError) -> Void) throws(JournalError) {
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

    /// Steps once: true when a row is available. With `expectRow: false`, a statement
    /// that must just finish.
    @discardableResult
    private func step(_ s: OpaquePointer, expectRow: Bool) throws(JournalError) -> Bool {
        let rc = sqlite3_step(s)
        switch rc {
        case SQLITE_ROW: return true
        case SQLITE_DONE: return false
        default:
            let sql = sqlite3_sql(s).map { String(cString: $0) } ?? "?"
            throw failure(rc, String(sql.prefix(60)))
        }
    }

    private func bind(_ s: OpaquePointer, _ i: Int32, _ v: Int64?) {
        if let v { sqlite3_bind_int64(s, i, v) } else { sqlite3_bind_null(s, i) }
    }

    private func text(_ s: OpaquePointer, _ i: Int32) -> String? {
        guard sqlite3_column_type(s, i) != SQLITE_NULL, let p = sqlite3_column_text(s, i) else { return nil }
        return String(cString: p)
    }

    private func int(_ s: OpaquePointer, _ i: Int32) -> Int64? {
        sqlite3_column_type(s, i) == SQLITE_NULL ? nil : sqlite3_column_int64(s, i)
    }
}
