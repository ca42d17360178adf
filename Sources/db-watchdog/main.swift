// db-watchdog: owns the health of the trading database.
//
// Before READY the database is made healthy: a full `integrity_check` on a fresh
// connection; a first start (no database, no snapshot, no journal) creates the schema and
// seeds BTC-USD, ETH-USD and SOL-USD; a database that is missing, damaged or truncated is
// restored (`SnapshotFiles.restore`): the newest snapshot that verifies, plus every fill
// of the fill journal it lacks, built beside it and swapped in with one rename. Then a
// first snapshot is taken (the restore point), and READY.
//
// Running: `PRAGMA quick_check` every --interval and `integrity_check` every
// --integrity-interval, each on a fresh connection so the page cache cannot hide damage on
// disk; a passive WAL checkpoint every --checkpoint-interval; an online backup (SQLite's
// backup API) every --backup-interval into a rotating set of --keep snapshot files, each
// verified with `integrity_check` before it takes its name.
//
// A failed check is reported to vigil's journal (key `db-health`) and the worker exits
// with status 65. Why exit rather than restore in place: vigil then restarts it under the
// data supervisor's rest_for_one, which first stops what was started after it (the cache
// warmer, whose cache came from the damaged file), and the next incarnation restores
// before READY, the one path a start with a damaged database takes anyway (after vigil
// restarts, or a restore killed half-way); the cache warmer starts again only once
// db-watchdog is READY, and rebuilds from the restored file. No special case in vigil:
// an exit is a failure like any other, counted against the supervisor's intensity. Writers
// stop meanwhile: db-watchdog raises `UnhealthyFlag` (`<db>.unhealthy`) before it exits
// and lowers it once the restored file is in place and verified; the gateway's
// `LiveStore` refuses a flagged or missing file and reopens a replaced one. Every restore step is reported (key `db-restore`), and every
// snapshot (key `db-snapshot`).
//
// Heartbeats are manual, from the main loop, so a loop stuck in a check is caught by
// vigil's watchdog.
//
// Flags:
//   --db PATH                       the database (default $VIGIL_STATE_DIR/trading.db, else ./trading.db)
//   --journal PATH                  the fill journal (default fills.journal beside the database)
//   --snapshots DIR                 snapshot directory (default snapshots/ beside the database)
//   --interval DURATION             time between quick checks (default 2s)
//   --integrity-interval DURATION   time between full integrity checks (default 30s)
//   --checkpoint-interval DURATION  time between WAL checkpoints (default 10s)
//   --backup-interval DURATION      time between snapshots (default 30s)
//   --keep N                        snapshots kept, 1...100 (default 3)
//
// Exit: 0 on SIGTERM/SIGINT, 1 if the database can be neither created nor restored, 2 on a
// bad flag, 65 when a check failed (the next incarnation restores), 70 when the channel to
// vigil closes.
import CShim
@preconcurrency import Glibc
import TradingStore
import VigilWorker

var flags = Flags(usage: """
    usage: db-watchdog [--db PATH] [--journal PATH] [--snapshots DIR] [--interval DURATION] [--integrity-interval DURATION]
                       [--checkpoint-interval DURATION] [--backup-interval DURATION] [--keep N]
    """)
let dbFlag = flags.string("--db")
let journalFlag = flags.string("--journal")
let snapshotsFlag = flags.string("--snapshots")
let interval = flags.duration("--interval", default: .seconds(2))
let integrityInterval = flags.duration("--integrity-interval", default: .seconds(30))
let checkpointInterval = flags.duration("--checkpoint-interval", default: .seconds(10))
let backupInterval = flags.duration("--backup-interval", default: .seconds(30))
let keep = flags.int("--keep", default: 3, range: 1...100)
flags.finish()
let worker = Worker.connect(heartbeat: .manual)
let path = dbFlag ?? TradingStore.defaultPath(stateDirectory: worker.stateDirectory)
let journal = FillJournal(path: journalFlag ?? FillJournal.defaultPath(databasePath: path))
let snapshots = SnapshotFiles(databasePath: path, directory: snapshotsFlag)

