// What the exchange gateway keeps so a restart (even after kill -9) loses nothing and does
// nothing twice: one outcome per client order id (a fill or a rejection), open orders
// recovered before READY, and liquidations that resume where they stopped.
import CShim
import Trading

extension TradingStore {
    /// Tables the gateway adds to the base schema (created by db-watchdog with the rest, and
    /// by the gateway itself on an older database).
    public static let gatewaySchema = """
        -- Orders answered with REJECT, so a repeated id gets the same answer: every client
        -- order id has at most one outcome, a fill or a rejection.
        CREATE TABLE IF NOT EXISTS order_rejections (
            client_order_id TEXT PRIMARY KEY,
            reason          TEXT NOT NULL,
            rejected_ns     INTEGER NOT NULL
        ) STRICT;
        -- Liquidations: finished_ns is NULL while one is in progress (a restarted gateway
        -- resumes it).
        CREATE TABLE IF NOT EXISTS liquidations (
            id          INTEGER PRIMARY KEY,
            reason      TEXT NOT NULL,
            started_ns  INTEGER NOT NULL,
            finished_ns INTEGER
        ) STRICT;
        """

    /// Creates the gateway's tables if missing.
    public func ensureGatewaySchema() throws(DatabaseError) {
        try db.execute(TradingStore.gatewaySchema)
    }

    // MARK: - Rejections

    /// The reason an order with this id was rejected, if it was.
    public func rejection(for id: ClientOrderID) throws(DatabaseError) -> String? {
        let s = try db.prepare("SELECT reason FROM order_rejections WHERE client_order_id = ?")
        try s.bind(.text(id.rawValue))
        return try s.step() ? s.text(0) : nil
    }

    /// Records a rejection unless the id already has an outcome. Returns the outcome that
    /// stands: nil if this rejection was recorded, else the fill or the earlier rejection.
    public func recordRejection(_ id: ClientOrderID, reason: String) throws(DatabaseError) -> (fill: Fill?, reason: String?)? {
        try db.transaction { () throws(DatabaseError) -> (fill: Fill?, reason: String?)? in
            if let f = try fill(for: id) { return (f, nil) }
            if let r = try rejection(for: id) { return (nil, r) }
            try db.prepare("INSERT INTO order_rejections (client_order_id, reason, rejected_ns) VALUES (?, ?, ?)")
                .bind(.text(id.rawValue), .text(reason), .int(vigil_realtime_ns())).run()
            return nil
        }
    }

    // MARK: - Open orders

    /// Orders with neither a fill nor a rejection, in arrival order.
    public func openOrders() throws(DatabaseError) -> [(rowID: Int64, order: Order)] {
        let s = try db.prepare("""
            SELECT o.id, o.client_order_id, o.symbol, o.side, o.quantity FROM orders o
            WHERE NOT EXISTS (SELECT 1 FROM fills f WHERE f.order_id = o.id)
              AND NOT EXISTS (SELECT 1 FROM order_rejections r WHERE r.client_order_id = o.client_order_id)
            ORDER BY o.id
            """)
        var out: [(rowID: Int64, order: Order)] = []
        while try s.step() {
            if let id = try? ClientOrderID(s.text(1)), let i = try? Instrument(s.text(2)), let side = Side(rawValue: s.text(3)),
               let o = try? Order(clientOrderID: id, instrument: i, side: side, quantity: s.int64(4)) {
                out.append((s.int64(0), o))
            }
        }
        return out
    }

    /// Settles every open order in one transaction, exactly once: filled at `prices` (the
    /// market order was accepted before the crash), or rejected with `reason` when there is
    /// no price or `fill` is false (safe mode: cancel-only).
    public func settleOpenOrders(fill: Bool, prices: [Instrument: Price], reason: String)
        throws(DatabaseError) -> (filled: [Fill], rejected: [ClientOrderID]) {
        try journaledTransaction { () throws(DatabaseError) -> (filled: [Fill], rejected: [ClientOrderID]) in
            var filled: [Fill] = [], rejected: [ClientOrderID] = []
            let now = vigil_realtime_ns()
            for (rowID, order) in try openOrders() {
                if fill, let p = prices[order.instrument] {
                    filled.append(try insertFill(orderID: rowID, order, at: p, now: now))
                } else {
                    try db.prepare("INSERT INTO order_rejections (client_order_id, reason, rejected_ns) VALUES (?, ?, ?)")
                        .bind(.text(order.clientOrderID.rawValue), .text(reason), .int(now)).run()
                    rejected.append(order.clientOrderID)
                }
            }
            return (filled, rejected)
        }
    }

    // MARK: - Positions

