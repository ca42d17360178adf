// db-watchdog: owns the health of the trading database.
//
// Opens (creating if needed) the SQLite trading database in WAL mode, creates the schema
// (instruments, prices, orders, fills), seeds BTC-USD, ETH-USD and SOL-USD with start
// prices if there are no instruments, then runs `PRAGMA quick_check` on an interval, each
// time on a fresh connection so the page cache cannot hide corruption on disk.
// READY after the first good check. Heartbeats are manual and sent only while the last
// check passed: a failed check logs, sets the status and stops the heartbeat, so vigil's
// watchdog declares the worker hung and restarts it. A later good check resumes them.
//
// Flags:
//   --db PATH             the database (default $VIGIL_STATE_DIR/trading.db, else ./trading.db)
//   --interval DURATION   time between quick checks, e.g. 500ms, 2s, 1m (default 2s)
//
// Exit: 0 on SIGTERM/SIGINT, 1 if the database cannot be opened or created, 2 on a bad
// flag, 70 when the channel to vigil closes.
import CShim
@preconcurrency import Glibc
import TradingStore
import VigilWorker

var flags = Flags(usage: "usage: db-watchdog [--db PATH] [--interval DURATION]")
let dbFlag = flags.string("--db")
let interval = flags.duration("--interval", default: .seconds(2))
flags.finish()
let worker = Worker.connect(heartbeat: .manual)
let path = dbFlag ?? TradingStore.defaultPath(stateDirectory: worker.stateDirectory)

@MainActor func openAndPrepare() -> TradingStore {
    do {
        let store = try TradingStore(path: path, create: true)
        try store.createSchema()
        let seeded = try store.seedIfEmpty()
        if seeded > 0 { worker.log("seeded \(seeded) instruments into an empty database") }
        return store
    } catch {
        worker.log("cannot prepare \(path): \(error)")
        exit(1)
    }
}

openAndPrepare().close()
worker.log("watching \(path) (WAL), quick_check every \(interval)")

/// One quick check on a fresh connection (a long-lived one would answer from its page
/// cache and miss corruption on disk, or a deleted file): nil when healthy, else what is wrong.
@MainActor func check() -> String? {
    do {
        let probe = try TradingStore(path: path, create: false)
        defer { probe.close() }
        let result = try probe.quickCheck()
        return result == ["ok"] ? nil : result.prefix(5).joined(separator: "; ")
    } catch {
        return "\(error)"
    }
}

var healthy = false
var announcedReady = false
var checks = 0, failures = 0
let intervalNs = interval.wholeNanoseconds
let beatNs = worker.heartbeatInterval.wholeNanoseconds
var nextCheck = vigil_monotonic_ns()
var nextBeat = nextCheck

while !worker.isStopping {
    let now = vigil_monotonic_ns()
    if now >= nextCheck {
        checks += 1
        if let problem = check() {
            failures += 1
            if healthy || checks == 1 { worker.log("quick_check FAILED: \(problem); heartbeats stop until a check passes") }
            healthy = false
            worker.status("UNHEALTHY: quick_check failed (\(failures) of \(checks)): \(problem)")
        } else {
            if !healthy && checks > 1 { worker.log("quick_check passes again; heartbeats resume") }
            healthy = true
            if !announcedReady {
                announcedReady = true
                worker.ready()
                worker.log("first quick_check ok: READY")
            }
            worker.status("healthy: \(checks) quick checks, \(failures) failed, db \(path)")
        }
        nextCheck = now + intervalNs
    }
    if healthy && now >= nextBeat {
        worker.heartbeat()
        nextBeat = now + beatNs
    }
    let wakeAt = healthy ? min(nextCheck, nextBeat) : nextCheck
    worker.sleep(for: .nanoseconds(max(0, wakeAt - vigil_monotonic_ns())))
}

worker.stopping()
worker.log("stopping on signal \(worker.stopSignal ?? 0)")
