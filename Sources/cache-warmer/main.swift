// cache-warmer: serves instruments, last prices and positions from an in-memory cache of
// the trading database to the other workers, over a Unix socket.
//
// Builds a `CacheSnapshot` (every instrument with its seed and last price, every owner's
// net position per instrument) from one read transaction of the database, and rebuilds it
// every --interval. A rebuild makes a new immutable snapshot and replaces the old one in one
// assignment on the one thread that also answers lookups, so a lookup sees one whole
// snapshot, never a half-built one. A failed rebuild keeps serving the last good snapshot
// (its status says STALE). READY only once warm: the first snapshot built, then the socket
// served. It never creates the database (db-watchdog does) and waits for it.
//
// After a restore: db-watchdog exits when it finds the database damaged, and vigil's
// rest_for_one stops this worker and starts it again after db-watchdog is READY on the
// restored file, so the new incarnation warms from scratch. Should the file be swapped
// without that (db-watchdog run elsewhere), the `LiveStore` sees the new file: the cache is
// dropped (lookups wait until the rebuild, a few ms) and rebuilt from it.
//
// The socket ($VIGIL_RUNTIME_DIR/cache.sock by default, mode 0600) speaks one line per
// request and one line per answer (`CacheSnapshot.answer`):
//
//     GET price BTC-USD                      PRICE BTC-USD 60012.5 1718000000000000000
//     GET position strategy-runner.1 BTC-USD  POSITION strategy-runner.1 BTC-USD 2
//     GET instrument SOL-USD                 INSTRUMENT SOL-USD 150
//     INFO                                   CACHE generation=7 instruments=3 fills=42 last_fill=42
//     GET book                               BOOK generation=7 age_ms=130 fills=42 last_fill=42 | PRICE ... | HOLDING ...
//
// `GET book` is what the risk guardian reads: every quote, last fill price and owner's
// holding of one snapshot, with the snapshot's age (see `CacheSnapshot.answer`).
// Flags:
//   --db PATH             the database (default $VIGIL_STATE_DIR/trading.db, else ./trading.db)
//   --socket PATH         where to serve (default $VIGIL_RUNTIME_DIR/cache.sock, else ./cache.sock)
//   --interval DURATION   rebuild period, e.g. 500ms, 1s (default 1s)
//
// Exit: 0 on SIGTERM/SIGINT, 1 if the socket cannot be served, 2 on a bad flag, 70 when
// the channel to vigil closes.
import CShim
@preconcurrency import Glibc
import Trading
import TradingStore
import VigilWorker

var flags = Flags(usage: "usage: cache-warmer [--db PATH] [--socket PATH] [--interval DURATION]")
let dbFlag = flags.string("--db")
let socketFlag = flags.string("--socket")
let interval = flags.duration("--interval", default: .seconds(1))
flags.finish()
let worker = Worker.connect()
let path = dbFlag ?? TradingStore.defaultPath(stateDirectory: worker.stateDirectory)
let socketPath = socketFlag
    ?? (worker.runtimeDirectory.map { $0.hasSuffix("/") ? "\($0)cache.sock" : "\($0)/cache.sock" } ?? "./cache.sock")

let stores = LiveStore(path: path)
/// The snapshot lookups are answered from; nil until warm (and while a replaced database's
/// first rebuild has not succeeded).
var cache: CacheSnapshot?
var generation = 0, failures = 0, lookups = 0
var replacementsSeen = 0
var lastProblem = ""

/// Builds a new snapshot and swaps it in. Returns nil on success, else what went wrong
/// (the previous snapshot stays, unless the database file was replaced).
@MainActor func rebuild() -> String? {
    do {
        let store = try stores.current()
        if stores.replacements != replacementsSeen {
            replacementsSeen = stores.replacements
            cache = nil
            worker.report(key: "cache", text: "database file replaced (restored?): cache of generation \(generation) invalidated, rebuilding")
        }
        let next = try store.cacheSnapshot(generation: generation + 1)
        generation = next.generation
        cache = next  // the swap: one assignment, on the thread that answers lookups
        return nil
    } catch {
        stores.failed(error)
        return "\(error)"
    }
}

