#if canImport(Glibc)
import Glibc
#endif
import CShim
import Foundation
import Testing
import VigilCore
@testable import VigilHost

/// A fresh private directory under /tmp, removed by `cleanup()`.
private func journalTempDir() -> String {
    var template = Array("/tmp/vigil-journal-test-XXXXXX".utf8CString)
    let p = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
    return String(cString: p!)
}

private func removeTree(_ path: String) {
    _ = system("rm -rf '\(path)'")
}

private func fileMode(_ path: String) -> mode_t? {
    var st = stat()
    return stat(path, &st) == 0 ? st.st_mode & 0o777 : nil
}

@Suite("Journal")
struct JournalTests {
    @Test func appendAndReadBack() throws {
        let dir = journalTempDir()
        defer { removeTree(dir) }
        let path = dir + "/nested/state/journal.db"
        let j = try Journal(path: path)
        #expect(fileMode(path) == 0o600)
        #expect(fileMode(dir + "/nested/state") == 0o700)

        try j.append([
            Record(.spawned, node: "db-watchdog", pid: 100, incarnation: 1),
            Record(.restart, node: "data", detail: "one_for_one: db-watchdog exited"),
        ], at: 1_000)
        try j.append([Record(.ready, node: "db-watchdog", pid: 100, incarnation: 1)], at: 2_000)

        let all = try j.events(limit: 10)
        #expect(all.map(\.kind) == ["spawned", "restart", "ready"])
        #expect(all.map(\.wallNanoseconds) == [1_000, 1_000, 2_000])
        #expect(all[0].pid == 100 && all[0].incarnation == 1)
        #expect(all[1].pid == nil && all[1].incarnation == nil)
        #expect(all[1].detail == "one_for_one: db-watchdog exited")
        #expect(all[0].record == Record(.spawned, node: "db-watchdog", pid: 100, incarnation: 1))
        #expect(all[0].id < all[1].id && all[1].id < all[2].id)

        // limit keeps the newest, still newest last
        #expect(try j.events(limit: 2).map(\.kind) == ["restart", "ready"])
        #expect(try j.events(limit: 10, node: "db-watchdog").map(\.kind) == ["spawned", "ready"])
        #expect(try j.events(limit: 10, node: "nobody").isEmpty)
        #expect(try j.events(limit: 0).isEmpty)
    }

