// risk-guardian: watches positions and exposure across every strategy.
//
// Each --interval it reads the risk picture, every owner's net position and cost per
// instrument and the last prices (a `RiskBook`), marks the positions at the gateway's last
// prices (the last fill price when an instrument has none) and compares exposure, |net
// qty| * price, per instrument and in total with the limits. A breach is logged once when
// it starts ("RISK LIMIT BREACHED") and once when it clears; the status line always shows
// the exposure and the source. READY after the first complete read.
//
// Two sources, the same numbers (`RiskSourceSelector`): the cache warmer's `GET book` on
// --cache, asked with a --cache-timeout deadline (50 ms: a wedged cache costs one tick 50
// ms, never a stall), used while its snapshot is at most --cache-max-age old; else the
// database, whose fills it applies in row-id order (only new rows each read, so falling
// back after a while on the cache reads what it missed). A cache that is down, wedged,
// rebuilding or stale switches it to the database at once; three fresh answers in a row
// switch it back. Each switch (and the first choice) is logged and journaled once
// (`risk-source` report). The cache is optional: the guardian starts without it (it is
// started before the cache warmer, and does not depend on it).
//
// Restart requests are answered on the SDK's channel thread from the last picture read,
// never waiting for a read: a slow database or cache delays the next picture, not a verdict.
//
// As the tree's guardian (`role: guardian`) it answers vigil's restart requests for
// guarded children with `Trading.GuardianState`: liquidate while the drawdown from the
// equity peak exceeds --max-drawdown, safe mode while an exposure limit is breached, deny
// a child restarted more than --max-restarts times within --restart-window, else allow.
// On its own it orders safe mode when exposure breaches a limit, liquidation when the
// drawdown does, and the all-clear once exposure has been within limits for --all-clear
// (only for a safe mode it ordered itself: one entered by an operator or by vigil's
// fail-safe is left to `vigil safe-mode off`). What it ordered is checkpointed, so a
// restarted guardian still owns it.
//
// Flags:
//   --db PATH                          the database (default $VIGIL_STATE_DIR/trading.db,
//                                      else ./trading.db)
//   --interval DURATION                how often to read the risk picture (default 1s)
//   --cache PATH | off                 the cache warmer's socket (default
//                                      $VIGIL_RUNTIME_DIR/cache.sock); off: database only
//   --cache-timeout DURATION           deadline of one cache query (default 50ms)
//   --cache-max-age DURATION           an older cache snapshot is stale (default 3s)
//   --max-exposure AMOUNT              total exposure limit in quote currency, e.g. 250000
//                                      or 1234.56 (default 1000000)
//   --max-instrument-exposure AMOUNT   per-instrument exposure limit (default: none)
//   --max-drawdown AMOUNT              fall of equity from its peak that orders liquidation
//                                      (default: none)
//   --max-restarts N                   restarts allowed per guarded child within
//   --restart-window DURATION          the window (default: no limit; window 1m)
//   --all-clear DURATION               within limits this long lifts its safe mode (30s)
//
// Exit: 0 on SIGTERM/SIGINT, 2 on a bad flag, 70 when the channel to vigil closes.
import CShim
@preconcurrency import Glibc
import Synchronization
import Trading
import TradingStore
import VigilWorker

var flags = Flags(usage: """
    usage: risk-guardian [--db PATH] [--interval DURATION] [--max-exposure AMOUNT] [--max-instrument-exposure AMOUNT]
                         [--max-drawdown AMOUNT] [--max-restarts N] [--restart-window DURATION] [--all-clear DURATION]
                         [--cache PATH|off] [--cache-timeout DURATION] [--cache-max-age DURATION]
    """)
let dbFlag = flags.string("--db")
let interval = flags.duration("--interval", default: .seconds(1))
let cacheFlag = flags.string("--cache")
let cacheTimeout = flags.duration("--cache-timeout", default: .milliseconds(50))
let cacheMaxAge = flags.duration("--cache-max-age", default: .seconds(3))
let amount = "a positive amount like 250000 or 1234.56 (at most 6 decimals)"
let maxTotal = flags.value("--max-exposure", expected: amount) { Price(parsing: $0).flatMap { $0.micros > 0 ? $0 : nil } }
    ?? Price(units: 1_000_000)
