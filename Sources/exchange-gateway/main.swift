// exchange-gateway: a PAPER-TRADING venue. No real exchange, no real money: prices are a
// seeded random walk and every order fills in full at the current simulated price.
//
// Publishes a random-walk price for every instrument in the trading database each tick,
// stores the last prices in the database, and serves strategy runners on a Unix stream
// socket with the line protocol of `Trading.LineMessage` (HELLO PAPER / SUB / SUBSCRIBED /
// PRICE / ORDER / FILL / REJECT / ERROR). Orders carry client order ids; a repeated id is
// answered with the original fill and never filled twice (checked against the database,
// so this holds across gateway restarts). Every order and fill is recorded in the database
// in one transaction before the FILL is sent. Every client order id has at most one
// outcome, a fill or a rejection, both kept in the database: a repeated id always gets the
// same answer.
//
// Recovery before READY: orders recorded without a fill (a crash between the two writes;
// the paper venue fills at once, so nothing else is ever open) are settled in one
// transaction, exactly once: filled at the current price, or rejected when in safe mode;
// a liquidation the previous incarnation left unfinished is resumed. Strategy runners
// reconnect by themselves and re-send what they had in flight.
//
// Notices from vigil: `safe_mode` = `on` makes the venue cancel-only (new orders are
// rejected with `safe_mode`, open orders are cancelled) until `safe_mode` = `off`.
// `liquidate` = `start` flattens every position, each strategy's own (its net per
// instrument from the fills table) with market orders in that strategy's id space
// (`<runner>.0.liq<n>.<step>`, so its book reconciles to flat) and the venue's own as
// `liquidation.<n>.<step>`, one transaction per step; each step and the final flat positions are reported to vigil's
// journal (key `liquidation`). The liquidation is recorded in the database while in
// progress, so a gateway restarted mid-way resumes it; it never flattens twice.
//
// The database may be swapped under it (db-watchdog restores a damaged, truncated or
// deleted file by renaming a restored copy into place): every use goes through a
// `LiveStore`, which refuses a missing file (orders are rejected with `storage_error`,
// prices not stored: no writes into a file nobody will read), reopens when the file at
// the path is a new one or after an error saying the file is damaged, and on each reopen
// replays the fill journal first, so a fill it committed to the old file after the
// restore's copy was made is put back under its own id before it writes again. Every fill
// is appended to the fill journal (fsync'd) once committed and before the FILL is sent.
//
// Flags:
//   --db PATH          the database (default $VIGIL_STATE_DIR/trading.db, else ./trading.db)
//   --journal PATH     the fill journal (default fills.journal beside the database)
//   --socket PATH      where to listen (default $VIGIL_RUNTIME_DIR/gateway.sock, else
//                      ./gateway.sock); a stale socket file is removed, a live one is an error
//   --tick DURATION    price update period (default 200ms)
//   --seed N           random-walk seed, 0...2^64-1 (default: from the clock and pid)
//   --step-bps N       largest move per tick in basis points, 0...1000 (default 10)
//   --venue NAME       venue name in HELLO (default vigil-paper)
//
// Exit: 0 on SIGTERM/SIGINT, 1 if the socket cannot be served, 2 on a bad flag, 70 when
// the channel to vigil closes.
import CShim
@preconcurrency import Glibc
import Synchronization
import Trading
import TradingStore
import VigilWorker

var flags = Flags(usage: """
    usage: exchange-gateway [--db PATH] [--journal PATH] [--socket PATH] [--tick DURATION] [--seed N] [--step-bps N] [--venue NAME]
    """)
let dbFlag = flags.string("--db")
let journalFlag = flags.string("--journal")
let socketFlag = flags.string("--socket")
let tick = flags.duration("--tick", default: .milliseconds(200))
let seed = flags.value("--seed", expected: "an integer in 0...\(UInt64.max)") { UInt64($0) }
    ?? (UInt64(bitPattern: vigil_realtime_ns()) ^ (UInt64(getpid()) << 32))
let stepBps = flags.int("--step-bps", default: 10, range: 0...1000)
let venue = flags.value("--venue", expected: "a token of letters, digits, _ - . (1-64)") {
    LineMessage.isToken($0) ? $0 : nil
} ?? "vigil-paper"
flags.finish()
let worker = Worker.connect()
let dbPath = dbFlag ?? TradingStore.defaultPath(stateDirectory: worker.stateDirectory)
let socketPath = socketFlag
    ?? (worker.runtimeDirectory.map { $0.hasSuffix("/") ? "\($0)gateway.sock" : "\($0)/gateway.sock" } ?? "./gateway.sock")

