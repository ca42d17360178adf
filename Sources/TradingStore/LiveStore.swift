// A connection that follows the trading database file: when db-watchdog swaps a restored
// database in, or the file is deleted or damaged, a long-lived connection would go on
// reading (and writing) the old file unseen. `LiveStore` checks before each use.
@preconcurrency import Glibc
import CSQLite

/// The trading database for a long-running worker, reopened when the file at `path` is
/// not the one it has open (replaced by a restore), and after an error that says the file
/// is damaged or gone. It never creates the file (db-watchdog does): while it is missing,
/// or flagged unhealthy, every use fails, so writers stop writing instead of filling a
/// file nobody will read.
public final class LiveStore {
    public let path: String
    /// Given to every store opened; with one, each (re)open first replays it (the gateway:
    /// fills it committed to a file replaced since are put back before it writes again).
    public let journal: FillJournal?
    /// Runs on each newly opened store before it is used (e.g. the gateway's tables).
    private let prepare: (TradingStore) throws(DatabaseError) -> Void
    private var store: TradingStore?
    private var identity: (device: UInt64, inode: UInt64)?
    /// The file last opened, kept across `close()`, to tell a reopen of the same file from a new one.
    private var lastFile: (device: UInt64, inode: UInt64)?
    /// How many times a store was opened (a new file, or the same one after an error).
    public private(set) var opens = 0
    /// How many of those opened a different file than the one before (a restore swapped it in).
    public private(set) var replacements = 0
    /// What the last (re)open found: why it reopened and what the replay did.
    public private(set) var lastOpen = ""

    public init(path: String, journal: FillJournal? = nil,
                prepare: @escaping (TradingStore) throws(DatabaseError) -> Void = { (_: TradingStore) throws(DatabaseError) in }) {
        self.path = path
        self.journal = journal
        self.prepare = prepare
    }

    deinit { close() }

    /// The store for the file now at `path`, opened (and prepared, and the journal
    /// replayed) if it is not the one open. Throws while the file is missing or unusable.
    public func current() throws(DatabaseError) -> TradingStore {
        guard !UnhealthyFlag.isRaised(databasePath: path) else {
            close()
            throw DatabaseError(code: SQLITE_CORRUPT, message: "\(path) is flagged unhealthy by db-watchdog (being restored): not used")
        }
        guard let now = LiveStore.identity(of: path) else {
            close()
            throw DatabaseError(code: SQLITE_CANTOPEN, message: "\(path) is missing (being restored?): not opened, not created")
        }
        if let store, let identity, identity == now { return store }
        let replaced = lastFile.map { $0 != now } ?? false
        let why = opens == 0 ? "opened" : replaced ? "the file was replaced (restored?): reopened" : "reopened after an error"
        close()
        let s = try TradingStore(path: path, create: false)
        guard try s.hasSchema(), try !s.instruments().isEmpty else {
            s.close()
            throw DatabaseError(code: SQLITE_CORRUPT, message: "\(path) has no schema or no instruments")
        }
        try prepare(s)
        var replayed = ""
        if let journal {
            do {
                let outcome = try s.replay(journal.read().entries)
                replayed = "; fill journal replayed: \(outcome)"
            } catch let e as DatabaseError {
                s.close()
                throw e
            } catch {
                replayed = "; fill journal unreadable: \(error)"
            }
        }
        s.journal = journal
        store = s
        identity = now
        lastFile = now
        opens += 1
        if replaced { replacements += 1 }
        lastOpen = why + replayed
        return s
    }

    /// Tells the store an operation failed: an error saying the file is damaged, gone or
    /// moved closes it, so the next `current()` reopens (the others, BUSY or a constraint,
    /// leave it open).
    public func failed(_ error: any Error) {
        guard let e = error as? DatabaseError else { return }
        if LiveStore.isFileLevel(e.code) { close() }
    }

    /// SQLITE_CORRUPT, NOTADB, IOERR, CANTOPEN, READONLY (a moved file), by primary code.
    public static func isFileLevel(_ code: Int32) -> Bool {
        [SQLITE_CORRUPT, SQLITE_NOTADB, SQLITE_IOERR, SQLITE_CANTOPEN, SQLITE_READONLY, SQLITE_FULL].contains(code & 0xFF)
    }

    public func close() {
        store?.close()
        store = nil
        identity = nil
    }

    static func identity(of path: String) -> (device: UInt64, inode: UInt64)? {
        var st = stat()
        guard stat(path, &st) == 0 else { return nil }
        return (UInt64(st.st_dev), UInt64(st.st_ino))
    }
}
