// Putting journaled fills back into a restored database, idempotently: replaying the same
// journal twice, or into a database that already has some of its fills, changes nothing
// the second time.
import Trading

/// What one replay did.
public struct ReplayOutcome: Equatable, Sendable, CustomStringConvertible {
    /// Fill ids inserted, with the id the journal gives them.
    public var inserted: [Int64] = []
    /// Inserted under a new id because the journal's id belongs to another order in this
    /// database (a damaged database can hand out an id twice): (journal id, new id).
    public var renumbered: [(journal: Int64, now: Int64)] = []
    /// Entries already in the database (same client order id), skipped.
    public var present = 0
    /// Entries whose client order id was rejected in this database: one outcome per id,
    /// so the rejection stands and the fill is not inserted.
    public var conflicts: [ClientOrderID] = []

    public init() {}

    public static func == (a: ReplayOutcome, b: ReplayOutcome) -> Bool {
        a.inserted == b.inserted && a.present == b.present && a.conflicts == b.conflicts
            && a.renumbered.map(\.journal) == b.renumbered.map(\.journal) && a.renumbered.map(\.now) == b.renumbered.map(\.now)
    }

    public var description: String {
        var parts = ["\(inserted.count + renumbered.count) fills re-inserted", "\(present) already present"]
        if !renumbered.isEmpty { parts.append("\(renumbered.count) under a new id (" + renumbered.map { "\($0.journal)->\($0.now)" }.joined(separator: " ") + ")") }
        if !conflicts.isEmpty { parts.append("\(conflicts.count) rejected in the database, kept rejected: " + conflicts.map(\.rawValue).joined(separator: " ")) }
        if let first = inserted.first, let last = inserted.last { parts.append("ids \(first)...\(last)") }
        return parts.joined(separator: ", ")
    }
}

extension TradingStore {
    /// Inserts every journaled fill the database does not have, in one transaction.
    ///
    /// A fill is identified by its client order id (the database allows one fill per id,
    /// and the client was told about exactly one): an entry whose client order id has a fill
    /// is skipped, whatever its id. Otherwise it is inserted under its journal fill id, so
    /// the ids the strategies and the risk guardian saw stay valid and new fills continue
    /// after the highest; only if that id is taken by another order's fill is it given a
    /// new one (reported). Its order row is inserted too when missing (instruments as
    /// well, seeded at the fill's price), so the restored database is whole.
    public func replay(_ entries: [JournalEntry]) throws(DatabaseError) -> ReplayOutcome {
        try db.transaction { () throws(DatabaseError) -> ReplayOutcome in
            var outcome = ReplayOutcome()
            let fillByOrderID = try db.prepare("SELECT id FROM fills WHERE client_order_id = ?")
            let idTaken = try db.prepare("SELECT 1 FROM fills WHERE id = ?")
            let rejected = try db.prepare("SELECT 1 FROM order_rejections WHERE client_order_id = ?")
            let orderRow = try db.prepare("SELECT id FROM orders WHERE client_order_id = ?")
            let addInstrument = try db.prepare("INSERT OR IGNORE INTO instruments (symbol, seed_price_micros) VALUES (?, ?)")
            let addOrder = try db.prepare("INSERT INTO orders (client_order_id, symbol, side, quantity, received_ns) VALUES (?, ?, ?, ?, ?)")
            let addFill = try db.prepare("""
                INSERT INTO fills (id, order_id, client_order_id, symbol, side, quantity, price_micros, filled_ns)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                """)
            for e in entries {
                let cid = SQLValue.text(e.clientOrderID.rawValue)
                if try fillByOrderID.bind(cid).step() { outcome.present += 1; continue }
                if try rejected.bind(cid).step() { outcome.conflicts.append(e.clientOrderID); continue }
                try addInstrument.bind(.text(e.instrument.symbol), .int(e.price.micros)).run()
                let orderID: Int64
                if try orderRow.bind(cid).step() {
                    orderID = orderRow.int64(0)
                } else {
                    try addOrder.bind(cid, .text(e.instrument.symbol), .text(e.side.rawValue), .int(e.quantity), .int(e.filledNs)).run()
                    orderID = db.lastInsertRowID
                }
                let free = try !idTaken.bind(.int(e.fillID)).step()
                try addFill.bind(free ? .int(e.fillID) : .null, .int(orderID), cid, .text(e.instrument.symbol), .text(e.side.rawValue),
                                 .int(e.quantity), .int(e.price.micros), .int(e.filledNs)).run()
                if free { outcome.inserted.append(e.fillID) } else { outcome.renumbered.append((e.fillID, db.lastInsertRowID)) }
            }
            return outcome
        }
    }
}
