// strategy-runner: trades a moving-average crossover against the exchange gateway.
//
// Connects to the gateway's Unix socket (retrying with backoff, 50 ms doubling to 250 ms,
// until it is there), subscribes to prices and runs one MA crossover per instrument: a
// short average crossing above the long one buys `--qty`, crossing below sells it, within
// `--max-position` lots either way. Every order has a unique client order id,
// `<VIGIL_NAME>.<incarnation>.<session>.<sequence>` (session: the start time in ms, base
// 36, so ids stay unique even if vigil's incarnation counter starts over). READY once
// connected and subscribed. If the gateway goes away the runner stays alive, says
// "disconnected" in its status and reconnects by itself; orders that were sent but not
// answered are re-sent with the same client order id, which the gateway answers with the
// original fill if it had already filled them (never a second fill).
//
// Continuity across kill -9 (issue 3): the runner checkpoints its book (positions with
// average price and realised P&L per instrument, the sequence counter, the orders in
// flight) and its moving-average windows through vigil, `Trading.RunnerCheckpoint`
// (version 1, CRC-checked). A checkpoint is sent *before* an order is written to the
// gateway, after every fill or reject, every 2 s while prices move, on vigil's checkpoint
// request, and on SIGTERM. A fill changes the positions only while its client order id is
// in flight, and takes it out of flight: applying a fill is idempotent by client order id.
// On start the last checkpoint is restored (strictly decoded: a bad one is logged and
// ignored), then reconciled before READY: every order in flight is re-sent with its
// client order id (the gateway answers with the original fill or rejection, or fills it
// once) and applied exactly once; then the positions are compared with this runner's
// fills in the database (client order ids starting with `<VIGIL_NAME>.`), which win if
// they differ. No new order is sent until then, nor while vigil's `safe_mode` notice is
// `on`, nor once vigil asked for its handoff checkpoint (`vigil restart --handoff`: the
// replacement continues from that checkpoint). On SIGTERM it waits up to 1 s for orders
// in flight and logs one line `FINAL <name> positions=<SYM:qty,...> inflight=<ids>
// realised=<pnl>` (also reported to vigil's journal, key `positions`).
//
// Flags:
//   --socket PATH          the gateway socket (default $VIGIL_RUNTIME_DIR/gateway.sock,
//                          else ./gateway.sock)
//   --short N              short moving-average window in ticks (default 5)
//   --long N               long moving-average window in ticks (default 20)
//   --qty N                lots per order (default 1)
//   --max-position N       largest absolute position per instrument in lots (default 5)
//   --instruments A,B,...  only trade these symbols (default: all the gateway publishes)
//   --db PATH              the trading database, to reconcile positions with this runner's
//                          fills (default $VIGIL_STATE_DIR/trading.db, else ./trading.db)
//
// Exit: 0 on SIGTERM/SIGINT, 2 on a bad flag, 70 when the channel to vigil closes.
import CShim
@preconcurrency import Glibc
import Synchronization
import Trading
import TradingStore
import VigilWorker

var flags = Flags(usage: """
    usage: strategy-runner [--socket PATH] [--short N] [--long N] [--qty N] [--max-position N] [--instruments A,B,...] [--db PATH]
    """)
let socketFlag = flags.string("--socket")
let dbFlag = flags.string("--db")
let shortWindow = flags.int("--short", default: 5, range: 1...10_000)
let longWindow = flags.int("--long", default: 20, range: 2...100_000)
let quantity = Int64(flags.int("--qty", default: 1, range: 1...1_000_000))
let maxPosition = Int64(flags.int("--max-position", default: 5, range: 1...1_000_000_000))
let only: Set<Instrument>? = flags.value("--instruments", expected: "comma-separated symbols like BTC-USD,ETH-USD") { s in
    let parts = s.split(separator: ",", omittingEmptySubsequences: false)
    let instruments = parts.compactMap { try? Instrument(String($0)) }
    return instruments.count == parts.count ? Set(instruments) : nil
}
if shortWindow >= longWindow { flags.fail("--short (\(shortWindow)) must be less than --long (\(longWindow))") }
flags.finish()
let worker = Worker.connect()
let dbPath = dbFlag ?? TradingStore.defaultPath(stateDirectory: worker.stateDirectory)
let socketPath = socketFlag
    ?? (worker.runtimeDirectory.map { $0.hasSuffix("/") ? "\($0)gateway.sock" : "\($0)/gateway.sock" } ?? "./gateway.sock")

