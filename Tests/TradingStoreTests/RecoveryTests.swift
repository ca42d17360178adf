import Foundation
import Testing
import Trading
@testable import TradingStore

/// The gateway's recovery and liquidation on a real SQLite file.
@Suite("Trading store: outcomes, open orders, liquidation")
struct RecoveryTests {
    let path = NSTemporaryDirectory() + "vigil-store-" + UUID().uuidString.prefix(8) + ".db"
    let btc = try! Instrument("BTC-USD"), eth = try! Instrument("ETH-USD")

    func store() throws -> TradingStore {
        let s = try TradingStore(path: path, create: true)
        try s.createSchema()
        try s.ensureGatewaySchema()
        _ = try s.seedIfEmpty()
        return s
    }

    func order(_ id: String, _ i: Instrument, _ side: Side, _ q: Int64) throws -> Order {
        try Order(clientOrderID: ClientOrderID(id), instrument: i, side: side, quantity: q)
    }

    @Test func everyClientOrderIdHasOneOutcome() throws {
        let s = try store()
        defer { s.close(); try? FileManager.default.removeItem(atPath: path) }
        let o = try order("r.1.s.1", btc, .buy, 1)
        let first = try s.record(o, filledAt: Price(units: 100))
        // The database itself refuses a second fill for one id; the gateway answers a
        // repeat with the original.
        #expect(throws: DatabaseError.self) { _ = try s.record(o, filledAt: Price(units: 200)) }
        #expect(try s.fill(for: o.clientOrderID) == first)
        let outcome = try s.recordRejection(o.clientOrderID, reason: "late")
        #expect(outcome?.fill == first)
        let r = try ClientOrderID("r.1.s.2")
        #expect(try s.recordRejection(r, reason: "cancel-only") == nil)
        #expect(try s.recordRejection(r, reason: "other")?.reason == "cancel-only")
    }

    @Test func liquidationFlattensEveryOwnersBookOnceEvenWhenResumed() throws {
        let s = try store()
        defer { s.close(); try? FileManager.default.removeItem(atPath: path) }
        // Two strategies with offsetting BTC positions (the venue's total is flat in BTC),
        // one with ETH, and a fill of the venue's own.
        _ = try s.record(order("strategy-runner.1.1.a.1", btc, .buy, 2), filledAt: Price(units: 100))
        _ = try s.record(order("strategy-runner.2.4.b.1", btc, .sell, 2), filledAt: Price(units: 100))
        _ = try s.record(order("strategy-runner.2.4.b.2", eth, .buy, 3), filledAt: Price(units: 10))
        _ = try s.record(order("liquidation.0.1", eth, .sell, 1), filledAt: Price(units: 10))
        let prices = [btc: Price(units: 101), eth: Price(units: 11)]
        let (id, resumed) = try s.beginLiquidation(reason: "test")
        #expect(!resumed)
        // One step, then a "crash": the next incarnation resumes the same liquidation.
        let step1 = try #require(try s.liquidationStep(id, prices: prices))
        #expect(step1.clientOrderID.rawValue == "liquidation.\(id).1", "the venue's own position first")
        #expect(try s.beginLiquidation(reason: "again") == (id, true))
        var steps = [step1]
        while let f = try s.liquidationStep(id, prices: prices) { steps.append(f) }
        #expect(steps.map(\.clientOrderID.rawValue) == [
            "liquidation.\(id).1", "strategy-runner.1.0.liq\(id).2", "strategy-runner.2.0.liq\(id).3", "strategy-runner.2.0.liq\(id).4",
        ])
        #expect(try s.netPositionsByOwner().isEmpty)
        #expect(try s.netPositions().isEmpty)
        // Each strategy's own fills (what its restart reconciles against) are flat.
        for runner in ["strategy-runner.1.", "strategy-runner.2."] {
            #expect(netQuantities(try s.fills(clientOrderIDPrefix: runner)).isEmpty, "\(runner)")
        }
        try s.finishLiquidation(id)
        #expect(try s.openLiquidation() == nil)
        #expect(try s.liquidationStep(id, prices: prices) == nil, "never flattens twice")
    }

    @Test func openOrdersAreSettledExactlyOnce() throws {
        let s = try store()
        defer { s.close(); try? FileManager.default.removeItem(atPath: path) }
        try s.db.prepare("INSERT INTO orders (client_order_id, symbol, side, quantity, received_ns) VALUES ('r.1.s.9', 'BTC-USD', 'BUY', 1, 0)").run()
        try s.db.prepare("INSERT INTO orders (client_order_id, symbol, side, quantity, received_ns) VALUES ('r.1.s.10', 'SOL-USD', 'BUY', 1, 0)").run()
        #expect(try s.openOrders().count == 2)
        let settled = try s.settleOpenOrders(fill: true, prices: [btc: Price(units: 5)], reason: "no price")
        #expect(settled.filled.map(\.clientOrderID.rawValue) == ["r.1.s.9"])
        #expect(settled.rejected.map(\.rawValue) == ["r.1.s.10"])
        #expect(try s.openOrders().isEmpty)
        #expect(try s.settleOpenOrders(fill: true, prices: [btc: Price(units: 5)], reason: "x") == ([], []))
    }
}
