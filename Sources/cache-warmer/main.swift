// cache-warmer: keeps an in-memory cache of instruments and their last prices warm.
//
// Loads every instrument and its last price from the trading database (written by the
// exchange gateway), falling back to the instrument's seed price where no price exists
// yet, and refreshes on an interval. READY only once warm: at least one instrument, and
// every instrument with a last or seed price. Until then it retries (the database may not
// exist yet: it never creates it; db-watchdog does). The status line gives the counts.
//
// Flags:
//   --db PATH             the database (default $VIGIL_STATE_DIR/trading.db, else ./trading.db)
//   --interval DURATION   refresh period, e.g. 500ms, 1s (default 1s)
//
// Exit: 0 on SIGTERM/SIGINT, 2 on a bad flag, 70 when the channel to vigil closes.
import CShim
@preconcurrency import Glibc
import Trading
import TradingStore
import VigilWorker

var flags = Flags(usage: "usage: cache-warmer [--db PATH] [--interval DURATION]")
let dbFlag = flags.string("--db")
let interval = flags.duration("--interval", default: .seconds(1))
flags.finish()
let worker = Worker.connect()
let path = dbFlag ?? TradingStore.defaultPath(stateDirectory: worker.stateDirectory)

/// One cached quote: the price and where it came from.
struct Quote {
    var price: Price
    /// Nanoseconds since the epoch of the last gateway update; nil when only the seed is known.
    var updatedNs: Int64?
}

var cache: [Instrument: Quote] = [:]
var store: TradingStore?
var refreshes = 0, failures = 0
var lastProblem = ""
var warm = false

/// Reloads the cache. Returns nil on success, else what went wrong (the old cache stays).
@MainActor func refresh() -> String? {
    do {
        if store == nil {
            let s = try TradingStore(path: path, create: false)
            guard try s.hasSchema() else { s.close(); return "no schema in \(path) yet" }
            store = s
        }
        let instruments = try store!.instruments()
        let prices = try store!.lastPrices()
        var next: [Instrument: Quote] = [:]
        for (i, seed) in instruments {
            if let p = prices[i] { next[i] = Quote(price: p.price, updatedNs: p.updatedNs) } else { next[i] = Quote(price: seed, updatedNs: nil) }
        }
        guard !next.isEmpty else { return "no instruments in \(path) yet" }
        cache = next
        refreshes += 1
        return nil
    } catch {
        store?.close()
        store = nil  // reopen next time: the file may have been replaced
        return "\(error)"
    }
}

while !worker.isStopping {
    if let problem = refresh() {
        failures += 1
        if problem != lastProblem { worker.log(warm ? "refresh failed, serving the previous cache: \(problem)" : "not warm yet: \(problem)") }
        lastProblem = problem
        worker.status((warm ? "stale: " : "cold: ") + problem)
    } else {
        lastProblem = ""
        let live = cache.values.filter { $0.updatedNs != nil }.count
        if !warm {
            warm = true
            worker.ready()
            worker.log("warm: \(cache.count) instruments (\(live) with last prices, \(cache.count - live) on seed prices): READY")
        }
        let now = vigil_realtime_ns()
        let newest = cache.values.compactMap(\.updatedNs).max().map { "\((now - $0) / 1_000_000) ms ago" } ?? "never"
        worker.status("warm: \(cache.count) instruments, \(live) last prices, \(cache.count - live) seed-only, last price update \(newest), refresh #\(refreshes)")
    }
    if !worker.sleep(for: interval) { break }
}

worker.stopping()
store?.close()
worker.log("stopping on signal \(worker.stopSignal ?? 0): cache of \(cache.count) instruments dropped")