// MARK: - Client order ids

/// This runner's name as it appears in client order ids; its fills in the database are
/// those whose id starts with `"\(idName)."`.
let idName: String = {
    let allowed = Set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._:-")
    return String(worker.name.prefix(32).map { allowed.contains($0) ? $0 : "_" })
}()
let idPrefix: String = {
    let session = String(vigil_realtime_ns() / 1_000_000, radix: 36)
    return "\(idName).\(worker.incarnation).\(session)"
}()

@MainActor func nextClientOrderID() -> ClientOrderID {
    try! ClientOrderID("\(idPrefix).\(book.nextSequence())")  // every part is from the allowed set
}

// MARK: - Trading state (survives reconnects, and through checkpoints, restarts)

var strategies: [Instrument: MovingAverageCrossover] = [:]
/// Positions and orders in flight (sent, not answered, in send order: re-sent after a reconnect).
var book = RunnerBook()
var sent = 0, filled = 0, rejected = 0, replayed = 0, signals = 0, skipped = 0, held = 0
var venue = "?"
/// True once the restored orders in flight are answered and the positions agree with the
/// database: until then no new order is sent and READY is not reported.
var reconciled = false
let safeMode = Atomic<Bool>(false)
/// The latest encoded checkpoint, for vigil's checkpoint requests (on the channel thread).
let latestCheckpoint = Mutex<[UInt8]>([])
var lastCheckpointNs: Int64 = 0
var indicatorsMoved = false

@MainActor func encodedState() -> [UInt8] {
    RunnerCheckpoint(book: book, indicators: strategies.mapValues(IndicatorState.init)).encoded()
}

/// Sends a checkpoint of the whole state to vigil. False if it could not be sent.
@discardableResult
@MainActor func saveCheckpoint() -> Bool {
    let bytes = encodedState()
    latestCheckpoint.withLock { $0 = bytes }
    lastCheckpointNs = vigil_monotonic_ns()
    return sendCheckpoint(bytes)
}

// MARK: - Restore

if let bytes = restoredState() {
    do {
        let c = try RunnerCheckpoint(decoding: bytes)
        book = c.book
        for (i, s) in c.indicators {
            if s.shortWindow == shortWindow && s.longWindow == longWindow, let m = s.indicator {
                strategies[i] = m
            } else {
                worker.log("checkpoint has \(i) windows \(s.shortWindow)/\(s.longWindow), flags say \(shortWindow)/\(longWindow): starting that indicator afresh")
            }
        }
        worker.log("restored checkpoint (\(bytes.count) bytes): " + describePositions() + ", sequence \(book.sequence), \(book.inFlight.count) orders in flight, realised P&L \(book.portfolio.realisedPnL)")
    } catch {
        worker.log("ignoring a bad checkpoint (\(bytes.count) bytes): \(error); starting from the database")
    }
} else {
    worker.log("no checkpoint: starting from the database")
}
latestCheckpoint.withLock { $0 = encodedState() }
/// Set once vigil asked for the handoff checkpoint: the replacement continues from it, so
/// this instance sends no new order (with `handoff: overlap` it keeps running until the
/// replacement is READY; what it has in flight the replacement re-sends by id).
let handingOver = Atomic<Bool>(false)
onCheckpointRequest {
    handingOver.store(true, ordering: .sequentiallyConsistent)
    return latestCheckpoint.withLock { $0 }
}
/// Set when safe mode ends: a liquidation may have flattened this runner's book in the
/// database meanwhile, so the main loop compares with it before trading again.
let reconcileAfterSafeMode = Atomic<Bool>(false)
listenForNotices { key, value in
    guard key == Notice.safeMode else { return }
    let on = value == "on"
    if safeMode.exchange(on, ordering: .sequentiallyConsistent) != on {
        worker.log(on ? "safe mode ON: sending no new orders" : "safe mode OFF: checking positions against the database, then trading again")
        if !on { reconcileAfterSafeMode.store(true, ordering: .sequentiallyConsistent) }
    }
}

@MainActor func describePositions() -> String {
    let open = book.portfolio.positions.keys.sorted().map { "\($0) \(book.portfolio.positions[$0]!.netQuantity)" }
    return open.isEmpty ? "no positions" : open.joined(separator: " ")
}

