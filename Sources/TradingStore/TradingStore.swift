// The trading database: schema and the queries the workers run.
//
// Its own target so every worker that opens the trading database shares one copy.
import CShim
import Trading

/// The trading database (SQLite, WAL). db-watchdog creates the schema and seeds it; the
/// gateway writes prices, orders and fills; the cache warmer and risk guardian read.
public final class TradingStore {
    public let db: Database
    /// Where every committed fill is also appended (the gateway sets it); nil: not journaled.
    public var journal: FillJournal?
    /// Fills inserted by the transaction in progress, journaled once it commits.
    var pendingJournal: [JournalEntry] = []
    /// Appends to `journal` that failed after their fill was committed (the fill stands:
    /// the client is told, as the database says; only its second copy is missing).
    public private(set) var journalFailures = 0
    public private(set) var lastJournalError: JournalError?

    /// The default path: `--db`, else `$VIGIL_STATE_DIR/trading.db`, else `./trading.db`.
    public static func defaultPath(stateDirectory: String?) -> String {
        stateDirectory.map { $0.hasSuffix("/") ? "\($0)trading.db" : "\($0)/trading.db" } ?? "./trading.db"
    }

    /// Every table the workers use. Money is integer micro-units; times are ns since the epoch.
    public static let schema = """
        CREATE TABLE IF NOT EXISTS instruments (
            symbol            TEXT PRIMARY KEY,
            seed_price_micros INTEGER NOT NULL CHECK (seed_price_micros > 0)
        ) STRICT;
        -- The last price of each instrument (one row each, upserted by the gateway).
        CREATE TABLE IF NOT EXISTS prices (
            symbol       TEXT PRIMARY KEY REFERENCES instruments(symbol),
            price_micros INTEGER NOT NULL CHECK (price_micros > 0),
            updated_ns   INTEGER NOT NULL
        ) STRICT;
        CREATE TABLE IF NOT EXISTS orders (
            id              INTEGER PRIMARY KEY,
            client_order_id TEXT NOT NULL UNIQUE,
            symbol          TEXT NOT NULL REFERENCES instruments(symbol),
            side            TEXT NOT NULL CHECK (side IN ('BUY', 'SELL')),
            quantity        INTEGER NOT NULL CHECK (quantity > 0),
            received_ns     INTEGER NOT NULL
        ) STRICT;
        CREATE TABLE IF NOT EXISTS fills (
            id              INTEGER PRIMARY KEY,
            order_id        INTEGER NOT NULL UNIQUE REFERENCES orders(id),
            client_order_id TEXT NOT NULL UNIQUE,
            symbol          TEXT NOT NULL REFERENCES instruments(symbol),
            side            TEXT NOT NULL CHECK (side IN ('BUY', 'SELL')),
            quantity        INTEGER NOT NULL CHECK (quantity > 0),
            price_micros    INTEGER NOT NULL CHECK (price_micros > 0),
            filled_ns       INTEGER NOT NULL
        ) STRICT;
        """ + TradingStore.gatewaySchema

    /// Instruments seeded into an empty database, with start prices.
    public static let seedInstruments: [(String, Price)] = [
        ("BTC-USD", Price(units: 60_000)),
        ("ETH-USD", Price(units: 3_000)),
        ("SOL-USD", Price(units: 150)),
    ]

    /// Opens the database. `create`: create the file if missing (only db-watchdog does).
    public init(path: String, create: Bool) throws(DatabaseError) {
        db = try Database(path: path, create: create)
        try db.execute("PRAGMA foreign_keys = ON")
    }

    public func close() { db.close() }

    /// WAL mode (persistent in the file), synchronous=NORMAL, the schema.
    public func createSchema() throws(DatabaseError) {
        let mode = try db.prepare("PRAGMA journal_mode = WAL")
        guard try mode.step(), mode.text(0) == "wal" else {
            throw DatabaseError(code: -1, message: "cannot switch \(db.path) to WAL mode")
        }
        mode.finalize()
        try db.execute("PRAGMA synchronous = NORMAL")
        try db.execute(TradingStore.schema)
    }

    /// Whether the schema is present (the readers wait for db-watchdog to create it).
    public func hasSchema() throws(DatabaseError) -> Bool {
        let s = try db.prepare("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name IN ('instruments', 'prices', 'orders', 'fills')")
        _ = try s.step()
        return s.int64(0) == 4
    }