let maxInstrument = flags.value("--max-instrument-exposure", expected: amount) { Price(parsing: $0).flatMap { $0.micros > 0 ? $0 : nil } }
let maxDrawdown = flags.value("--max-drawdown", expected: amount) { Price(parsing: $0).flatMap { $0.micros > 0 ? $0 : nil } }
let maxRestarts = flags.value("--max-restarts", expected: "a whole number of restarts, 1 or more") { Int($0).flatMap { $0 >= 1 ? $0 : nil } }
let restartWindow = flags.duration("--restart-window", default: .seconds(60))
let allClear = flags.duration("--all-clear", default: .seconds(30))
flags.finish()
let worker = Worker.connect()
let path = dbFlag ?? TradingStore.defaultPath(stateDirectory: worker.stateDirectory)
let limits = ExposureLimits(total: maxTotal, perInstrument: maxInstrument)
let rules = GuardianRules(maxDrawdown: maxDrawdown, maxRestartsPerChild: maxRestarts,
                          restartWindowNs: restartWindow.wholeNanoseconds, allClearNs: allClear.wholeNanoseconds)

/// The rules' state, shared with the channel thread that answers restart requests.
let guardian: Mutex<GuardianState> = {
    guard let bytes = worker.restoredState else { return Mutex(GuardianState(rules: rules)) }
    do {
        let memory = try GuardianState.Memory(decoding: bytes)
        worker.log("restored: safe mode ordered \(memory.safeModeOrdered), liquidation ordered \(memory.liquidationOrdered), equity peak \(memory.peakEquity.map { "\($0)" } ?? "none")")
        return Mutex(GuardianState(rules: rules, restoring: memory))
    } catch {
        worker.log("ignoring a bad checkpoint (\(bytes.count) bytes): \(error)")
        return Mutex(GuardianState(rules: rules))
    }
}()
/// The memory last checkpointed, so a checkpoint is sent only when it changes.
let checkpointed = Mutex<GuardianState.Memory?>(nil)

/// Checkpoints what this guardian ordered when it changed (see GuardianState.Memory).
func checkpointIfChanged() {
    let memory = guardian.withLock { $0.memory }
    let changed = checkpointed.withLock { last in
        defer { last = memory }
        return last != memory
    }
    if changed { worker.checkpoint(memory.encoded()) }
}

worker.onRestartRequest { request in
    let decision = guardian.withLock { $0.decide(restartOf: request.child, at: vigil_monotonic_ns()) }
    let verdict: Verdict = switch decision {
    case .allow: .allow
    case .deny(let r): .deny(reason: r)
    case .safeMode(let r): .safeMode(reason: r)
    case .liquidate(let r): .liquidate(reason: r)
    }
    worker.log("restart of \(request.child) after \(request.reason) (\(request.recentRestarts) recent): \(verdict)")
    checkpointIfChanged()  // the restart it allowed counts after its own restart too
    return verdict
}
worker.onNotice { key, value in
    // Safe mode lifted: by an operator (or by this guardian's own all-clear).
    if key == Notice.safeMode && value == "off" {
        guardian.withLock { $0.safeModeLifted() }
        checkpointIfChanged()
    }
}
worker.onCheckpointRequest { guardian.withLock { $0.memory.encoded() } }

/// Follows the database file: a restore swaps a new file in (see `LiveStore`).
let stores = LiveStore(path: path)
var replacementsSeen = 0
/// The book built from the database's fills, up to `lastRowID`.
var databaseBook = RiskBook()
var lastRowID: Int64 = 0
var activeBreaches: Set<ExposureLimits.Breach.Key> = []
var announcedReady = false
var lastProblem = ""
/// The cache warmer, asked first every tick (nil: --cache off).
let cache: CacheClient? = cacheFlag == "off" ? nil
    : CacheClient(path: cacheFlag ?? CacheClient.defaultPath(runtimeDirectory: worker.runtimeDirectory), timeout: cacheTimeout)
var sources = RiskSourceSelector(maxAgeNs: cacheMaxAge.wholeNanoseconds)

extension ExposureLimits.Breach {
    /// Which limit, without the amounts: a breach that persists while exposure moves is one breach.
    enum Key: Hashable, CustomStringConvertible {
        case total, instrument(Instrument)
        var description: String {
            switch self {
            case .total: "total exposure"
            case .instrument(let i): "\(i) exposure"
            }
        }
    }
    var key: Key {
        switch self {
        case .total: .total
        case .instrument(let i, _, _): .instrument(i)
        }
    }
}

/// The risk picture read this tick: the book, the marks, and where they came from.
struct Picture {
    var book: RiskBook
    var marks: [Instrument: Price]
    var source: String
}