/// Compares the positions with this runner's fills in the database and takes the
/// database's if they differ. Called with nothing in flight, so the fills are final.
@MainActor func reconcileWithDatabase() {
    do {
        let store = try TradingStore(path: dbPath, create: false)
        defer { store.close() }
        let fills = try store.fills(clientOrderIDPrefix: "\(idName).")
        let fromFills = Portfolio(fills: fills)
        if fromFills == book.portfolio {
            worker.log("positions agree with the \(fills.count) fills of \(idName) in the database: " + describePositions())
        } else {
            let before = describePositions()
            book.replacePortfolio(fromFills)
            report("reconcile", "\(worker.name): positions (\(before)) differed from its \(fills.count) fills in the database; now " + describePositions())
        }
    } catch {
        worker.log("cannot compare positions with the database \(dbPath): \(error); keeping the checkpoint's")
    }
}

/// Reconciled: in-flight orders answered, positions checked. Checkpoint, then READY.
@MainActor func finishReconciling() {
    reconciled = true
    reconcileWithDatabase()
    saveCheckpoint()
    if !announcedReady {
        announcedReady = true
        worker.ready()
        worker.log("reconciled: " + describePositions() + ", realised P&L \(book.portfolio.realisedPnL): READY")
    }
}

// MARK: - Connection

var fd: Int32 = -1
var input = LineBuffer()
var output: [UInt8] = []
var subscribed = false
var announcedReady = false
var backoff: Duration = .milliseconds(50)
var lastConnectError = ""
var disconnects = 0

@MainActor func send(_ message: LineMessage) {
    output.append(contentsOf: message.line.utf8)
    output.append(10)
}

@MainActor func disconnect(_ why: String) {
    if fd >= 0 { close(fd) }
    fd = -1
    subscribed = false
    input = LineBuffer()
    output.removeAll()
    disconnects += 1
    worker.log("gateway connection lost (\(why)); \(book.inFlight.count) orders unanswered, reconnecting")
    worker.status("disconnected from \(socketPath): \(why); reconnecting")
}

@MainActor func handle(_ line: String) {
    let message: LineMessage
    do { message = try LineMessage(parsing: line) } catch {
        worker.log("gateway sent an unparseable line (\(error)): \(line.prefix(80))")
        disconnect("protocol violation")
        return
    }
    switch message {
    case .hello(let v):
        venue = v
        worker.log("connected to PAPER venue \(v) at \(socketPath)")
    case .subscribed(let n):
        subscribed = true
        backoff = .milliseconds(50)
        worker.log("subscribed to \(n) instruments" + (book.inFlight.isEmpty ? "" : "; re-sending \(book.inFlight.count) unanswered orders with their client order ids"))
        for order in book.inFlight { send(.order(order)) }
        if !reconciled && book.inFlight.isEmpty { finishReconciling() }
    case .price(let i, let p):
        if let only, !only.contains(i) { return }
        if strategies[i] == nil { strategies[i] = try! MovingAverageCrossover(shortWindow: shortWindow, longWindow: longWindow) }
        indicatorsMoved = true
        guard let signal = strategies[i]!.update(p) else { return }
        signals += 1
        guard reconciled, !safeMode.load(ordering: .sequentiallyConsistent),
              !reconcileAfterSafeMode.load(ordering: .sequentiallyConsistent),
              !handingOver.load(ordering: .sequentiallyConsistent),
              // No vigil holds the write-ahead checkpoint while one is being waited for.
              worker.isSupervised || worker.isStandalone else { held += 1; return }
        let after = book.netIncludingInFlight(i) + signal.side.sign * quantity
        guard abs(after) <= maxPosition else { skipped += 1; return }
        let order = try! Order(clientOrderID: nextClientOrderID(), instrument: i, side: signal.side, quantity: quantity)
        book.send(order)
        // Write-ahead: the order is in a checkpoint before the gateway can see it.
        guard saveCheckpoint() || worker.isStandalone else {
            book.abandon(order.clientOrderID)
            worker.log("cannot checkpoint order \(order.clientOrderID): not sending it")
            return
        }
        sent += 1
        send(.order(order))
    case .fill(let fill):
        switch book.apply(fill) {
        case .applied:
            filled += 1
            saveCheckpoint()
            if !reconciled && book.inFlight.isEmpty { finishReconciling() }
        case .notInFlight:
            if fill.clientOrderID.rawValue.hasPrefix("\(idName).") { replayed += 1 } else { worker.log("fill for an order this runner did not send: \(line)") }
        case .mismatch(let expected):
            worker.log("fill \(fill.fillID) does not match order \(expected.clientOrderID) (\(expected.side) \(expected.quantity) \(expected.instrument)): ignored")
        }
    case .reject(let id, let reason):
        if book.reject(id) {
            rejected += 1
            saveCheckpoint()
            if !reconciled && book.inFlight.isEmpty { finishReconciling() }
        }
        worker.log("order \(id) rejected: \(reason)")
    case .error(let reason):
        worker.log("gateway did not understand a line: \(reason)")
    case .subscribe, .order:
        worker.log("gateway sent a client message: \(line.prefix(80))")
    }
}

