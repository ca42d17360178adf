// risk-guardian: watches positions and exposure across every strategy.
//
// Tracks positions by applying every fill in the trading database in row-id order (only
// new rows each interval), marks them at the gateway's last prices (the last fill price
// when an instrument has none) and compares exposure, |net qty| * price, per instrument
// and in total with the limits. A breach is logged once when it starts ("RISK LIMIT
// BREACHED") and once when it clears; the status line always shows the exposure. READY
// after the first complete read. (First version: it observes and reports. Answering vigil's
// restart vetoes as the tree's guardian comes with that protocol.)
//
// Flags:
//   --db PATH                          the database (default $VIGIL_STATE_DIR/trading.db,
//                                      else ./trading.db)
//   --interval DURATION                how often to read new fills (default 1s)
//   --max-exposure AMOUNT              total exposure limit in quote currency, e.g. 250000
//                                      or 1234.56 (default 1000000)
//   --max-instrument-exposure AMOUNT   per-instrument exposure limit (default: none)
//
// Exit: 0 on SIGTERM/SIGINT, 2 on a bad flag, 70 when the channel to vigil closes.
import CShim
@preconcurrency import Glibc
import Trading
import TradingStore
import VigilWorker

var flags = Flags(usage: """
    usage: risk-guardian [--db PATH] [--interval DURATION] [--max-exposure AMOUNT] [--max-instrument-exposure AMOUNT]
    """)
let dbFlag = flags.string("--db")
let interval = flags.duration("--interval", default: .seconds(1))
let amount = "a positive amount like 250000 or 1234.56 (at most 6 decimals)"
let maxTotal = flags.value("--max-exposure", expected: amount) { Price(parsing: $0).flatMap { $0.micros > 0 ? $0 : nil } }
    ?? Price(units: 1_000_000)
let maxInstrument = flags.value("--max-instrument-exposure", expected: amount) { Price(parsing: $0).flatMap { $0.micros > 0 ? $0 : nil } }
flags.finish()
let worker = Worker.connect()
let path = dbFlag ?? TradingStore.defaultPath(stateDirectory: worker.stateDirectory)
let limits = ExposureLimits(total: maxTotal, perInstrument: maxInstrument)

var store: TradingStore?
var portfolio = Portfolio()
var lastRowID: Int64 = 0
var fillsRead = 0
var activeBreaches: Set<ExposureLimits.Breach.Key> = []
var announcedReady = false
var lastProblem = ""

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

/// Reads every new fill and the last prices. Returns nil on success, else the problem.
@MainActor func read() -> (ExposureReport, [ExposureLimits.Breach])? {
    do {
        if store == nil {
            let s = try TradingStore(path: path, create: false)
            guard try s.hasSchema() else { s.close(); throw DatabaseError(code: -1, message: "no schema yet") }
            store = s
        }
        while true {
            let batch = try store!.fills(after: lastRowID)
            for f in batch.fills { portfolio.apply(f) }
            for id in batch.invalid { worker.log("skipping fill row \(id): not a valid fill") }
            let last = max(batch.fills.last?.fillID ?? 0, batch.invalid.max() ?? 0)
            fillsRead += batch.fills.count
            if last == 0 { break }
            lastRowID = max(lastRowID, last)
        }
        let marks = try store!.lastPrices().mapValues(\.price)
        let report = portfolio.exposure(marks: marks)
        lastProblem = ""
        return (report, limits.breaches(in: report))
    } catch {
        let problem = "cannot read \(path): \(error)"
        if problem != lastProblem { worker.log(problem) }
        lastProblem = problem
        worker.status((announcedReady ? "STALE: " : "waiting: ") + problem)
        store?.close()
        store = nil
        return nil
    }
}

worker.log("limits: total exposure \(maxTotal)" + (maxInstrument.map { ", per instrument \($0)" } ?? ", no per-instrument limit"))

while !worker.isStopping {
    if let (report, breaches) = read() {
        if !announcedReady {
            announcedReady = true
            worker.ready()
            worker.log("first read: \(fillsRead) fills, \(portfolio.positions.count) instruments: READY")
        }
        let keys = Set(breaches.map(\.key))
        for b in breaches where !activeBreaches.contains(b.key) { worker.log("RISK LIMIT BREACHED: \(b)") }
        for k in activeBreaches.subtracting(keys) { worker.log("risk limit back within bounds: \(k)") }
        activeBreaches = keys
        let unpriced = report.unpriced.isEmpty ? "" : " | NO PRICE: " + report.unpriced.map(\.symbol).joined(separator: " ")
        let per = report.perInstrument.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: " ")
        worker.status((breaches.isEmpty ? "ok" : "BREACH (\(breaches.count))")
            + ": exposure \(report.total) of \(maxTotal)" + (per.isEmpty ? "" : " | " + per)
            + unpriced + " | \(fillsRead) fills, realised P&L \(portfolio.realisedPnL)")
    }
    if !worker.sleep(for: interval) { break }
}

worker.stopping()
store?.close()
worker.log("stopping on signal \(worker.stopSignal ?? 0) after \(fillsRead) fills")
