import Foundation
import Testing
import Trading
@testable import TradingStore

/// The fill journal's line format and file: what a restore replays from.
@Suite("Fill journal: lines, torn writes, the file")
struct FillJournalTests {
    let entry = JournalEntry(fillID: 42, clientOrderID: try! ClientOrderID("strategy-runner.1.3.k9.7"), instrument: try! Instrument("BTC-USD"),
                             side: .sell, quantity: 2, price: Price(micros: 60_012_500_000), filledNs: 1_718_000_000_123_456_789)

    @Test func aLineRoundTripsAndCarriesItsChecksum() throws {
        let line = entry.line
        #expect(line.hasPrefix("F1 42 strategy-runner.1.3.k9.7 BTC-USD SELL 2 60012500000 1718000000123456789 "))
        #expect(JournalEntry(line: line) == entry)
        #expect(crc32(Array("123456789".utf8)) == 0xCBF4_3926, "the standard CRC-32 check value")
    }

    @Test func aDamagedOrForeignLineIsNotAnEntry() {
        let line = entry.line
        #expect(JournalEntry(line: line.replacingOccurrences(of: " 2 ", with: " 3 ")) == nil, "a changed field fails the checksum")
        #expect(JournalEntry(line: String(line.dropLast(2))) == nil, "torn")
        #expect(JournalEntry(line: "hello") == nil)
        #expect(JournalEntry(line: "") == nil)
    }

    @Test func parsingSkipsATornLastLineAndCountsIt() {
        var other = entry
        other.fillID = 43
        let whole = Array((entry.line + "\n" + other.line + "\n").utf8)
        #expect(FillJournal.parse(whole).entries == [entry, other])
        #expect(FillJournal.parse(whole).damagedLines == 0)
        let torn = whole + Array(entry.line.prefix(20).utf8)
        #expect(FillJournal.parse(torn).entries == [entry, other])
        #expect(FillJournal.parse(torn).damagedLines == 1)
        #expect(FillJournal.parse([]).entries.isEmpty)
    }

    @Test func appendsGoToTheFileAndAMissingFileIsAnEmptyJournal() throws {
        let path = NSTemporaryDirectory() + "vigil-journal-" + UUID().uuidString.prefix(8)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let journal = FillJournal(path: path)
        #expect(try journal.read().entries.isEmpty)
        var other = entry
        other.fillID = 43
        try journal.append([entry])
        try journal.append([other])
        #expect(try journal.read().entries == [entry, other])
        #expect(FillJournal.defaultPath(databasePath: "/var/lib/vigil/trading.db") == "/var/lib/vigil/fills.journal")
        #expect(FillJournal.defaultPath(databasePath: "trading.db") == "./fills.journal")
    }

    @Test func anAppendAfterATornLastLineStartsALineOfItsOwn() throws {
        // Found by a fresh-user run: a crash half-way through a write leaves a fragment
        // without its newline, and the next fill was glued to it and lost with it.
        let path = NSTemporaryDirectory() + "vigil-journal-torn-" + UUID().uuidString.prefix(8)
        defer { try? FileManager.default.removeItem(atPath: path) }
        try Data("F1 99999 bogus.1 BTC-USD BUY 1 600000".utf8).write(to: URL(fileURLWithPath: path))
        let journal = FillJournal(path: path)
        try journal.append([entry])
        let read = try journal.read()
        #expect(read.entries == [entry], "the acknowledged fill survives the torn line before it")
        #expect(read.damagedLines == 1)
    }

    @Test func everyFillTheStoreCommitsIsJournaledWithItsID() throws {
        let dir = NSTemporaryDirectory() + "vigil-journal-" + UUID().uuidString.prefix(8)
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let s = try TradingStore(path: dir + "/trading.db", create: true)
        defer { s.close() }
        try s.createSchema()
        _ = try s.seedIfEmpty()
        s.journal = FillJournal(path: dir + "/fills.journal")
        let btc = try Instrument("BTC-USD")
        let f1 = try s.record(Order(clientOrderID: ClientOrderID("r.1.s.1"), instrument: btc, side: .buy, quantity: 1), filledAt: Price(units: 100))
        try s.db.prepare("INSERT INTO orders (client_order_id, symbol, side, quantity, received_ns) VALUES ('r.1.s.2', 'BTC-USD', 'SELL', 1, 0)").run()
        let settled = try s.settleOpenOrders(fill: true, prices: [btc: Price(units: 101)], reason: "x")
        // A fill the database refuses (a repeated id) is not journaled.
        #expect(throws: DatabaseError.self) {
            _ = try s.record(Order(clientOrderID: ClientOrderID("r.1.s.1"), instrument: btc, side: .buy, quantity: 1), filledAt: Price(units: 1))
        }
        let journaled = try FillJournal(path: dir + "/fills.journal").read().entries
        #expect(journaled.map(\.fill) == [f1] + settled.filled)
        #expect(s.journalFailures == 0)
    }
}