@MainActor func statusLine() -> String {
    let state: String
    if fd < 0 || !subscribed {
        state = "disconnected (\(lastConnectError.isEmpty ? "reconnecting" : lastConnectError))"
    } else if !reconciled {
        state = "reconciling"
    } else {
        state = "PAPER \(venue)" + (safeMode.load(ordering: .relaxed) ? " SAFE MODE" : "")
    }
    // What a restart must not change comes first, so `vigil status` shows it uncut.
    return "\(describePositions()), P&L \(book.portfolio.realisedPnL) | \(state): \(book.inFlight.count) in flight; this run \(sent) orders, \(filled) fills, \(rejected) rejects"
}

var nextStatus: Int64 = 0
worker.status("connecting to \(socketPath)")

while !worker.isStopping {
    if fd < 0 {
        do {
            fd = try UnixSocket.connect(path: socketPath)
            lastConnectError = ""
            send(.subscribe)
        } catch {
            let problem = "\(error)"
            if problem != lastConnectError { worker.log("gateway not available (\(problem)); retrying with backoff") }
            lastConnectError = problem
            worker.status("disconnected from \(socketPath): \(problem); retrying")
            worker.sleep(for: backoff)
            backoff = min(backoff * 2, .milliseconds(250))
            continue
        }
    }
    if !output.isEmpty {
        do { output.removeFirst(try UnixSocket.write(fd, output[...])) } catch { disconnect("\(error)"); continue }
    }
    if !worker.poll(fds: [fd], timeout: .milliseconds(output.isEmpty ? 500 : 10)).isEmpty {
        do {
            if let bytes = try UnixSocket.read(fd) {
                if bytes.isEmpty { disconnect("gateway closed the connection"); continue }
                for line in input.append(bytes) where fd >= 0 { handle(line) }
                if input.overflowed { disconnect("gateway sent an over-long line") }
            }
        } catch {
            disconnect("\(error)")
        }
    }
    if reconciled, book.inFlight.isEmpty, reconcileAfterSafeMode.exchange(false, ordering: .sequentiallyConsistent) {
        reconcileWithDatabase()
        saveCheckpoint()
    }
    let now = vigil_monotonic_ns()
    if indicatorsMoved && now - lastCheckpointNs >= 2_000_000_000 {
        indicatorsMoved = false
        saveCheckpoint()
    }
    if now >= nextStatus {
        worker.status(statusLine())
        nextStatus = now + 1_000_000_000
    }
}

worker.stopping()
// Give orders in flight up to 1 s to be answered (the stop signal cuts worker.poll short,
// so this polls the socket directly).
let drainDeadline = vigil_monotonic_ns() + 1_000_000_000
while fd >= 0, !book.inFlight.isEmpty, vigil_monotonic_ns() < drainDeadline {
    if !output.isEmpty {
        do { output.removeFirst(try UnixSocket.write(fd, output[...])) } catch { disconnect("\(error)"); break }
    }
    var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
    guard Glibc.poll(&p, 1, 50) > 0 else { continue }
    do {
        guard let bytes = try UnixSocket.read(fd) else { continue }
        if bytes.isEmpty { disconnect("gateway closed the connection"); break }
        for line in input.append(bytes) where fd >= 0 { handle(line) }
    } catch {
        disconnect("\(error)")
    }
}
if fd >= 0 { close(fd) }
saveCheckpoint()
let finalPositions = book.portfolio.positions.keys.sorted().map { "\($0):\(book.portfolio.positions[$0]!.netQuantity)" }.joined(separator: ",")
let finalLine = "FINAL \(worker.name) positions=\(finalPositions) inflight=\(book.inFlight.map(\.clientOrderID.rawValue).joined(separator: ",")) realised=\(book.portfolio.realisedPnL)"
report("positions", finalLine)
worker.log("stopping on signal \(worker.stopSignal ?? 0): \(sent) orders, \(filled) fills, \(book.inFlight.count) unanswered, realised P&L \(book.portfolio.realisedPnL)")