let safeMode = Atomic<Bool>(false)
/// Set by the safe-mode notice, cleared by the main loop once open orders are cancelled.
let cancelOpenOrders = Atomic<Bool>(false)
/// Set by the liquidation notice, cleared by the main loop when it starts liquidating.
let liquidationRequested = Atomic<Bool>(false)
// A planned handoff (`vigil restart --handoff exchange-gateway`) needs no state from here:
// open orders, fills and liquidations are in the database, recovered before READY.
worker.onCheckpointRequest { [] }
listenForNotices { key, value in
    switch (key, value) {
    case (Notice.safeMode, "on"), (Notice.safeMode, "off"):
        let on = value == "on"
        if safeMode.exchange(on, ordering: .sequentiallyConsistent) != on {
            worker.log(on ? "safe mode ON: cancel-only, rejecting new orders, cancelling open orders" : "safe mode OFF: accepting orders")
        }
        if on { cancelOpenOrders.store(true, ordering: .sequentiallyConsistent) }
    case (Notice.liquidate, "start"):
        worker.log("liquidation ordered")
        liquidationRequested.store(true, ordering: .sequentiallyConsistent)
    default:
        worker.log("ignoring notice \(key) = \(value)")
    }
}

worker.log("PAPER-TRADING venue '\(venue)': simulated prices, simulated fills, no real orders leave this process")

// MARK: - Database and prices

let stores = LiveStore(path: dbPath, journal: FillJournal(path: journalFlag ?? FillJournal.defaultPath(databasePath: dbPath))) {
    (s: TradingStore) throws(DatabaseError) in try s.ensureGatewaySchema()
}
var opensSeen = 0

/// The database as it is now at `dbPath` (see the file comment); a reopen is reported.
var store: TradingStore {
    get throws(DatabaseError) {
        let s = try stores.current()
        if stores.opens != opensSeen {
            if opensSeen > 0 { report("database", stores.lastOpen) } else { worker.log("database \(dbPath): \(stores.lastOpen)") }
            opensSeen = stores.opens
        }
        return s
    }
}

/// A failed use of the database: logged when the problem changes (not every tick), and
/// the connection dropped if the file is damaged or gone.
var lastStorageProblem = ""
@MainActor func storageFailed(_ what: String, _ error: any Error) {
    storageErrors += 1
    stores.failed(error)
    let problem = "\(what): \(error)"
    if problem != lastStorageProblem { worker.log(problem + " (logged once until it changes)") }
    lastStorageProblem = problem
}

/// Waits (honouring stop) until db-watchdog has created the database.
@MainActor func waitForStore() -> Bool {
    var lastProblem = ""
    while !worker.isStopping {
        do {
            _ = try store
            return true
        } catch {
            let problem = "waiting for the database \(dbPath): \(error)"
            if problem != lastProblem { worker.log(problem); worker.status(problem) }
            lastProblem = problem
            worker.sleep(for: .milliseconds(500))
        }
    }
    return false
}

guard waitForStore() else {
    worker.log("stopping before the database was ready")
    exit(0)
}

var walks: [Instrument: RandomWalk] = [:]
do {
    let last = try store.lastPrices()
    for (offset, (instrument, seedPrice)) in try store.instruments().enumerated() {
        let start = last[instrument]?.price ?? seedPrice
        walks[instrument] = try RandomWalk(start: start, seed: seed &+ UInt64(offset) &* 0x9E37_79B9,
                                           maxStepBasisPoints: Int64(stepBps))
    }
} catch {
    worker.log("cannot load instruments: \(error)")
    exit(1)
}
let symbols = walks.keys.sorted()
worker.log("\(symbols.count) instruments: " + symbols.map { "\($0)@\(walks[$0]!.price)" }.joined(separator: " ") + ", seed \(seed)")

// MARK: - The socket

let listener: Int32
do {
    listener = try UnixSocket.listen(path: socketPath)
} catch {
    worker.log("cannot serve \(socketPath): \(error)")
    exit(1)
}

/// One connected client.
final class Client {
    let fd: Int32
    let number: Int
    var input = LineBuffer()
    var output: [UInt8] = []
    var subscribed = false
    init(fd: Int32, number: Int) { self.fd = fd; self.number = number }

    func send(_ message: LineMessage) {
        output.append(contentsOf: message.line.utf8)
        output.append(10)
    }
}

/// Output a client may have queued before it counts as stuck and is dropped.
let maximumBacklog = 1 << 20
var clients: [Int32: Client] = [:]
var connections = 0, orders = 0, fills = 0, replays = 0, rejects = 0, storageErrors = 0

