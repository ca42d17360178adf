import Foundation
import Testing
import Trading
import TradingStore

/// The trading database damaged in the middle of trading, with the real workers: a paper
/// gateway and two strategy runners keep trading while the file is overwritten with
/// garbage, truncated or deleted; db-watchdog must notice within its check interval,
/// restore the newest snapshot that verifies, replay the fill journal, and the cache warmer
/// (restarted by rest_for_one) must answer again, from the restored database.
@Suite("data healing: a damaged trading database with real workers", .serialized)
struct DataHealingIntegrationTests {
    /// db-watchdog's quick_check interval in this tree.
    static let checkInterval = 0.3

    func tree() throws -> VigilUnderTest {
        try VigilUnderTest("""
        name: t
        max_restarts: 20
        period: 1m
        heartbeat_interval: 200ms
        defaults:
          shutdown: 3s
          watchdog: 5s
          backoff: {initial: 10ms, max: 100ms, reset_after: 1s}
        children:
          - supervisor: data
            strategy: rest_for_one
            max_restarts: 10
            period: 30s
            children:
              - worker: db-watchdog
                argv: [db-watchdog, --interval, 300ms, --integrity-interval, 3s, --checkpoint-interval, 500ms,
                       --backup-interval, 1500ms, --keep, 3]
              - worker: cache-warmer
                argv: [cache-warmer, --interval, 200ms]
                depends_on: [db-watchdog]
          - supervisor: markets
            strategy: one_for_one
            max_restarts: 20
            period: 1m
            children:
              - worker: exchange-gateway
                argv: [exchange-gateway, --tick, 20ms, --step-bps, "30"]
                depends_on: [db-watchdog]
              - worker: strategy-runner
                argv: [strategy-runner, --short, "2", --long, "4", --qty, "1", --max-position, "3"]
                instances: 2
                depends_on: [exchange-gateway]
        """)
    }

    let names = ["db-watchdog", "cache-warmer", "exchange-gateway", "strategy-runner.1", "strategy-runner.2"]

    /// How a test damages the database file.
    enum Damage { case garbage, truncate, delete }

    /// Runs the tree, waits for trading and a fresh snapshot, damages the database (and,
    /// with `garbleNewestSnapshot`, the newest snapshot too), and checks the healing.
    func heal(_ damage: Damage, garbleNewestSnapshot: Bool = false) throws {
        let v = try tree()
        let db = v.stateDirectory + "/trading.db"
        let snapshots = SnapshotFiles(databasePath: db)
        let s0 = v.waitFor("tree ready", v.allReady(names))
        #expect(poll("fills traded", timeout: 10) { (try? fills(db).count) ?? 0 >= 20 })
        // Right after a snapshot is written the next is 1.5 s away, so the one restored
        // from is known: the newest now (or, with it garbled, the one before).
        let before = snapshots.current().newestFirst.first?.sequence ?? 0
        #expect(poll("a fresh snapshot", timeout: 5) { (snapshots.current().newestFirst.first?.sequence ?? 0) > before })
        let listed = snapshots.current().newestFirst
        try #require(listed.count >= 2)

        let damagedAt = Date()
        switch damage {
        case .garbage: try garble(db)
        case .truncate: #expect(truncate(db, off_t(try size(of: db) / 3)) == 0)
        case .delete: try FileManager.default.removeItem(atPath: db)
        }
        if garbleNewestSnapshot { try garble(snapshots.path(of: listed[0].fileName)) }
        let expected = garbleNewestSnapshot ? listed[1].fileName : listed[0].fileName

        // Detected within the check interval: db-watchdog exits (its incarnation goes up).
        let s1 = v.waitFor("db-watchdog to notice", timeout: 5) { $0["db-watchdog"]!.incarnation > s0["db-watchdog"]!.incarnation }
        let detection = Date().timeIntervalSince(damagedAt)
        #expect(detection < Self.checkInterval + 1.0, "noticed after \(detection) s (quick_check every \(Self.checkInterval) s)")
        // Restored, READY again, and the cache warmer restarted after it by rest_for_one.
        let s2 = v.waitFor("healed", timeout: 10) { s in
            s["db-watchdog"]?.state == "ready" && s["cache-warmer"]?.state == "ready"
                && s["cache-warmer"]!.incarnation > s0["cache-warmer"]!.incarnation
        }
        #expect(s2["db-watchdog"]?.lastExit == "exit 65", "\(String(describing: s2["db-watchdog"]))")
        #expect(s1["exchange-gateway"]?.pid == s0["exchange-gateway"]?.pid && s2["exchange-gateway"]?.pid == s0["exchange-gateway"]?.pid,
                "the writer survived the swap without a restart")
        let events = v.events()
        #expect(events.contains { $0.contains("db-watchdog") && $0.contains("db-health: quick_check FAILED") })
        #expect(events.contains { $0.contains("rest_for_one: terminating cache-warmer, then restarting db-watchdog, cache-warmer") })
        #expect(events.contains { $0.contains("db-restore: newest snapshot that verifies: \(expected)") }, "\(events.filter { $0.contains("db-") })")
        if garbleNewestSnapshot {
            #expect(events.contains { $0.contains("snapshot \(listed[0].fileName) fails verification") })
        }
        #expect(!UnhealthyFlag.isRaised(databasePath: db), "writers may write again")
        #expect(TradingStore.examine(path: db, full: true) == .healthy)