    /// Every fill whose client order id starts with `prefix`, in fill order.
    public func fills(clientOrderIDPrefix prefix: String) throws(DatabaseError) -> [Fill] {
        let s = try db.prepare("""
            SELECT id, client_order_id, symbol, side, quantity, price_micros FROM fills
            WHERE substr(client_order_id, 1, ?) = ? ORDER BY id
            """)
        try s.bind(.int(Int64(prefix.utf8.count)), .text(prefix))
        var out: [Fill] = []
        while try s.step() {
            if let f = TradingStore.fill(id: s.int64(0), clientOrderID: s.text(1), symbol: s.text(2), side: s.text(3),
                                         quantity: s.int64(4), price: s.int64(5)) { out.append(f) }
        }
        return out
    }

    /// Net quantity per instrument over every fill of every client (flat ones left out).
    public func netPositions() throws(DatabaseError) -> [Instrument: Quantity] {
        let s = try db.prepare("""
            SELECT symbol, SUM(CASE side WHEN 'BUY' THEN quantity ELSE -quantity END) FROM fills GROUP BY symbol
            """)
        var out: [Instrument: Quantity] = [:]
        while try s.step() {
            if let i = try? Instrument(s.text(0)), s.int64(1) != 0 { out[i] = s.int64(1) }
        }
        return out
    }

    // MARK: - Liquidation

    /// The liquidation in progress, if any.
    public func openLiquidation() throws(DatabaseError) -> (id: Int64, reason: String)? {
        let s = try db.prepare("SELECT id, reason FROM liquidations WHERE finished_ns IS NULL ORDER BY id LIMIT 1")
        return try s.step() ? (s.int64(0), s.text(1)) : nil
    }

    /// Starts a liquidation, or returns the one already in progress (never two at once).
    public func beginLiquidation(reason: String) throws(DatabaseError) -> (id: Int64, resumed: Bool) {
        try db.transaction { () throws(DatabaseError) -> (id: Int64, resumed: Bool) in
            if let open = try openLiquidation() { return (open.id, true) }
            try db.prepare("INSERT INTO liquidations (reason, started_ns) VALUES (?, ?)")
                .bind(.text(reason), .int(vigil_realtime_ns())).run()
            return (db.lastInsertRowID, false)
        }
    }

    /// Net quantity per owner (`orderOwner`; "" for the venue and foreign ids) and
    /// instrument over every fill, flat ones left out.
    public func netPositionsByOwner() throws(DatabaseError) -> [String: [Instrument: Quantity]] {
        let s = try db.prepare("""
            SELECT client_order_id, symbol, SUM(CASE side WHEN 'BUY' THEN quantity ELSE -quantity END)
            FROM fills GROUP BY client_order_id, symbol
            """)
        var out: [String: [Instrument: Quantity]] = [:]
        while try s.step() {
            guard let id = try? ClientOrderID(s.text(0)), let i = try? Instrument(s.text(1)) else { continue }
            let owner = orderOwner(id) ?? ""
            out[owner, default: [:]][i, default: 0] = out[owner, default: [:]][i, default: 0].saturatingAdd(s.int64(2))
        }
        return out.mapValues { $0.filter { $0.value != 0 } }.filter { !$0.value.isEmpty }
    }

    /// One step of liquidation `id`, in one transaction: the first owner (by name, the
    /// venue first) and instrument (by symbol) whose net position from every fill is not
    /// flat is flattened with a market order at its price, in the owner's own id space
    /// (`liquidationOrderID`), so each strategy's book ends flat, not just the venue's
    /// total. Returns nil when everything is flat (or has no price). Repeating it after a
    /// crash never flattens twice: the net is computed in the transaction that writes the
    /// flattening fill.
    public func liquidationStep(_ id: Int64, prices: [Instrument: Price]) throws(DatabaseError) -> Fill? {
        try journaledTransaction { () throws(DatabaseError) -> Fill? in
            let open = try netPositionsByOwner().flatMap { owner, nets in
                nets.filter { prices[$0.key] != nil }.map { (owner: owner, instrument: $0.key, net: $0.value) }
            }
            guard let first = open.min(by: { ($0.owner, $0.instrument.symbol) < ($1.owner, $1.instrument.symbol) }) else { return nil }
            let count = try db.prepare("""
                SELECT count(*) FROM fills WHERE substr(client_order_id, 1, ?) = ? OR instr(client_order_id, ?) > 0
                """)
            try count.bind(.int(Int64("liquidation.\(id).".utf8.count)), .text("liquidation.\(id)."), .text(".0.liq\(id)."))
            _ = try count.step()
            let step = Int(count.int64(0)) + 1
            guard let order = liquidationOrders(nets: [first.instrument: first.net], owner: first.owner.isEmpty ? nil : first.owner,
                                                liquidation: id, firstStep: step).first else { return nil }
            return try insertFilled(order, at: prices[first.instrument]!)
        }
    }

    /// Marks liquidation `id` finished.
    public func finishLiquidation(_ id: Int64) throws(DatabaseError) {
        try db.prepare("UPDATE liquidations SET finished_ns = ? WHERE id = ? AND finished_ns IS NULL")
            .bind(.int(vigil_realtime_ns()), .int(id)).run()
    }
}