@MainActor func drop(_ client: Client, _ why: String) {
    worker.log("client #\(client.number) \(why): disconnected")
    close(client.fd)
    clients[client.fd] = nil
}

@MainActor func handle(order: Order, from client: Client) {
    orders += 1
    let id = order.clientOrderID
    do {
        if let original = try store.fill(for: id) {
            if original.matches(order) {
                replays += 1
                worker.log("client #\(client.number): repeated client order id \(id): replaying fill \(original.fillID), no second fill")
                client.send(.fill(original))
            } else {
                rejects += 1
                worker.log("client #\(client.number): client order id \(id) reused for a different order: rejected")
                client.send(.reject(id, reason: "client_order_id_reused"))
            }
            return
        }
        if let reason = try store.rejection(for: id) {
            rejects += 1
            replays += 1
            client.send(.reject(id, reason: reason))
            return
        }
        if safeMode.load(ordering: .sequentiallyConsistent) {
            rejects += 1
            // Recorded, so this id is rejected for good (a copy still queued on an old
            // connection cannot fill it after safe mode ends).
            if let standing = try store.recordRejection(id, reason: "safe_mode") {
                if let f = standing.fill { client.send(.fill(f)) } else { client.send(.reject(id, reason: standing.reason ?? "safe_mode")) }
            } else {
                client.send(.reject(id, reason: "safe_mode"))
            }
            return
        }
        guard let walk = walks[order.instrument] else {
            rejects += 1
            client.send(.reject(id, reason: "unknown_instrument"))
            return
        }
        let fill = try store.record(order, filledAt: walk.price)
        fills += 1
        client.send(.fill(fill))
    } catch {
        rejects += 1
        storageFailed("cannot record order \(id), rejected", error)
        client.send(.reject(id, reason: "storage_error"))
    }
}

@MainActor func handle(line: String, from client: Client) {
    let message: LineMessage
    do {
        message = try LineMessage(parsing: line)
    } catch {
        client.send(.error(reason: error.code))
        return
    }
    switch message {
    case .subscribe:
        client.subscribed = true
        client.send(.subscribed(instruments: symbols.count))
        for i in symbols { client.send(.price(i, walks[i]!.price)) }  // a snapshot, then updates
    case .order(let order):
        handle(order: order, from: client)
    case .hello, .subscribed, .price, .fill, .reject, .error:
        client.send(.error(reason: "unexpected_message"))
    }
}

@MainActor func flush(_ client: Client) {
    guard !client.output.isEmpty else { return }
    do {
        let n = try UnixSocket.write(client.fd, client.output[...])
        client.output.removeFirst(n)
        if client.output.count > maximumBacklog { drop(client, "is not reading (\(client.output.count) bytes queued)") }
    } catch {
        drop(client, "write failed (\(error))")
    }
}

@MainActor func statusLine() -> String {
    "PAPER venue \(venue) on \(socketPath): \(clients.count) clients, \(orders) orders, \(fills) fills, \(replays) replays, \(rejects) rejects"
        + (safeMode.load(ordering: .relaxed) ? ", SAFE MODE (cancel-only)" : "")
        + (liquidations > 0 ? ", \(liquidations) liquidations" : "")
        + " | " + symbols.map { "\($0) \(walks[$0]!.price)" }.joined(separator: " ")
}

// MARK: - Recovery, safe mode, liquidation

var liquidations = 0

@MainActor func currentPrices() -> [Instrument: Price] { walks.mapValues(\.price) }

/// Settles orders recorded without an outcome: filled (or, in safe mode, cancelled).
@MainActor func settleOpenOrders(why: String) {
    let cancelling = safeMode.load(ordering: .sequentiallyConsistent)
    do {
        let (filled, rejected) = try store.settleOpenOrders(fill: !cancelling, prices: currentPrices(),
                                                            reason: cancelling ? "cancelled_safe_mode" : "no_price")
        fills += filled.count
        for f in filled { report("recovery", "\(why): open order \(f.clientOrderID) filled once: \(f.side) \(f.quantity) \(f.instrument) at \(f.price) (fill \(f.fillID))") }
        for id in rejected { report("recovery", "\(why): open order \(id) \(cancelling ? "cancelled (safe mode)" : "rejected (no price)")") }
        if filled.isEmpty && rejected.isEmpty { worker.log("\(why): no open orders") }
    } catch {
        storageFailed("\(why): cannot settle open orders", error)
    }
}