    /// Seeds the instruments if the table is empty. Returns how many were inserted.
    public func seedIfEmpty() throws(DatabaseError) -> Int {
        try db.transaction { () throws(DatabaseError) -> Int in
            let count = try db.prepare("SELECT count(*) FROM instruments")
            _ = try count.step()
            guard count.int64(0) == 0 else { return 0 }
            let insert = try db.prepare("INSERT INTO instruments (symbol, seed_price_micros) VALUES (?, ?)")
            for (symbol, price) in TradingStore.seedInstruments {
                try insert.bind(.text(symbol), .int(price.micros)).run()
            }
            return TradingStore.seedInstruments.count
        }
    }

    /// `PRAGMA quick_check`: ["ok"] when healthy, else the problems it lists.
    public func quickCheck() throws(DatabaseError) -> [String] {
        let s = try db.prepare("PRAGMA quick_check")
        var lines: [String] = []
        while try s.step() { lines.append(s.text(0)) }
        return lines
    }

    /// Every instrument with its seed price, by symbol. Rows with invalid symbols are skipped.
    public func instruments() throws(DatabaseError) -> [(Instrument, seed: Price)] {
        let s = try db.prepare("SELECT symbol, seed_price_micros FROM instruments ORDER BY symbol")
        var out: [(Instrument, seed: Price)] = []
        while try s.step() {
            if let i = try? Instrument(s.text(0)) { out.append((i, Price(micros: s.int64(1)))) }
        }
        return out
    }

    /// The last price of every instrument that has one, with its update time.
    public func lastPrices() throws(DatabaseError) -> [Instrument: (price: Price, updatedNs: Int64)] {
        let s = try db.prepare("SELECT symbol, price_micros, updated_ns FROM prices")
        var out: [Instrument: (price: Price, updatedNs: Int64)] = [:]
        while try s.step() {
            if let i = try? Instrument(s.text(0)) { out[i] = (Price(micros: s.int64(1)), s.int64(2)) }
        }
        return out
    }

    private var upsertPrice: Statement?

    /// Upserts the last prices in one transaction.
    public func storePrices(_ prices: [(Instrument, Price)], at ns: Int64) throws(DatabaseError) {
        if upsertPrice == nil {
            upsertPrice = try db.prepare("""
                INSERT INTO prices (symbol, price_micros, updated_ns) VALUES (?, ?, ?)
                ON CONFLICT (symbol) DO UPDATE SET price_micros = excluded.price_micros, updated_ns = excluded.updated_ns
                """)
        }
        let s = upsertPrice!
        try db.transaction { () throws(DatabaseError) in
            for (i, p) in prices { try s.bind(.text(i.symbol), .int(p.micros), .int(ns)).run() }
        }
    }

    /// The fill already recorded for a client order id, if any.
    public func fill(for id: ClientOrderID) throws(DatabaseError) -> Fill? {
        let s = try db.prepare("SELECT id, symbol, side, quantity, price_micros FROM fills WHERE client_order_id = ?")
        try s.bind(.text(id.rawValue))
        guard try s.step() else { return nil }
        return TradingStore.fill(id: s.int64(0), clientOrderID: id.rawValue, symbol: s.text(1), side: s.text(2),
                                 quantity: s.int64(3), price: s.int64(4))
    }

    /// Records `order` and its fill at `price` atomically; returns the fill (journaled).
    public func record(_ order: Order, filledAt price: Price) throws(DatabaseError) -> Fill {
        try journaledTransaction { () throws(DatabaseError) -> Fill in try insertFilled(order, at: price) }
    }

    /// An IMMEDIATE transaction whose inserted fills are appended to `journal` (and fsync'd)
    /// once it has committed, before the caller can tell anyone about them. Committed
    /// first, journaled second: a journal line is never a fill the database refused.
    func journaledTransaction<T>(_ body: () throws(DatabaseError) -> T) throws(DatabaseError) -> T {
        pendingJournal.removeAll()
        defer { pendingJournal.removeAll() }
        let result = try db.transaction(body)
        if let journal, !pendingJournal.isEmpty {
            do { try journal.append(pendingJournal) } catch {
                journalFailures += 1
                lastJournalError = error
            }
        }
        return result
    }

