import Testing
@testable import TradingStore

/// Snapshot naming, rotation and restore order, without files.
@Suite("Snapshot rotation")
struct SnapshotSetTests {
    @Test func onlyExactSnapshotNamesCountNewestFirstByNumber() {
        let set = SnapshotSet(prefix: "trading", fileNames: [
            "trading-00000002.db", "trading-00000010.db", "trading-00000009.db",
            "trading-00000011.db.partial", "trading-00000012.db.bad", "trading-1.db", "other-00000013.db",
            "trading-0000000x.db", "trading-00000003.db-wal",
        ])
        #expect(set.newestFirst.map(\.sequence) == [10, 9, 2])
        #expect(set.newestFirst.first?.fileName == "trading-00000010.db")
        #expect(set.nextFileName == "trading-00000011.db", "one past the newest, even over a partial copy's name")
    }

    @Test func theFirstSnapshotIsNumberOne() {
        #expect(SnapshotSet(prefix: "trading", fileNames: []).nextFileName == "trading-00000001.db")
        #expect(SnapshotSet(prefix: "trading", fileNames: []).toDelete(keeping: 3).isEmpty)
    }

    @Test func rotationKeepsTheNewest() {
        let names = (1...5).map { SnapshotSet.fileName(prefix: "t", sequence: $0) }
        let set = SnapshotSet(prefix: "t", fileNames: names.shuffled())
        #expect(set.toDelete(keeping: 3) == ["t-00000002.db", "t-00000001.db"])
        #expect(set.toDelete(keeping: 5).isEmpty)
        #expect(set.toDelete(keeping: 1).count == 4)
        #expect(SnapshotSet.sequence(of: "t-00000004.db", prefix: "t") == 4)
    }
}