    @Test func runsLifecycle() throws {
        let dir = journalTempDir()
        defer { removeTree(dir) }
        let j = try Journal(path: dir + "/journal.db")
        try j.append([Record(.spawned, node: "gw", pid: 10, incarnation: 1)], at: 100)
        var runs = try j.runs(node: "gw", limit: 10)
        #expect(runs == [ChildRun(node: "gw", incarnation: 1, pid: 10, startedNanoseconds: 100,
                                  readyNanoseconds: nil, exitedNanoseconds: nil, exit: nil)])
        #expect(runs[0].isRunning)

        try j.append([Record(.ready, node: "gw", pid: 10, incarnation: 1)], at: 150)
        try j.append([
            Record(.exited, node: "gw", pid: 10, incarnation: 1, detail: ProcessExit.signaled(9).description),
            Record(.restart, node: "gw", detail: "permanent"),
            Record(.spawned, node: "gw", pid: 11, incarnation: 2),
        ], at: 200)
        // A failed spawn has no pid and no spawned record.
        try j.append([Record(.spawnFailed, node: "risk", incarnation: 1, detail: "spawn failed (errno 2)")], at: 250)
        // A ready record without incarnation finds the open run by pid.
        try j.append([Record(.ready, node: "gw", pid: 11)], at: 260)

        runs = try j.runs(node: "gw", limit: 10)
        #expect(runs.count == 2)
        #expect(runs[0] == ChildRun(node: "gw", incarnation: 1, pid: 10, startedNanoseconds: 100,
                                    readyNanoseconds: 150, exitedNanoseconds: 200, exit: "signal SIGKILL"))
        #expect(runs[1] == ChildRun(node: "gw", incarnation: 2, pid: 11, startedNanoseconds: 200,
                                    readyNanoseconds: 260, exitedNanoseconds: nil, exit: nil))
        let risk = try j.runs(node: "risk", limit: 10)
        #expect(risk == [ChildRun(node: "risk", incarnation: 1, pid: nil, startedNanoseconds: 250,
                                  readyNanoseconds: nil, exitedNanoseconds: 250, exit: "spawn failed (errno 2)")])
        #expect(try j.runs(node: nil, limit: 10).map(\.node) == ["gw", "gw", "risk"])
        #expect(try j.runs(node: nil, limit: 1).map(\.node) == ["risk"])
        #expect(try j.lastIncarnations() == ["gw": 2, "risk": 1])
    }

    @Test func writerAndReaderAtOnce() throws {
        let dir = journalTempDir()
        defer { removeTree(dir) }
        let path = dir + "/journal.db"
        let writer = try Journal(path: path)
        try writer.append([Record(.treeReady, node: "root")], at: 1)
        let reader = try Journal(readOnlyPath: path)
        #expect(try reader.events(limit: 10).count == 1)

        // The reader sees each commit of the writer as it happens.
        for i in 2...50 {
            try writer.append([Record(.spawned, node: "w", pid: Int32(i), incarnation: UInt64(i))], at: Int64(i))
            #expect(try reader.events(limit: 1).first?.pid == Int32(i))
        }
        #expect(try reader.runs(node: "w", limit: 100).count == 49)
        // A reader cannot write.
        #expect(throws: JournalError.self) { try reader.append([Record(.ready, node: "w")], at: 3) }
        // A writer is not blocked by an open read transaction... a read statement in
        // progress is reset after each call, so none lingers; write again to be sure.
        try writer.append([Record(.treeStopped, node: "root")], at: 99)
        #expect(try reader.events(limit: 1).first?.kind == "tree_stopped")
        #expect(fileMode(path + "-wal") == 0o600)
        #expect(fileMode(path + "-shm") == 0o600)
    }

    @Test func reopenKeepsDataAndStarts() throws {
        let dir = journalTempDir()
        defer { removeTree(dir) }
        let path = dir + "/journal.db"
        do {
            let j = try Journal(path: path)
            try j.recordStart(pid: 4242, topology: "Topology/trading.yaml", at: 10)
            try j.append([Record(.spawned, node: "a", pid: 1, incarnation: 1)], at: 11)
        }
        // Read-only after the writer closed (its WAL has been checkpointed and removed).
        do {
            let r = try Journal(readOnlyPath: path)
            #expect(try r.events(limit: 5).map(\.node) == ["a"])
        }
        let j = try Journal(path: path)
        try j.recordStart(pid: 4243, topology: "t.yaml", at: 20)
        #expect(try j.events(limit: 5).map(\.node) == ["a"])
        #expect(try j.runs(node: "a", limit: 5).count == 1)
        let starts = try j.starts(limit: 5)
        #expect(starts.map(\.pid) == [4242, 4243])
        #expect(starts.map(\.topology) == ["Topology/trading.yaml", "t.yaml"])
    }

    @Test func errorsCarryMessages() throws {
        let dir = journalTempDir()
        defer { removeTree(dir) }
        do {
            _ = try Journal(readOnlyPath: dir + "/missing.db")
            Issue.record("opened a missing journal")
        } catch {
            #expect(error.message.contains("no journal at"))
        }
        // A file that is not a database.
        let junk = dir + "/junk.db"
        let fd = open(junk, O_WRONLY | O_CREAT, 0o600)
        _ = "this is not sqlite, not at all, definitely not a database header".withCString { write(fd, $0, 64) }
        close(fd)
        do {
            _ = try Journal(path: junk)
            Issue.record("opened junk as a journal")
        } catch {
            #expect(error.code != 0)
            #expect(error.description.contains("not a database"))
        }
    }

    @Test func appendCost() throws {
        let dir = journalTempDir()
        defer { removeTree(dir) }
        let j = try Journal(path: dir + "/journal.db")
        let calls = 10_000
        var samples: [Int64] = []
        samples.reserveCapacity(calls)
        let start = vigil_monotonic_ns()
        for i in 0..<calls {
            let inc = UInt64(i + 1)
            let t0 = vigil_monotonic_ns()
            try j.append([
                Record(.exited, node: "strategy-runner.2", pid: Int32(1000 + i), incarnation: inc, detail: "signal SIGKILL"),
                Record(.restart, node: "strategy-runner.2", detail: "permanent child exited; restarting now"),
                Record(.spawned, node: "strategy-runner.2", pid: Int32(1001 + i), incarnation: inc + 1),
            ], at: vigil_realtime_ns())
            samples.append(vigil_monotonic_ns() - t0)
        }
        let total = vigil_monotonic_ns() - start
        samples.sort()
        func us(_ ns: Int64) -> String { String(Double(ns / 100) / 10) }
        print("journal append, 3 records/call x \(calls): total \(total / 1_000_000) ms, mean \(us(total / Int64(calls))) us, "
              + "p50 \(us(samples[calls / 2])) us, p99 \(us(samples[calls * 99 / 100])) us, max \(us(samples[calls - 1])) us")
        #expect(try j.events(limit: 1).first?.kind == "spawned")
    }

    @Test func aVersion1JournalIsMigratedAndKeepsItsRuns() throws {
        let dir = journalTempDir()
        defer { removeTree(dir) }
        let path = dir + "/journal.db"
        // A journal as the previous release wrote it: schema 1, runs without main_pid.
        let sql = """
            CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
            CREATE TABLE events(id INTEGER PRIMARY KEY, at_ns INTEGER NOT NULL, kind TEXT NOT NULL, node TEXT NOT NULL,
                                pid INTEGER NULL, incarnation INTEGER NULL, detail TEXT NOT NULL);
            CREATE TABLE runs(node TEXT NOT NULL, incarnation INTEGER NOT NULL, pid INTEGER NULL, started_ns INTEGER NOT NULL,
                              ready_ns INTEGER NULL, exited_ns INTEGER NULL, exit TEXT NULL, PRIMARY KEY(node, incarnation)) WITHOUT ROWID;
            CREATE TABLE vigil_starts(id INTEGER PRIMARY KEY, pid INTEGER NOT NULL, at_ns INTEGER NOT NULL, topology TEXT NOT NULL);
            INSERT INTO meta VALUES ('schema_version', '1');
            INSERT INTO runs(node, incarnation, pid, started_ns) VALUES ('daemon', 3, 4242, 1000);
            """
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/sqlite3")
        p.arguments = [path, sql]
        try p.run()
        p.waitUntilExit()
        #expect(p.terminationStatus == 0)
        let j = try Journal(path: path)
        try j.append([Record(.mainPID, node: "daemon", pid: 4243, incarnation: 3)], at: 2000)
        let run = try j.runs(node: "daemon", limit: 1).first
        #expect(run?.pid == 4242 && run?.mainPID == 4243 && run?.isRunning == true)
    }
}
