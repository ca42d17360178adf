// A minimal SQLite wrapper over the CSQLite system library.
//
// Part of the TradingStore target, shared by every worker that opens the trading database.
import CSQLite

/// An SQLite failure: the result code and SQLite's message.
public struct DatabaseError: Error, CustomStringConvertible {
    public let code: Int32
    public let message: String
    public var description: String { "\(message) (sqlite code \(code))" }

    public init(code: Int32, message: String) {
        self.code = code
        self.message = message
    }
}

/// One connection. Not thread-safe: use it from one thread (the worker's main loop).
public final class Database {
    private(set) var handle: OpaquePointer?
    public let path: String

    /// Opens `path`; with `create`, creates the file if missing. Sets a busy timeout so
    /// concurrent writers (gateway) and readers (guardian, warmer) wait instead of failing.
    public init(path: String, create: Bool, busyTimeoutMilliseconds: Int32 = 5000) throws(DatabaseError) {
        self.path = path
        var db: OpaquePointer?
        let flags = SQLITE_OPEN_READWRITE | (create ? SQLITE_OPEN_CREATE : 0) | SQLITE_OPEN_NOMUTEX
        let rc = sqlite3_open_v2(path, &db, flags, nil)
        guard rc == SQLITE_OK, let db else {
            let message = db.map { String(cString: sqlite3_errmsg($0)) } ?? "out of memory"
            sqlite3_close_v2(db)
            throw DatabaseError(code: rc, message: "cannot open \(path): \(message)")
        }
        handle = db
        sqlite3_busy_timeout(db, busyTimeoutMilliseconds)
    }

    deinit { close() }

    /// Closes the connection (idempotent). Finalize statements first.
    public func close() {
        if let h = handle { sqlite3_close_v2(h) }
        handle = nil
    }

    public var lastError: DatabaseError {
        DatabaseError(code: sqlite3_errcode(handle), message: String(cString: sqlite3_errmsg(handle)))
    }

    /// Runs one or more statements that return no rows.
    public func execute(_ sql: String) throws(DatabaseError) {
        var err: UnsafeMutablePointer<CChar>?
        let rc = sqlite3_exec(handle, sql, nil, nil, &err)
        if rc != SQLITE_OK {
            let message = err.map { String(cString: $0) } ?? "error"
            sqlite3_free(err)
            throw DatabaseError(code: rc, message: message)
        }
    }

    public func prepare(_ sql: String) throws(DatabaseError) -> Statement {
        var stmt: OpaquePointer?
        let rc = sqlite3_prepare_v2(handle, sql, -1, &stmt, nil)
        guard rc == SQLITE_OK, let stmt else { throw lastError }
        return Statement(stmt, database: self)
    }

    /// Runs `body` in an IMMEDIATE transaction: committed if it returns, rolled back if it throws.
    public func transaction<T>(_ body: () throws(DatabaseError) -> T) throws(DatabaseError) -> T {
        try execute("BEGIN IMMEDIATE")
        do {
            let result = try body()
            try execute("COMMIT")
            return result
        } catch {
            try? execute("ROLLBACK")
            throw error
        }
    }

    public var lastInsertRowID: Int64 { sqlite3_last_insert_rowid(handle) }
}

/// A value bound to a statement parameter.
public enum SQLValue {
    case int(Int64)
    case text(String)
    case null
}

/// A prepared statement. Bind, step, read columns, reset, repeat.
public final class Statement {
    private var stmt: OpaquePointer?
    private unowned let database: Database
    private static let transient = unsafeBitCast(-1, to: sqlite3_destructor_type.self)

    public init(_ stmt: OpaquePointer, database: Database) {
        self.stmt = stmt
        self.database = database
    }

    deinit { finalize() }

    public func finalize() {
        if let s = stmt { sqlite3_finalize(s) }
        stmt = nil
    }

    /// Resets the statement and binds `values` to parameters 1, 2, ...
    @discardableResult
    public func bind(_ values: SQLValue...) throws(DatabaseError) -> Statement {
        sqlite3_reset(stmt)
        sqlite3_clear_bindings(stmt)
        for (i, v) in values.enumerated() {
            let index = Int32(i + 1)
            let rc: Int32
            switch v {
            case .int(let n): rc = sqlite3_bind_int64(stmt, index, n)
            case .text(let s): rc = sqlite3_bind_text(stmt, index, s, -1, Statement.transient)
            case .null: rc = sqlite3_bind_null(stmt, index)
            }
            guard rc == SQLITE_OK else { throw database.lastError }
        }
        return self
    }

    /// Advances: true when a row is available, false when done.
    public func step() throws(DatabaseError) -> Bool {
        let rc = sqlite3_step(stmt)
        if rc == SQLITE_ROW { return true }
        if rc == SQLITE_DONE { return false }
        let error = database.lastError
        sqlite3_reset(stmt)
        throw error
    }

    /// Steps to completion, ignoring rows (for INSERT/UPDATE).
    public func run() throws(DatabaseError) {
        while try step() {}
        sqlite3_reset(stmt)
    }

    public func int64(_ column: Int32) -> Int64 { sqlite3_column_int64(stmt, column) }

    public func text(_ column: Int32) -> String {
        guard let p = sqlite3_column_text(stmt, column) else { return "" }
        return String(cString: p)
    }

    public func isNull(_ column: Int32) -> Bool { sqlite3_column_type(stmt, column) == SQLITE_NULL }
}