        // No journaled fill lost: each is in the database, under its own id; and trading
        // goes on (fills after the restore continue the ids).
        let journaled = try FillJournal(path: FillJournal.defaultPath(databasePath: db)).read().entries
        let highest = journaled.map(\.fillID).max() ?? 0
        #expect(poll("new fills after the restore", timeout: 10) { (try? fills(db).map(\.fillID).max() ?? 0) ?? 0 > highest })
        let stored = Dictionary(uniqueKeysWithValues: try fills(db).map { ($0.clientOrderID, $0) })
        let lost = journaled.filter { stored[$0.clientOrderID] != $0.fill }
        #expect(lost.isEmpty, "\(lost.count) of \(journaled.count) journaled fills missing or changed, first: \(lost.prefix(3))")
        #expect(Set(journaled.map(\.fillID)).count == journaled.count, "the journal has no fill id twice")

        // The rebuilt cache answers, and its answers are the database's (as of its last fill).
        let owners = ["strategy-runner.1", "strategy-runner.2"]
        let symbols = ["BTC-USD", "ETH-USD", "SOL-USD"]
        let requests = ["INFO"] + owners.flatMap { o in symbols.map { "GET position \(o) \($0)" } } + ["INFO"]
        func lastFill(_ info: String?) -> Int64 {
            info?.split(separator: " ").first { $0.hasPrefix("last_fill=") }.flatMap { Int64($0.dropFirst(10)) } ?? 0
        }
        // The cache rebuilds every 200 ms: wait for one built after trading resumed.
        var answers: [String] = []
        #expect(poll("a cache built from the restored database after trading resumed", timeout: 5) {
            answers = (try? lookup(v.runtimeDirectory + "/cache.sock", requests)) ?? []
            return answers.count == requests.count && lastFill(answers.first) > highest
        })
        try #require(answers.count == requests.count, "\(answers)")
        #expect(answers.first == answers.last, "one snapshot answers a batch")
        let builtUpTo = lastFill(answers.first)
        let upTo = try fills(db).filter { $0.fillID <= builtUpTo }
        var i = 1
        for o in owners {
            for sym in symbols {
                let net = upTo.filter { orderOwner($0.clientOrderID) == o && $0.instrument.symbol == sym }.reduce(0) { $0 + $1.signedQuantity }
                #expect(answers[i] == "POSITION \(o) \(sym) \(net)")
                i += 1
            }
        }
        #expect(v.interrupt() == 0)
    }

    @Test func garbagePagesAndABadNewestSnapshot() throws { try heal(.garbage, garbleNewestSnapshot: true) }

    @Test func aTruncatedDatabase() throws { try heal(.truncate) }

    @Test func aDeletedDatabase() throws { try heal(.delete) }

    // MARK: - Helpers

    func fills(_ db: String) throws -> [Fill] {
        let s = try TradingStore(path: db, create: false)
        defer { s.close() }
        var all: [Fill] = [], after: Int64 = 0
        while true {
            let batch = try s.fills(after: after).fills
            guard let last = batch.last else { return all }
            all += batch
            after = last.fillID
        }
    }

    func size(of path: String) throws -> Int {
        try FileManager.default.attributesOfItem(atPath: path)[.size] as! Int
    }

    /// Overwrites everything after the first page with random bytes, as a failing disk might.
    func garble(_ path: String) throws {
        let h = try #require(FileHandle(forWritingAtPath: path))
        let count = max(8192, try size(of: path) - 4096)
        h.seek(toFileOffset: 4096)
        h.write(Data((0..<count).map { _ in UInt8.random(in: 0...255) }))
        try h.close()
    }

    /// Polls `condition` every 20 ms until it holds or `timeout` passes.
    func poll(_ what: String, timeout: Double, _ condition: () -> Bool) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if condition() { return true }
            usleep(20_000)
        }
        Issue.record("timed out after \(timeout) s waiting for \(what)")
        return false
    }

    /// Sends `requests` in one write to the cache socket and reads one answer line each.
    func lookup(_ path: String, _ requests: [String]) throws -> [String] {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        try #require(fd >= 0)
        defer { close(fd) }
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &addr.sun_path) { raw in
            raw.copyBytes(from: Array(path.utf8))
            raw[path.utf8.count] = 0
        }
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        try #require(rc == 0, "connect \(path): errno \(errno)")
        let bytes = Array(requests.map { $0 + "\n" }.joined().utf8)
        try #require(bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) } == bytes.count)
        var received: [UInt8] = []
        let deadline = Date().addingTimeInterval(5)
        var buffer = [UInt8](repeating: 0, count: 4096)
        while received.filter({ $0 == 10 }).count < requests.count && Date() < deadline {
            var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard Glibc.poll(&p, 1, 100) > 0 else { continue }
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n <= 0 { break }
            received += buffer[0..<n]
        }
        return String(decoding: received, as: UTF8.self).split(separator: "\n").map(String.init)
    }
}
