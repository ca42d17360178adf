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
// Flags:
//   --socket PATH          the gateway socket (default $VIGIL_RUNTIME_DIR/gateway.sock,
//                          else ./gateway.sock)
//   --short N              short moving-average window in ticks (default 5)
//   --long N               long moving-average window in ticks (default 20)
//   --qty N                lots per order (default 1)
//   --max-position N       largest absolute position per instrument in lots (default 5)
//   --instruments A,B,...  only trade these symbols (default: all the gateway publishes)
//
// Exit: 0 on SIGTERM/SIGINT, 2 on a bad flag, 70 when the channel to vigil closes.
import CShim
@preconcurrency import Glibc
import Trading
import VigilWorker

var flags = Flags(usage: """
    usage: strategy-runner [--socket PATH] [--short N] [--long N] [--qty N] [--max-position N] [--instruments A,B,...]
    """)
let socketFlag = flags.string("--socket")
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
let socketPath = socketFlag
    ?? (worker.runtimeDirectory.map { $0.hasSuffix("/") ? "\($0)gateway.sock" : "\($0)/gateway.sock" } ?? "./gateway.sock")

// MARK: - Client order ids

let idPrefix: String = {
    let allowed = Set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._:-")
    let name = String(worker.name.prefix(32).map { allowed.contains($0) ? $0 : "_" })
    let session = String(vigil_realtime_ns() / 1_000_000, radix: 36)
    return "\(name).\(worker.incarnation).\(session)"
}()
var sequence = 0

@MainActor func nextClientOrderID() -> ClientOrderID {
    sequence += 1
    return try! ClientOrderID("\(idPrefix).\(sequence)")  // every part is from the allowed set
}

// MARK: - Trading state (survives reconnects)

var strategies: [Instrument: MovingAverageCrossover] = [:]
var portfolio = Portfolio()
/// Sent, not yet answered, in send order: re-sent after a reconnect.
var pending: [(ClientOrderID, Order)] = []
var answered: Set<ClientOrderID> = []
var sent = 0, filled = 0, rejected = 0, replayed = 0, signals = 0, skipped = 0
var venue = "?"

/// Signed quantity including orders still in flight, so a burst of signals cannot
/// overshoot the position limit.
@MainActor func exposureAfterPending(_ i: Instrument) -> Int64 {
    let open = portfolio.positions[i]?.netQuantity ?? 0
    return pending.reduce(open) { $1.1.instrument == i ? $0 + $1.1.side.sign * $1.1.quantity : $0 }
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
    worker.log("gateway connection lost (\(why)); \(pending.count) orders unanswered, reconnecting")
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
        worker.log("subscribed to \(n) instruments" + (pending.isEmpty ? "" : "; re-sending \(pending.count) unanswered orders"))
        for (_, order) in pending { send(.order(order)) }
        if !announcedReady {
            announcedReady = true
            worker.ready()
            worker.log("READY")
        }
    case .price(let i, let p):
        if let only, !only.contains(i) { return }
        if strategies[i] == nil { strategies[i] = try! MovingAverageCrossover(shortWindow: shortWindow, longWindow: longWindow) }
        guard let signal = strategies[i]!.update(p) else { return }
        signals += 1
        let after = exposureAfterPending(i) + signal.side.sign * quantity
        guard abs(after) <= maxPosition else { skipped += 1; return }
        let order = try! Order(clientOrderID: nextClientOrderID(), instrument: i, side: signal.side, quantity: quantity)
        pending.append((order.clientOrderID, order))
        sent += 1
        send(.order(order))
    case .fill(let fill):
        guard let index = pending.firstIndex(where: { $0.0 == fill.clientOrderID }) else {
            if answered.contains(fill.clientOrderID) { replayed += 1 } else { worker.log("fill for an order this runner did not send: \(line)") }
            return
        }
        pending.remove(at: index)
        answered.insert(fill.clientOrderID)
        portfolio.apply(fill)
        filled += 1
    case .reject(let id, let reason):
        if let index = pending.firstIndex(where: { $0.0 == id }) { pending.remove(at: index) }
        answered.insert(id)
        rejected += 1
        worker.log("order \(id) rejected: \(reason)")
    case .error(let reason):
        worker.log("gateway did not understand a line: \(reason)")
    case .subscribe, .order:
        worker.log("gateway sent a client message: \(line.prefix(80))")
    }
}

@MainActor func statusLine() -> String {
    guard fd >= 0, subscribed else { return "disconnected from \(socketPath): \(lastConnectError); reconnecting" }
    let positions = portfolio.positions.keys.sorted().map { "\($0) \(portfolio.positions[$0]!.netQuantity)" }.joined(separator: " ")
    return "connected to PAPER venue \(venue): \(sent) orders, \(filled) fills, \(rejected) rejects, \(pending.count) pending, realised P&L \(portfolio.realisedPnL)"
        + (positions.isEmpty ? "" : " | " + positions)
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
    let now = vigil_monotonic_ns()
    if now >= nextStatus {
        worker.status(statusLine())
        nextStatus = now + 1_000_000_000
    }
}

worker.stopping()
if fd >= 0 {
    if !output.isEmpty { _ = try? UnixSocket.write(fd, output[...]) }
    close(fd)
}
worker.log("stopping on signal \(worker.stopSignal ?? 0): \(sent) orders, \(filled) fills, \(pending.count) unanswered, realised P&L \(portfolio.realisedPnL)")
