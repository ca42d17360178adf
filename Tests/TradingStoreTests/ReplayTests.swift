import Foundation
import Testing
import Trading
@testable import TradingStore

/// Replaying the fill journal into a restored database: idempotent, ids kept.
@Suite("Journal replay")
struct ReplayTests {
    let dir: String
    let btc = try! Instrument("BTC-USD"), eth = try! Instrument("ETH-USD")

    init() throws {
        dir = NSTemporaryDirectory() + "vigil-replay-" + UUID().uuidString.prefix(8)
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    }

    func store(_ name: String) throws -> TradingStore {
        let s = try TradingStore(path: dir + "/" + name, create: true)
        try s.createSchema()
        _ = try s.seedIfEmpty()
        return s
    }

    func order(_ id: String, _ i: Instrument, _ side: Side, _ q: Int64) throws -> Order {
        try Order(clientOrderID: ClientOrderID(id), instrument: i, side: side, quantity: q)
    }

    func allFills(_ s: TradingStore) throws -> [Fill] { try s.fills(after: 0).fills }

    @Test func fillsNewerThanTheSnapshotComeBackUnderTheirIDsOnce() throws {
        defer { try? FileManager.default.removeItem(atPath: dir) }
        // The live database, journaled; an older copy of it stands for the snapshot.
        let live = try store("live.db")
        defer { live.close() }
        live.journal = FillJournal(path: dir + "/fills.journal")
        _ = try live.record(order("a.1.s.1", btc, .buy, 1), filledAt: Price(units: 100))
        _ = try live.record(order("a.1.s.2", eth, .sell, 2), filledAt: Price(units: 10))
        try live.db.backup(to: dir + "/snapshot.db")
        _ = try live.record(order("a.1.s.3", btc, .sell, 1), filledAt: Price(units: 101))
        _ = try live.record(order("b.1.s.1", eth, .buy, 4), filledAt: Price(units: 11))
        let entries = try FillJournal(path: dir + "/fills.journal").read().entries
        #expect(entries.count == 4)

        let restored = try TradingStore(path: dir + "/snapshot.db", create: false)
        defer { restored.close() }
        let first = try restored.replay(entries)
        #expect(first.present == 2)
        #expect(first.inserted == [3, 4])
        #expect(try allFills(restored) == allFills(live), "same fills, same ids, same prices")
        // Once more, and with the entries twice over: nothing changes.
        let again = try restored.replay(entries + entries)
        #expect(again.inserted.isEmpty && again.renumbered.isEmpty && again.present == 8)
        #expect(try allFills(restored) == allFills(live))
        // The next fill continues after the highest journaled id.
        let next = try restored.record(order("a.1.s.4", btc, .buy, 1), filledAt: Price(units: 99))
        #expect(next.fillID == 5)
    }

    @Test func anIDTakenByAnotherOrderGetsANewOneAndARejectionStands() throws {
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let s = try store("t.db")
        defer { s.close() }
        let other = try s.record(order("x.1.s.1", btc, .buy, 1), filledAt: Price(units: 100))
        _ = try s.recordRejection(ClientOrderID("y.1.s.2"), reason: "safe_mode")
        let clash = JournalEntry(fillID: other.fillID, clientOrderID: try ClientOrderID("y.1.s.1"), instrument: eth, side: .buy,
                                 quantity: 3, price: Price(units: 9), filledNs: 1)
        let rejected = JournalEntry(fillID: 7, clientOrderID: try ClientOrderID("y.1.s.2"), instrument: eth, side: .buy,
                                    quantity: 1, price: Price(units: 9), filledNs: 2)
        let outcome = try s.replay([clash, rejected])
        #expect(outcome.renumbered.map(\.journal) == [other.fillID])
        #expect(outcome.conflicts.map(\.rawValue) == ["y.1.s.2"])
        #expect(try s.fill(for: ClientOrderID("y.1.s.1"))?.quantity == 3, "the fill is kept, under a new id")
        #expect(try s.fill(for: ClientOrderID("x.1.s.1")) == other)
        #expect(try s.fill(for: ClientOrderID("y.1.s.2")) == nil, "one outcome per client order id")
        #expect(try s.replay([clash, rejected]).present == 1, "idempotent by client order id")
    }
}