/// Runs (or resumes) a liquidation to the end: one transaction per flattening order.
@MainActor func liquidate(reason: String) {
    do {
        let (id, resumed) = try store.beginLiquidation(reason: reason)
        liquidations += 1
        report("liquidation", "liquidation \(id) \(resumed ? "resumed" : "started"): \(reason); net positions " + describe(try store.netPositions()))
        var steps = 0
        while steps < 1000, let f = try store.liquidationStep(id, prices: currentPrices()) {
            steps += 1
            fills += 1
            report("liquidation", "liquidation \(id) step \(f.clientOrderID): \(f.side) \(f.quantity) \(f.instrument) at \(f.price) (fill \(f.fillID))")
        }
        // Flat means every strategy's own book, not just the venue's total.
        let remaining = try store.netPositions()
        if try store.netPositionsByOwner().isEmpty {
            try store.finishLiquidation(id)
            report("liquidation", "liquidation \(id) finished after \(steps) orders: flat positions " + symbols.map { "\($0) 0" }.joined(separator: " "))
            report(Notice.liquidationDone, "liquidation \(id): every book flat")
        } else {
            report("liquidation", "liquidation \(id) NOT finished: still open " + describe(remaining) + "; resumed on the next order or restart")
        }
    } catch {
        storageFailed("liquidation", error)
        report("liquidation", "liquidation failed: \(error); resumed on restart")
    }
}

func describe(_ nets: [Instrument: Quantity]) -> String {
    nets.isEmpty ? "all flat" : nets.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: " ")
}

settleOpenOrders(why: "recovery")
do {
    if let open = try store.openLiquidation() {
        worker.log("the previous incarnation left liquidation \(open.id) unfinished: resuming it before READY")
        liquidate(reason: open.reason)
    }
} catch {
    worker.log("cannot read liquidation state: \(error)")
}

worker.ready()
worker.log("listening on \(socketPath): READY")

let tickNs = tick.wholeNanoseconds
var nextTick = vigil_monotonic_ns() + tickNs
var nextStatus = vigil_monotonic_ns()
var journalFailuresSeen = 0

while !worker.isStopping {
    let ready = worker.poll(fds: [listener] + Array(clients.keys), timeout: .nanoseconds(max(0, nextTick - vigil_monotonic_ns())))
    for fd in ready {
        if fd == listener {
            while let c = UnixSocket.accept(listener) {
                connections += 1
                let client = Client(fd: c, number: connections)
                clients[c] = client
                client.send(.hello(venue: venue))
                worker.log("client #\(client.number) connected")
            }
            continue
        }
        guard let client = clients[fd] else { continue }
        do {
            guard let bytes = try UnixSocket.read(fd) else { continue }
            if bytes.isEmpty { drop(client, "closed the connection"); continue }
            for line in client.input.append(bytes) { handle(line: line, from: client) }
            if client.input.overflowed {
                client.send(.error(reason: "line_too_long"))
                flush(client)
                drop(client, "sent a line over \(LineMessage.maximumLength) bytes")
            }
        } catch {
            drop(client, "read failed (\(error))")
        }
    }
    if cancelOpenOrders.exchange(false, ordering: .sequentiallyConsistent) { settleOpenOrders(why: "safe mode") }
    if liquidationRequested.exchange(false, ordering: .sequentiallyConsistent) { liquidate(reason: "ordered by vigil") }
    let now = vigil_monotonic_ns()
    if now >= nextTick {
        var moved: [(Instrument, Price)] = []
        for i in symbols { moved.append((i, walks[i]!.step())) }
        do { try store.storePrices(moved, at: vigil_realtime_ns()) } catch { storageFailed("cannot store prices", error) }
        for client in clients.values where client.subscribed {
            for (i, p) in moved { client.send(.price(i, p)) }
        }
        nextTick += tickNs
        if nextTick <= now { nextTick = now + tickNs }
    }
    for client in Array(clients.values) { flush(client) }
    if now >= nextStatus {
        if let s = try? store, s.journalFailures > journalFailuresSeen {
            journalFailuresSeen = s.journalFailures
            report("journal", "FILL JOURNAL append failed (\(s.journalFailures) since the database was opened): \(s.lastJournalError.map { "\($0)" } ?? "?"); the fills stand in the database")
        }
        worker.status(statusLine())
        nextStatus = now + 1_000_000_000
    }
}

worker.stopping()
for client in clients.values { flush(client); close(client.fd) }
close(listener)
unlink(socketPath)
stores.close()
worker.log("stopping on signal \(worker.stopSignal ?? 0): \(clients.count) clients closed, socket removed; \(orders) orders, \(fills) fills, \(replays) replays")
