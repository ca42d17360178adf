@preconcurrency import Glibc
import VigilHost

/// The generated topology of the tree rows: `supervisors` one_for_one supervisors of
/// `perSupervisor` C workers each (heartbeat every second, watchdog 5 s). Dependency chains:
/// worker k >= 5 of a supervisor depends on its worker k-5 (chains 4 deep), and worker 0
/// of supervisor j on worker 0 of supervisor j-1, a chain as deep as there are supervisors
/// (the critical path of the start).
func treeTopology(workers: Int, supervisors: Int, binary: String) -> String {
    let per = max(1, workers / supervisors)
    var y = [
        "name: bench-tree",
        "strategy: one_for_one",
        "max_restarts: 100000",
        "period: 1s",
        "heartbeat_interval: 1s",
        "children:",
    ]
    func w(_ s: Int, _ k: Int) -> String { "s\(s)-w\(k)" }
    for s in 0..<supervisors {
        y += ["  - supervisor: s\(s)", "    strategy: one_for_one", "    max_restarts: 100000", "    period: 1s", "    children:"]
        for k in 0..<per {
            var deps: [String] = []
            if k >= 5 { deps.append(w(s, k - 5)) }
            if k == 0 && s > 0 { deps.append(w(s - 1, 0)) }
            y += ["      - worker: \(w(s, k))",
                  "        argv: [\"\(binary)\"]",
                  "        env: {BENCH_HEARTBEAT: \"1\"}",
                  "        watchdog: 5s",
                  "        backoff: {initial: 100ms, reset_after: 1s}"]
            if !deps.isEmpty { y.append("        depends_on: [\(deps.joined(separator: ", "))]") }
        }
    }
    return y.joined(separator: "\n") + "\n"
}

struct TreeResults {
    var workers = 0
    var supervisors = 0
    var startNanoseconds: Int64?
    var stopNanoseconds: Int64?
    var leftover = 0
    var stopStatus: Int32 = 0
    // mass failure
    var killed = 0
    var healedNanoseconds: Int64?
    var healedEach: Percentiles?
    var unhealed = 0
    // idle overhead
    var idleSeconds = 0.0
    var cpuNanoseconds: Int64?
    var rssKB: Int?
    var hwmKB: Int?
    var pssKB: Int?
    var rssOneKB: Int?
    var workerRestartsDuringIdle = 0
    var fds = 0
    /// vigil's voluntary context switches (wake-ups) during the idle window.
    var wakeups = 0
}

/// One vigil with the generated tree: start -> (idle overhead) -> (mass failure) -> stop.
func treeSession(layout: Layout, workDir: String, workers: Int, supervisors: Int, idleSeconds: Double,
                 doIdle: Bool, doMass: Bool, massKills: Int) -> TreeResults {
    var r = TreeResults()
    r.workers = workers
    r.supervisors = supervisors
    let dir = temporaryDirectory(in: workDir, prefix: "vigil-bench-tree")
    defer { removeTree(dir) }

    if doIdle {
        // vigil's own footprint with one such worker, for the per-child figure.
        let one = VigilRun(layout: layout, directory: dir + "/one", topology: treeTopology(workers: 1, supervisors: 1, binary: layout.cWorker), notify: true)
        if one.waitReady(timeoutSeconds: 30) != nil {
            one.idle(seconds: 2)
            r.rssOneKB = statusKB(one.pid, "VmRSS")
        }
        one.stop()
    }

    say("tree: starting \(workers) workers in \(supervisors) supervisors")
    let run = VigilRun(layout: layout, directory: dir + "/tree",
                       topology: treeTopology(workers: workers, supervisors: supervisors, binary: layout.cWorker), notify: true)
    guard let up = run.waitReady(timeoutSeconds: 120) else {
        run.abandon()
        say("tree: not READY within 120 s (see \(dir)/tree/vigil.out)")
        return r
    }
    r.startNanoseconds = up
    say("tree: READY after \(ms(Double(up) / 1e6)) ms")

    if doIdle {
        run.idle(seconds: min(5, idleSeconds))  // let start-up work settle
        let runs0 = run.runs(limit: 100_000).count
        let c0 = cpuNanoseconds(run.pid) ?? 0
        let s0 = statusKB(run.pid, "voluntary_ctxt_switches") ?? 0
        let t0 = monoNow()
        say("tree: idle for \(Int(idleSeconds)) s")
        run.idle(seconds: idleSeconds)
        let c1 = cpuNanoseconds(run.pid) ?? 0
        let s1 = statusKB(run.pid, "voluntary_ctxt_switches") ?? 0
        let t1 = monoNow()
        r.wakeups = s1 - s0
        r.idleSeconds = Double(t1 - t0) / 1e9
        r.cpuNanoseconds = c1 - c0
        r.rssKB = statusKB(run.pid, "VmRSS")
        r.hwmKB = statusKB(run.pid, "VmHWM")
        r.pssKB = pssKB(run.pid)
        r.fds = listDirectory("/proc/\(run.pid)/fd")?.count ?? 0
        r.workerRestartsDuringIdle = run.runs(limit: 100_000).count - runs0
    }

    if doMass {
        let open = run.runs(limit: 100_000).filter { $0.exitedNanoseconds == nil && $0.readyNanoseconds != nil && $0.pid != nil }
        let victims = Array(open.shuffled().prefix(massKills))
        r.killed = victims.count
        say("tree: kill -9 of \(victims.count) workers at once")
        let t0 = wallNow()
        for v in victims { kill(v.pid!, SIGKILL) }
        let deadline = monoNow() + 30_000_000_000
        var readyAt: [String: Int64] = [:]
        let wanted = Dictionary(uniqueKeysWithValues: victims.map { ($0.node, $0.incarnation) })
        while readyAt.count < wanted.count && monoNow() < deadline {
            sleepMilliseconds(5)
            run.drainNotify()
            for x in run.runs(limit: 4 * workers) {
                if let inc = wanted[x.node], x.incarnation > inc, let ready = x.readyNanoseconds { readyAt[x.node] = ready }
            }
        }
        r.unhealed = wanted.count - readyAt.count
        if let last = readyAt.values.max() { r.healedNanoseconds = last - t0 }
        r.healedEach = Percentiles(readyAt.values.map { $0 - t0 })
        say("tree: \(readyAt.count) of \(wanted.count) READY again after \(ms(Double((r.healedNanoseconds ?? 0)) / 1e6)) ms")
    }

    say("tree: stopping")
    if let s = run.stop(timeoutSeconds: 120) {
        r.stopNanoseconds = s.nanoseconds
        r.leftover = s.leftover
        r.stopStatus = s.status
    }
    return r
}