/// Status 65 (EX_DATAERR): a check failed; the next incarnation restores.
let damagedExitCode: Int32 = 65

/// A step for vigil's journal and the log.
func note(_ key: String, _ text: String) {
    worker.log("\(key): \(text)")
    worker.report(key: key, text: text)
}

// MARK: - Healthy before READY

/// A first start: nothing to restore from, so a new database is created.
func isFirstStart() -> Bool {
    let journaled = (try? journal.read().entries.isEmpty) == false
    return snapshots.current().newestFirst.isEmpty && !journaled
}

/// The first examination, asked again while another connection holds a lock (busy is
/// no evidence of damage, and a restore of a healthy file would be a needless one).
func examineAtStart() -> DatabaseHealth {
    var health = TradingStore.examine(path: path, full: true)
    for _ in 0..<5 {
        guard case .busy = health, !worker.isStopping else { break }
        worker.log("\(health): asking again")
        health = TradingStore.examine(path: path, full: true)
    }
    return health
}

let found = examineAtStart()
if case .busy = found {
    note("db-health", "cannot examine \(path): \(found); exiting (not restoring a file that may be healthy)")
    exit(1)
}
var restored = false
if found == .healthy {
    worker.log("\(path) is healthy (integrity_check ok)")
} else if found == .missing && isFirstStart() {
    worker.log("no database, no snapshot, no fill journal: creating \(path)")
} else {
    note("db-restore", "incarnation \(worker.incarnation) found \(path) \(found): restoring before READY")
    worker.status("RESTORING: \(found)")
    UnhealthyFlag.raise(databasePath: path, reason: "restoring: \(found)")
    do {
        _ = try snapshots.restore(journal: journal) { note("db-restore", $0) }
        restored = true
    } catch {
        note("db-restore", "RESTORE FAILED: \(error)")
        exit(1)
    }
}

do {
    let store = try TradingStore(path: path, create: true)
    defer { store.close() }
    try store.createSchema()
    let seeded = try store.seedIfEmpty()
    if seeded > 0 { worker.log("seeded \(seeded) instruments into an empty database") }
} catch {
    note("db-health", "cannot prepare \(path): \(error)")
    exit(1)
}
let ready = TradingStore.examine(path: path, full: true)
guard ready == .healthy else {
    note("db-health", "\(path) is still \(ready) after " + (restored ? "the restore" : "preparing it") + ": exiting")
    exit(1)
}
if UnhealthyFlag.isRaised(databasePath: path) {
    UnhealthyFlag.lower(databasePath: path)
    note("db-health", "\(path) healthy again: writers may use it (unhealthy flag lowered)")
}

var lastSnapshot = snapshots.current().newestFirst.first?.fileName ?? "none"
var lastSnapshotNs: Int64 = 0

/// Takes one snapshot and reports it; false (reported) if it failed.
@discardableResult
@MainActor func snapshot(why: String) -> Bool {
    do {
        let (name, deleted) = try snapshots.take(keep: keep)
        lastSnapshot = name
        lastSnapshotNs = vigil_monotonic_ns()
        note("db-snapshot", "\(why): \(name) written with the backup API and verified (integrity_check ok)"
             + (deleted.isEmpty ? "" : "; rotated out \(deleted.joined(separator: " "))"))
        return true
    } catch {
        note("db-snapshot", "\(why): snapshot FAILED: \(error)")
        return false
    }
}

if restored || snapshots.current().newestFirst.isEmpty {
    snapshot(why: restored ? "restore point after the restore" : "first restore point")
}
worker.ready()
worker.log("watching \(path): quick_check every \(interval), integrity_check every \(integrityInterval), WAL checkpoint every \(checkpointInterval), snapshot every \(backupInterval) (\(keep) kept in \(snapshots.directory)), fill journal \(journal.path): READY")

// MARK: - Watching

var quickChecks = 0, fullChecks = 0, checkpoints = 0, failedCheckpoints = 0
var lastCheckpoint = "none yet"
let start = vigil_monotonic_ns()
var nextQuick = start + interval.wholeNanoseconds
var nextFull = start + integrityInterval.wholeNanoseconds
var nextCheckpoint = start + checkpointInterval.wholeNanoseconds
var nextBackup = start + backupInterval.wholeNanoseconds
var nextBeat = start
var lastGoodCheck = start

