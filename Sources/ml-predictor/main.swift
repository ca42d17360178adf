// ml-predictor: an online failure predictor. No neural network: per supervised worker it
// runs the models of `Trading.FailureForecaster` over vigil's `.sample` frames (RSS, CPU
// share, heartbeat jitter, restarts, memory limit):
// - EWMA baselines with z-scores, for sudden anomalies (logged, and reported to vigil's
//   journal as `anomaly` reports);
// - a Theil-Sen trend on RSS, gated on the worker's own noise, to detect a leak and
//   forecast when its `memory_limit` is reached: within the horizon, it advises vigil to
//   `restart` it (a planned handoff with its state, before the failure);
// - the restart rate: a steady crash loop's next failure is forecast and advised as
//   `watch` (journaled and checked; a restart would not cure it).
// Every forecast is journaled by vigil and settled there (confirmed, refuted, missed), so
// `Scripts/prediction-report.py` computes precision and recall from the journal.
// Baselines are per worker name, so they survive the worker's restarts; the leak window is
// per process. READY at once (it needs nothing but vigil's samples).
//
// Flags:
//   --horizon D      advise on failures forecast within D (default 30s)
//   --advise watch   journal forecasts only, never ask for a restart (to measure precision
//                    and recall against real failures); default: restart
//   --threshold Z    |z-score| above which a sample is an anomaly (default 4)
//   --warmup N       samples per worker before scoring starts, 2...10000 (default 10)
//   --alpha A        weight of each new sample in the baselines, 0.001...1 (default 0.1)
//
// Exit: 0 on SIGTERM/SIGINT, 2 on a bad flag, 70 when the channel to vigil closes.
import CShim
import Synchronization
import Trading
import VigilWorker

var flags = Flags(usage: "usage: ml-predictor [--horizon D] [--advise restart|watch] [--threshold Z] [--warmup N] [--alpha A]")
let horizon = flags.duration("--horizon", default: .seconds(30))
let adviseOnly = flags.value("--advise", expected: "restart or watch") { ["restart": false, "watch": true][$0] } ?? false
let threshold = flags.double("--threshold", default: 4, range: 0.1...1_000)
let warmUp = flags.int("--warmup", default: 10, range: 2...10_000)
let alpha = flags.double("--alpha", default: 0.1, range: 0.001...1)
flags.finish()
let worker = Worker.connect()
let horizonSeconds = Double(horizon.components.seconds) + Double(horizon.components.attoseconds) / 1e18

/// Shared between the channel thread (samples) and the main thread (status).
final class Predictor: Sendable {
    struct State {
        var forecaster: FailureForecaster
        var samples = 0
        var anomalies = 0
        var forecasts = 0
        var last = ""
    }
    let state: Mutex<State>

    init(_ configuration: FailureForecaster.Configuration) {
        state = Mutex(State(forecaster: FailureForecaster(configuration)))
    }

    /// Scores and folds in one sample; returns what it found.
    func observe(_ s: WorkerSample, at seconds: Double) -> [FailureForecaster.Finding] {
        let share = s.intervalMicros == 0 ? Double.nan : Double(s.cpuMicros) / Double(s.intervalMicros)
        let sample = FailureForecaster.Sample(
            worker: s.worker, pid: s.pid, time: seconds, rssKiB: Double(s.rssKiB), cpuShare: share, restarts: s.restarts,
            memoryLimitKiB: s.memoryLimitKiB == 0 ? nil : Double(s.memoryLimitKiB),
            heartbeatJitterMs: Double(s.heartbeatJitterMicros) / 1000)
        return state.withLock { st in
            st.samples += 1
            let found = st.forecaster.observe(sample)
            for f in found {
                switch f {
                case .anomaly: st.anomalies += 1
                case .prediction(let p): st.forecasts += 1; st.last = "\(p.worker): \(p.model) in \(FailureForecaster.short(p.secondsToFailure))s"
                }
            }
            return found
        }
    }
}

let short = FailureForecaster.short
let predictor = Predictor(.init(horizon: horizonSeconds, anomalyThreshold: threshold, warmUp: warmUp, alpha: alpha))
worker.onMessage { frame in
    switch frame {
    case .sample(let s):
        for finding in predictor.observe(s, at: Double(vigil_monotonic_ns()) / 1e9) {
            switch finding {
            case .anomaly(let a):
                let line = "worker=\(a.worker) pid=\(a.pid) metric=\(a.metric) value=\(short(a.value)) baseline=\(short(a.mean))±\(short(a.deviation)) z=\(short(a.z)) (threshold \(short(threshold)))"
                worker.log("ANOMALY " + line)
                worker.report(key: "anomaly", text: line)
            case .prediction(let p):
                let action: AdviceAction = adviseOnly || p.action == .watch ? .watch : .restart
                worker.log("FORECAST worker=\(p.worker) pid=\(p.pid) model=\(p.model) fails in \(short(p.secondsToFailure))s; advising \(action.name): \(p.reason)")
                worker.advise(Advice(worker: p.worker, pid: p.pid, action: action, model: p.model,
                                     forecastMillis: UInt64(max(0, min(p.secondsToFailure, 86_400)) * 1000),
                                     horizonMillis: UInt64(horizonSeconds * 1000), reason: p.reason))
            }
        }
    case .notice(let key, let value):
        worker.log("notice \(key)=\(value)")
    default:
        break
    }
}
worker.ready()
worker.log("READY: horizon \(short(horizonSeconds))s, advice \(adviseOnly ? "watch only" : "restart"), threshold |z| > \(short(threshold)), warm-up \(warmUp) samples, alpha \(short(alpha))")

while worker.sleep(for: .seconds(1)) {
    let line = predictor.state.withLock { st in
        "\(st.forecaster.workerCount) workers, \(st.samples) samples, \(st.anomalies) anomalies, \(st.forecasts) forecasts"
            + (st.last.isEmpty ? "" : "; last: " + st.last)
    }
    worker.status(line)
}

worker.stopping()
worker.log("stopping on signal \(worker.stopSignal ?? 0)")
