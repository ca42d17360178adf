@preconcurrency import Glibc
import VigilHost

struct ThroughputResults {
    var workers = 0
    var ratePerWorker = 0
    var seconds = 0.0
    var framesPerSecond = 0.0
    var dropped = 0
    var vigilCPUFraction = 0.0
    var framesPerCPUSecond = 0.0
    var cutOff = 0
    var pinned = false
}

/// `workers` C workers (a pool, `instances:`) each send `rate` heartbeats a second on
/// their channel (non-blocking, so a send that finds the channel full is counted as
/// dropped: vigil fell behind). vigil is pinned to CPU 0 and the senders to the other
/// CPUs, so it has one core. Measured over `seconds`: frames the workers got into their
/// channels per second (vigil read them all when nothing was dropped), vigil's CPU, and
/// frames per CPU-second of vigil (its capacity on one core).
func throughputRun(layout: Layout, workDir: String, workers: Int, rate: Int, seconds: Double) -> ThroughputResults {
    var r = ThroughputResults()
    r.workers = workers
    r.ratePerWorker = rate
    let dir = temporaryDirectory(in: workDir, prefix: "vigil-bench-frames")
    defer { removeTree(dir) }
    let counts = dir + "/counts"
    let yaml = """
        name: bench-frames
        max_restarts: 100000
        period: 1s
        children:
          - worker: f
            argv: ["\(layout.cWorker)"]
            env: {BENCH_FLOOD_RATE: "\(rate)", BENCH_COUNTS: "\(counts)"}
            instances: \(workers)
            shutdown: brutal_kill

        """
    let run = VigilRun(layout: layout, directory: dir + "/v", topology: yaml, notify: true)
    defer { run.stop() }
    guard run.waitReady(timeoutSeconds: 60) != nil else {
        say("frames: tree not READY (see \(dir)/v/vigil.out)")
        return r
    }
    let cpus = Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))
    if cpus >= 2 {
        pin(run.pid, cpus: [0])
        for x in run.runs(limit: 10 * workers) where x.exitedNanoseconds == nil {
            if let p = x.pid { pin(p, cpus: Array(1..<cpus)) }
        }
        r.pinned = true
    }
    run.idle(seconds: 2)
    let w0 = wallNow()
    let c0 = cpuNanoseconds(run.pid) ?? 0
    run.idle(seconds: seconds)
    let c1 = cpuNanoseconds(run.pid) ?? 0
    let w1 = wallNow()
    run.idle(seconds: 1.2)  // the workers' next report lines
    r.seconds = Double(w1 - w0) / 1e9
    // Per worker: the report lines nearest inside [w0, w1+1s] give its rate over the window.
    var byPID: [Int32: [(t: Int64, sent: Int64, dropped: Int64)]] = [:]
    for line in (readText(counts) ?? "").split(separator: "\n") {
        let f = line.split(separator: " ")
        guard f.count == 4, let p = Int32(f[0]), let t = Int64(f[1]), let s = Int64(f[2]), let d = Int64(f[3]) else { continue }
        byPID[p, default: []].append((t, s, d))
    }
    var rate = 0.0
    var dropped: Int64 = 0
    for (_, rows) in byPID {
        let inWindow = rows.filter { $0.t >= w0 - 500_000_000 && $0.t <= w1 + 1_000_000_000 }
        guard let a = inWindow.first, let b = inWindow.last, b.t > a.t else { continue }
        rate += Double(b.sent - a.sent) / (Double(b.t - a.t) / 1e9)
        dropped += b.dropped - a.dropped
    }
    r.framesPerSecond = rate
    r.dropped = Int(dropped)
    r.vigilCPUFraction = Double(c1 - c0) / Double(w1 - w0)
    r.framesPerCPUSecond = r.vigilCPUFraction > 0 ? rate / r.vigilCPUFraction : 0
    r.cutOff = (try? run.openJournal().events(limit: 100_000).filter { $0.kind == "protocol_violation" }.count) ?? 0
    return r
}
