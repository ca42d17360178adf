import Foundation
import Testing
import Trading
@testable import TradingStore

/// Snapshots and restores on real files: damaged pages, truncation, deletion.
@Suite("Snapshots and restore", .serialized)
struct RestoreTests {
    let dir: String
    var db: String { dir + "/trading.db" }
    let btc = try! Instrument("BTC-USD")

    init() throws {
        dir = NSTemporaryDirectory() + "vigil-restore-" + UUID().uuidString.prefix(8)
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    }

    /// A journaled database with `n` fills (ids 1...n), closed (so its WAL is checkpointed).
    func trade(_ range: ClosedRange<Int>, create: Bool = false) throws {
        let s = try TradingStore(path: db, create: create)
        defer { s.close() }
        if create {
            try s.createSchema()
            _ = try s.seedIfEmpty()
        }
        s.journal = FillJournal(path: dir + "/fills.journal")
        for n in range {
            _ = try s.record(Order(clientOrderID: ClientOrderID("r.1.s.\(n)"), instrument: btc, side: n % 2 == 0 ? .sell : .buy, quantity: 1),
                             filledAt: Price(units: Int64(100 + n)))
        }
    }

    func fillIDs() throws -> [Int64] {
        let s = try TradingStore(path: db, create: false)
        defer { s.close() }
        return try s.fills(after: 0).fills.map(\.fillID)
    }

    /// Overwrites every page after the first with garbage, as a failing disk might.
    func garble(_ path: String) throws {
        let size = try FileManager.default.attributesOfItem(atPath: path)[.size] as! Int
        let h = try #require(FileHandle(forWritingAtPath: path))
        h.seek(toFileOffset: 4096)
        var g = SystemRandomNumberGenerator()
        h.write(Data((0..<max(4096, size - 4096)).map { _ in UInt8.random(in: 0...255, using: &g) }))
        try h.close()
    }

    func restore(_ files: SnapshotFiles) throws -> (RestoreOutcome, [String]) {
        var steps: [String] = []
        let outcome = try files.restore(journal: FillJournal(path: dir + "/fills.journal")) { steps.append($0) }
        return (outcome, steps)
    }

    @Test func aDamagedDatabaseIsRestoredFromTheNewestSnapshotPlusTheJournal() throws {
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try trade(1...5, create: true)
        let files = SnapshotFiles(databasePath: db)
        let first = try files.take(keep: 2)
        try trade(6...8)
        let second = try files.take(keep: 2)
        try trade(9...12)
        _ = try files.take(keep: 2)
        #expect(files.current().newestFirst.map(\.fileName) == ["trading-00000003.db", second.fileName], "rotated: two kept")
        #expect(first.fileName == "trading-00000001.db")
        try trade(13...15)  // only in the journal once the database is gone
        #expect(TradingStore.examine(path: db) == .healthy)
        try garble(db)
        guard case .damaged = TradingStore.examine(path: db) else { Issue.record("garbage not detected"); return }

        let (outcome, steps) = try restore(files)
        #expect(outcome.snapshot == "trading-00000003.db")
        #expect(outcome.replay.inserted == [13, 14, 15])
        #expect(TradingStore.examine(path: db, full: true) == .healthy)
        #expect(try fillIDs() == Array(1...15))
        #expect(FileManager.default.fileExists(atPath: db + ".damaged"), "kept for a post-mortem")
        #expect(steps.contains { $0.contains("swapped in") })
    }

    @Test func aSnapshotThatDoesNotVerifyIsSetAsideAndTheNextOneUsed() throws {
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try trade(1...4, create: true)
        let files = SnapshotFiles(databasePath: db)
        _ = try files.take(keep: 3)
        try trade(5...6)
        let newest = try files.take(keep: 3)
        try garble(files.path(of: newest.fileName))
        try trade(7...7)
        try FileManager.default.removeItem(atPath: db)  // deleted
        #expect(TradingStore.examine(path: db) == .missing)

        let (outcome, _) = try restore(files)
        #expect(outcome.setAside == [newest.fileName])
        #expect(outcome.snapshot == "trading-00000001.db")
        #expect(outcome.replay.inserted == [5, 6, 7])
        #expect(try fillIDs() == Array(1...7))
        #expect(FileManager.default.fileExists(atPath: files.path(of: newest.fileName) + ".bad"))
        #expect(files.current().nextFileName == "trading-00000002.db", "a set-aside snapshot no longer counts")
    }

    @Test func aTruncatedDatabaseWithNoGoodSnapshotIsRebuiltFromTheJournal() throws {
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try trade(1...6, create: true)
        #expect(truncate(db, 0) == 0)
        #expect(TradingStore.examine(path: db) != .healthy, "an empty file is a valid SQLite database, but not a trading one")
        let (outcome, steps) = try restore(SnapshotFiles(databasePath: db))
        #expect(outcome.snapshot == nil)
        #expect(steps.contains { $0.contains("no snapshot verifies") })
        #expect(try fillIDs() == Array(1...6))
        #expect(TradingStore.examine(path: db, full: true) == .healthy)
    }

    @Test func aDatabaseCutInHalfIsDetected() throws {
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try trade(1...300, create: true)
        let size = try FileManager.default.attributesOfItem(atPath: db)[.size] as! Int
        #expect(truncate(db, off_t(size / 2)) == 0)
        #expect(TradingStore.examine(path: db) != .healthy)
    }

    @Test func aLiveStoreFollowsASwappedFileAndReplaysTheJournalFirst() throws {
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try trade(1...3, create: true)
        let files = SnapshotFiles(databasePath: db)
        _ = try files.take(keep: 3)
        let journal = FillJournal(path: dir + "/fills.journal")
        let live = LiveStore(path: dir + "/trading.db", journal: journal)
        defer { live.close() }
        let before = try live.current()
        #expect(live.opens == 1)
        _ = try files.restore(journal: journal) { _ in }  // a restore swaps a new file in
        // The old connection still "works" (on the replaced file): a fill it commits is journaled.
        let stray = try before.record(Order(clientOrderID: ClientOrderID("r.1.s.99"), instrument: btc, side: .buy, quantity: 1),
                                      filledAt: Price(units: 1))
        let after = try live.current()
        #expect(after !== before && live.opens == 2 && live.replacements == 1, "reopened on the new file")
        #expect(try after.fill(for: stray.clientOrderID) == stray, "and the journal replayed: the stray fill is there, same id")
        try FileManager.default.removeItem(atPath: db)
        #expect(throws: DatabaseError.self) { _ = try live.current() }
        #expect(!FileManager.default.fileExists(atPath: db), "a missing database is never created by a writer")
    }
}