/// Reports the failed check and exits so that vigil restarts this worker and, after it,
/// the cache warmer (see the file comment).
@MainActor func damaged(_ kind: String, _ health: DatabaseHealth) -> Never {
    let since = (vigil_monotonic_ns() - lastGoodCheck) / 1_000_000
    UnhealthyFlag.raise(databasePath: path, reason: "\(kind) failed: \(health)")
    note("db-health", "\(kind) FAILED (\(since) ms after the last good check): \(path) \(health); writers stopped (\(UnhealthyFlag.path(databasePath: path)) raised); exiting with status \(damagedExitCode): the next incarnation restores it before READY, and rest_for_one restarts the cache warmer after it")
    worker.status("UNHEALTHY: \(kind) failed: \(health)")
    exit(damagedExitCode)
}

while !worker.isStopping {
    let now = vigil_monotonic_ns()
    if now >= nextFull {
        fullChecks += 1
        let health = TradingStore.examine(path: path, full: true)
        if case .busy = health { worker.log("integrity_check \(health); again at the next check") } else {
            if health != .healthy { damaged("integrity_check", health) }
            lastGoodCheck = vigil_monotonic_ns()
        }
        nextFull = now + integrityInterval.wholeNanoseconds
        nextQuick = now + interval.wholeNanoseconds  // a full check covers the quick one
    } else if now >= nextQuick {
        quickChecks += 1
        let health = TradingStore.examine(path: path)
        if case .busy = health { worker.log("quick_check \(health); again at the next check") } else {
            if health != .healthy { damaged("quick_check", health) }
            lastGoodCheck = vigil_monotonic_ns()
        }
        nextQuick = now + interval.wholeNanoseconds
    }
    if now >= nextCheckpoint {
        do {
            let store = try TradingStore(path: path, create: false)
            defer { store.close() }
            let (frames, done) = try store.checkpointWAL()
            checkpoints += 1
            lastCheckpoint = "\(done) of \(frames) WAL frames"
            if failedCheckpoints > 0 { note("db-health", "WAL checkpoints work again after \(failedCheckpoints) failed") }
            failedCheckpoints = 0
        } catch {
            // Not damage (the pages check out), but the WAL grows without bound and a
            // reader pays for it: said in the journal once per streak, not every interval.
            failedCheckpoints += 1
            lastCheckpoint = "failed \(failedCheckpoints)x: \(error)"
            if failedCheckpoints == 1 { note("db-health", "WAL checkpoint failed: \(error); the WAL grows until one succeeds") } else { worker.log("WAL checkpoint failed again: \(error)") }
        }
        nextCheckpoint = now + checkpointInterval.wholeNanoseconds
    }
    if now >= nextBackup {
        // Only a file that just passed its check is worth keeping as a restore point.
        let health = TradingStore.examine(path: path)
        if case .busy = health {
            worker.log("snapshot skipped: \(health)")
        } else {
            if health != .healthy { damaged("quick_check before a snapshot", health) }
            snapshot(why: "scheduled")
        }
        nextBackup = now + backupInterval.wholeNanoseconds
    }
    if now >= nextBeat {
        worker.heartbeat()
        nextBeat = now + worker.heartbeatInterval.wholeNanoseconds
        let age = lastSnapshotNs == 0 ? "" : " (\((vigil_monotonic_ns() - lastSnapshotNs) / 1_000_000_000) s ago)"
        worker.status("healthy: \(quickChecks) quick + \(fullChecks) full checks ok, last snapshot \(lastSnapshot)\(age), \(checkpoints) WAL checkpoints (last: \(lastCheckpoint))")
    }
    let wakeAt = min(nextQuick, nextFull, nextCheckpoint, nextBackup, nextBeat)
    worker.sleep(for: .nanoseconds(max(0, wakeAt - vigil_monotonic_ns())))
}

worker.stopping()
worker.log("stopping on signal \(worker.stopSignal ?? 0) after \(quickChecks) quick and \(fullChecks) full checks")