// MARK: - Warm before READY

while !worker.isStopping, cache == nil {
    if let problem = rebuild() {
        if problem != lastProblem { worker.log("not warm yet: \(problem)") }
        lastProblem = problem
        worker.status("cold: \(problem)")
        worker.sleep(for: .milliseconds(200))
    }
}
guard let first = cache else {
    worker.log("stopping before the cache was warm")
    exit(0)
}

let listener: Int32
do {
    listener = try UnixSocket.listen(path: socketPath)
} catch {
    worker.log("cannot serve \(socketPath): \(error)")
    exit(1)
}
worker.ready()
worker.log("warm: \(first.seeds.count) instruments (\(first.livePrices) with last prices), \(first.fillCount) fills, \(first.positions.count) owners; serving \(socketPath): READY")

// MARK: - Serving

/// One connected reader.
final class Client {
    let fd: Int32
    var input = LineBuffer(limit: 512)
    var output: [UInt8] = []
    init(fd: Int32) { self.fd = fd }
}
var clients: [Int32: Client] = [:]

@MainActor func drop(_ client: Client) {
    close(client.fd)
    clients[client.fd] = nil
}

@MainActor func serve(_ client: Client) {
    do {
        guard let bytes = try UnixSocket.read(client.fd) else { return }
        if bytes.isEmpty { drop(client); return }
        for line in client.input.append(bytes) {
            lookups += 1
            let answer = cache?.answer(line, now: vigil_monotonic_ns()) ?? "ERROR cache_rebuilding"
            client.output.append(contentsOf: Array(answer.utf8) + [10])
        }
        if client.input.overflowed { drop(client); return }
        flush(client)
    } catch {
        drop(client)
    }
}

/// Writes what the socket takes of a client's answers; the rest waits for the next pass.
@MainActor func flush(_ client: Client) {
    guard !client.output.isEmpty else { return }
    do {
        let n = try UnixSocket.write(client.fd, client.output[...])
        client.output.removeFirst(n)
        if client.output.count > 1 << 20 { drop(client) }  // not reading its answers
    } catch {
        drop(client)
    }
}

let intervalNs = interval.wholeNanoseconds
var nextRebuild = vigil_monotonic_ns() + intervalNs
while !worker.isStopping {
    let ready = worker.poll(fds: [listener] + Array(clients.keys), timeout: .nanoseconds(max(0, nextRebuild - vigil_monotonic_ns())))
    for fd in ready {
        if fd == listener {
            while let c = UnixSocket.accept(listener) { clients[c] = Client(fd: c) }
        } else if let client = clients[fd] {
            serve(client)
        }
    }
    for c in Array(clients.values) { flush(c) }
    let now = vigil_monotonic_ns()
    guard now >= nextRebuild else { continue }
    nextRebuild = now + intervalNs
    if let problem = rebuild() {
        failures += 1
        if problem != lastProblem { worker.log("rebuild failed, serving generation \(cache?.generation ?? 0): \(problem)") }
        lastProblem = problem
        worker.status("STALE (generation \(cache.map { "\($0.generation)" } ?? "none")): \(problem)")
    } else if let c = cache {
        if !lastProblem.isEmpty { worker.log("rebuilt again: generation \(c.generation)") }
        lastProblem = ""
        worker.status("warm: generation \(c.generation), \(c.seeds.count) instruments (\(c.livePrices) live prices), \(c.fillCount) fills, \(c.positions.count) owners, \(lookups) lookups, \(clients.count) clients on \(socketPath)")
    }
}

worker.stopping()
for c in clients.values { close(c.fd) }
close(listener)
unlink(socketPath)
stores.close()
worker.log("stopping on signal \(worker.stopSignal ?? 0) after \(lookups) lookups; cache of generation \(generation) dropped")