    /// Inserts `order` and its fill at `price`; call inside a transaction.
    func insertFilled(_ order: Order, at price: Price) throws(DatabaseError) -> Fill {
        let now = vigil_realtime_ns()
        let o = try db.prepare("INSERT INTO orders (client_order_id, symbol, side, quantity, received_ns) VALUES (?, ?, ?, ?, ?)")
        try o.bind(.text(order.clientOrderID.rawValue), .text(order.instrument.symbol), .text(order.side.rawValue),
                   .int(order.quantity), .int(now)).run()
        return try insertFill(orderID: db.lastInsertRowID, order, at: price, now: now)
    }

    /// Inserts the fill of the recorded order `orderID`; call inside a transaction.
    func insertFill(orderID: Int64, _ order: Order, at price: Price, now: Int64) throws(DatabaseError) -> Fill {
        let f = try db.prepare("INSERT INTO fills (order_id, client_order_id, symbol, side, quantity, price_micros, filled_ns) VALUES (?, ?, ?, ?, ?, ?, ?)")
        try f.bind(.int(orderID), .text(order.clientOrderID.rawValue), .text(order.instrument.symbol),
                   .text(order.side.rawValue), .int(order.quantity), .int(price.micros), .int(now)).run()
        let fillID = db.lastInsertRowID
        guard let fill = try? Fill(fillID: fillID, order: order, price: price) else {
            throw DatabaseError(code: -1, message: "invalid fill")
        }
        pendingJournal.append(JournalEntry(fill, filledNs: now))
        return fill
    }

    /// Fills with row id greater than `rowid`, in order, at most `limit`. Rows that do not
    /// form a valid fill are reported in `invalid` by id and skipped.
    public func fills(after rowid: Int64, limit: Int = 10_000) throws(DatabaseError) -> (fills: [Fill], invalid: [Int64]) {
        let s = try db.prepare("SELECT id, client_order_id, symbol, side, quantity, price_micros FROM fills WHERE id > ? ORDER BY id LIMIT ?")
        try s.bind(.int(rowid), .int(Int64(limit)))
        var fills: [Fill] = [], invalid: [Int64] = []
        while try s.step() {
            if let f = TradingStore.fill(id: s.int64(0), clientOrderID: s.text(1), symbol: s.text(2), side: s.text(3),
                                         quantity: s.int64(4), price: s.int64(5)) {
                fills.append(f)
            } else {
                invalid.append(s.int64(0))
            }
        }
        return (fills, invalid)
    }

    public static func fill(id: Int64, clientOrderID: String, symbol: String, side: String, quantity: Int64, price: Int64) -> Fill? {
        guard let c = try? ClientOrderID(clientOrderID), let i = try? Instrument(symbol), let s = Side(rawValue: side) else { return nil }
        return try? Fill(fillID: id, clientOrderID: c, instrument: i, side: s, quantity: quantity, price: Price(micros: price))
    }
}

extension TradingStore {
    /// The error code of "the database has nothing to cache yet" (no SQLite code).
    public static let nothingToCacheCode: Int32 = -2

    /// The cache warmer's snapshot, read in one read transaction so instruments, prices and
    /// fills are of one moment of the database (the gateway may commit meanwhile; WAL
    /// readers see the state as of their first read). Its `builtNs` is when the read began.
    public func cacheSnapshot(generation: Int) throws(DatabaseError) -> CacheSnapshot {
        let began = vigil_monotonic_ns()
        try db.execute("BEGIN DEFERRED")
        let instruments: [(Instrument, seed: Price)]
        let prices: [Instrument: (price: Price, updatedNs: Int64)]
        var fills: [Fill] = []
        do {
            instruments = try self.instruments()
            prices = try lastPrices()
            var after: Int64 = 0
            while true {
                let batch = try self.fills(after: after)
                fills += batch.fills
                let last = max(batch.fills.last?.fillID ?? 0, batch.invalid.max() ?? 0)
                if last <= after { break }
                after = last
            }
            try db.execute("COMMIT")
        } catch {
            try? db.execute("ROLLBACK")
            throw error
        }
        do { return try CacheSnapshot(generation: generation, instruments: instruments, lastPrices: prices, fills: fills, builtNs: began) } catch {
            throw DatabaseError(code: TradingStore.nothingToCacheCode, message: "\(error)")
        }
    }
}