/// Reads every new fill of the database and its last prices. Returns nil on a failure
/// (logged once, in the status line).
@MainActor func readDatabase() -> Picture? {
    do {
        let store = try stores.current()
        if stores.replacements != replacementsSeen {
            // A new file (restored by db-watchdog): the fills are read again from the start,
            // so exposure is what the restored database says, not what the old one said.
            replacementsSeen = stores.replacements
            worker.log("database \(stores.lastOpen): exposure recomputed from every fill of the new file")
            databaseBook = RiskBook()
            lastRowID = 0
        }
        while true {
            let batch = try store.fills(after: lastRowID)
            for f in batch.fills { databaseBook.apply(f) }
            for id in batch.invalid { worker.log("skipping fill row \(id): not a valid fill") }
            let last = max(batch.fills.last?.fillID ?? 0, batch.invalid.max() ?? 0)
            if last == 0 { break }
            lastRowID = max(lastRowID, last)
        }
        let marks = try store.lastPrices().mapValues(\.price)
        return Picture(book: databaseBook, marks: marks, source: "database")
    } catch {
        stores.failed(error)
        fail("cannot read \(path): \(error)")
        return nil
    }
}

/// A read that gave no picture: logged when the problem changes, always in the status.
@MainActor func fail(_ problem: String) {
    if problem != lastProblem { worker.log(problem) }
    lastProblem = problem
    worker.status((announcedReady ? "STALE: " : "waiting: ") + problem)
}

/// Reads the risk picture from the source the selector chooses, and journals a switch.
@MainActor func read() -> Picture? {
    let choice = sources.choose(cache?.book() ?? .failed("not used (--cache off)"))
    if let s = choice.switched {
        worker.log(s.description)
        worker.report(key: "risk-source", text: s.description)
    }
    guard choice.source == .cache, let b = choice.book else { return readDatabase() }
    return Picture(book: b.book, marks: b.marks, source: "cache generation \(b.generation)")
}

/// Applies the rules to a picture: the guardian's own orders, and what the status shows.
@MainActor func judge(_ p: Picture) -> (ExposureReport, [ExposureLimits.Breach]) {
    let report = p.book.exposure(marks: p.marks)
    lastProblem = ""
    let breaches = limits.breaches(in: report)
    let snapshot = RiskSnapshot(breaches: breaches, equity: p.book.equity(marks: p.marks), hasOpenPositions: p.book.hasOpenPositions)
    for action in guardian.withLock({ $0.observe(snapshot, at: vigil_monotonic_ns()) }) { order(action) }
    checkpointIfChanged()
    return (report, breaches)
}

/// Sends one of the guardian's own orders to vigil, logged.
func order(_ action: GuardianAction) {
    switch action {
    case .safeModeOn(let r): worker.log("ORDERING SAFE MODE: \(r)"); worker.order(.safeModeOn(reason: r))
    case .safeModeOff(let r): worker.log("all-clear, lifting safe mode: \(r)"); worker.order(.safeModeOff(reason: r))
    case .liquidate(let r): worker.log("ORDERING LIQUIDATION: \(r)"); worker.order(.liquidate(reason: r))
    }
}

worker.log("limits: total exposure \(maxTotal)" + (maxInstrument.map { ", per instrument \($0)" } ?? ", no per-instrument limit")
    + (maxDrawdown.map { ", drawdown \($0)" } ?? ", no drawdown limit")
    + (maxRestarts.map { ", \($0) restarts per guarded child per \(restartWindow)" } ?? ", no restart-rate limit"))

while !worker.isStopping {
    if let picture = read() {
        let (report, breaches) = judge(picture)
        if !announcedReady {
            announcedReady = true
            worker.ready()
            worker.log("first read (\(picture.source)): \(picture.book.fillCount) fills, \(picture.book.netQuantities.count) open instruments: READY")
        }
        let keys = Set(breaches.map(\.key))
        for b in breaches where !activeBreaches.contains(b.key) { worker.log("RISK LIMIT BREACHED: \(b)") }
        for k in activeBreaches.subtracting(keys) { worker.log("risk limit back within bounds: \(k)") }
        activeBreaches = keys
        let unpriced = report.unpriced.isEmpty ? "" : " | NO PRICE: " + report.unpriced.map(\.symbol).joined(separator: " ")
        let per = report.perInstrument.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: " ")
        worker.status((breaches.isEmpty ? "ok" : "BREACH (\(breaches.count))")
            + ": exposure \(report.total) of \(maxTotal)" + (per.isEmpty ? "" : " | " + per)
            + unpriced + " | \(picture.book.fillCount) fills, P&L \(picture.book.equity(marks: picture.marks)) | from \(picture.source)")
    }
    if !worker.sleep(for: interval) { break }
}

worker.stopping()
stores.close()
worker.log("stopping on signal \(worker.stopSignal ?? 0) after \(databaseBook.fillCount) fills read from the database")
