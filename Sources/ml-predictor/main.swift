// ml-predictor: a first, honest failure predictor. No neural network: per supervised
// worker it keeps rolling baselines (exponentially weighted mean and variance,
// `Trading.RollingBaseline`) of three signals from vigil's `.sample` frames, resident
// memory (RSS), CPU share (cpu time / interval) and restarts per sample interval, and logs
// an ANOMALY line when a sample's z-score against its worker's baseline exceeds the
// threshold after a warm-up. A baseline is per worker name, so it survives the worker's
// restarts. READY at once (it needs nothing but vigil's samples).
//
// Flags:
//   --threshold Z    |z-score| above which a sample is an anomaly (default 4)
//   --warmup N       samples per worker before scoring starts, 2...10000 (default 10)
//   --alpha A        weight of each new sample in the baselines, 0.001...1 (default 0.1)
//
// Exit: 0 on SIGTERM/SIGINT, 2 on a bad flag, 70 when the channel to vigil closes.
import Synchronization
import Trading
import VigilWorker

var flags = Flags(usage: "usage: ml-predictor [--threshold Z] [--warmup N] [--alpha A]")
let threshold = flags.double("--threshold", default: 4, range: 0.1...1_000)
let warmUp = flags.int("--warmup", default: 10, range: 2...10_000)
let alpha = flags.double("--alpha", default: 0.1, range: 0.001...1)
flags.finish()
let worker = Worker.connect()

/// The three signals of one worker.
struct WorkerModel: Sendable {
    var rss: RollingBaseline
    var cpu: RollingBaseline
    var restarts: RollingBaseline
    var lastRestarts: UInt32?
    var samples = 0

    init() {
        // Floors keep a flat history from turning noise into huge scores: RSS within
        // max(256 KiB, 2%), CPU share within 2% of a core, restarts within 0.2 per interval
        // (so a single restart of a worker that never restarts scores 5).
        rss = try! RollingBaseline(alpha: alpha, warmUp: warmUp, absoluteFloor: 256, relativeFloor: 0.02)
        cpu = try! RollingBaseline(alpha: alpha, warmUp: warmUp, absoluteFloor: 0.02)
        restarts = try! RollingBaseline(alpha: alpha, warmUp: warmUp, absoluteFloor: 0.2)
    }
}

/// Shared between the channel thread (samples) and the main thread (status).
final class Predictor: Sendable {
    struct State {
        var models: [String: WorkerModel] = [:]
        var samples = 0
        var anomalies = 0
        var lastAnomaly = ""
    }
    let state = Mutex(State())

    /// Scores and folds in one sample; returns the anomaly lines it produced.
    func observe(_ s: WorkerSample) -> [String] {
        state.withLock { st in
            st.samples += 1
            var m = st.models[s.worker] ?? WorkerModel()
            m.samples += 1
            let share = s.intervalMicros == 0 ? Double.nan : Double(s.cpuMicros) / Double(s.intervalMicros)
            let restartDelta = m.lastRestarts.map { s.restarts >= $0 ? Double(s.restarts - $0) : 0 } ?? 0
            m.lastRestarts = s.restarts
            var lines: [String] = []
            func check(_ metric: String, _ value: Double, _ b: inout RollingBaseline, _ unit: String) {
                let mean = b.mean, sd = b.deviation
                if let z = b.scoreAndObserve(value), abs(z) > threshold {
                    lines.append("ANOMALY worker=\(s.worker) pid=\(s.pid) metric=\(metric) value=\(fmt(value))\(unit) baseline=\(fmt(mean))±\(fmt(sd))\(unit) z=\(fmt(z)) (threshold \(fmt(threshold)))")
                }
            }
            check("rss", Double(s.rssKiB), &m.rss, "KiB")
            check("cpu_share", share, &m.cpu, "")
            check("restarts_per_interval", restartDelta, &m.restarts, "")
            st.models[s.worker] = m
            st.anomalies += lines.count
            if let last = lines.last { st.lastAnomaly = last }
            return lines
        }
    }
}

/// A short decimal rendering without Foundation: 3 significant decimals.
func fmt(_ x: Double) -> String {
    guard x.isFinite else { return "\(x)" }
    let scaled = (x * 1000).rounded()
    guard abs(scaled) < 9e15 else { return "\(x)" }
    let n = Int64(scaled), whole = n / 1000, frac = abs(n % 1000)
    let sign = n < 0 && whole == 0 ? "-" : ""
    let f = String(frac)
    return "\(sign)\(whole).\(String(repeating: "0", count: 3 - f.count))\(f)"
}

let predictor = Predictor()
worker.onMessage { frame in
    switch frame {
    case .sample(let s):
        for line in predictor.observe(s) { worker.log(line) }
    case .notice(let key, let value):
        worker.log("notice \(key)=\(value)")
    default:
        break
    }
}
worker.ready()
worker.log("READY: threshold |z| > \(fmt(threshold)), warm-up \(warmUp) samples, alpha \(fmt(alpha))")

while worker.sleep(for: .seconds(1)) {
    let line = predictor.state.withLock { st in
        "\(st.models.count) workers, \(st.samples) samples, \(st.anomalies) anomalies"
            + (st.lastAnomaly.isEmpty ? "" : "; last: " + st.lastAnomaly)
    }
    worker.status(line)
}

worker.stopping()
worker.log("stopping on signal \(worker.stopSignal ?? 0)")
