import CShim
@preconcurrency import Glibc
import VigilHost

/// One kill -9 of a worker under vigil, every time measured from just before kill().
struct KillSample {
    /// kill -> vigil journaled the exit (the `exited` record's wall stamp, taken once vigil
    /// had reaped the process and found its group empty): detection.
    var detected: Int64
    /// kill -> vigil's `spawned` record (posix_spawn returned).
    var spawned: Int64
    /// kill -> the replacement's own CLOCK_REALTIME stamp at the top of main().
    var main: Int64
    /// kill -> vigil's `ready` record (it read READY on the replacement's channel).
    var ready: Int64
}

struct KillSeries {
    var label: String
    var samples: [KillSample]
    var steal: Int
    var failures: Int
    func pct(_ key: KeyPath<KillSample, Int64>) -> Percentiles? { Percentiles(samples.map { $0[keyPath: key] }) }
}

/// What to supervise in a one-worker resurrection run.
struct WorkerKind {
    var label: String
    var binary: String
    var environment: [String: String] = [:]
    var extraSpec: [String] = []
}

/// The single-worker topology of the resurrection runs: the default first-failure path.
/// Each kill comes after the replacement has been READY longer than `reset_after`, so
/// every death is a *first* failure and is restarted at once, as Vigil's backoff
/// prescribes (no setting turns restart delays off); intensity is set out of reach.
func oneWorkerTopology(_ kind: WorkerKind, log: String) -> String {
    var env = kind.environment
    env["BENCH_LOG"] = log
    var lines = [
        "name: bench",
        "max_restarts: 1000000",
        "period: 1s",
        "children:",
        "  - worker: w",
        "    argv: [\"\(kind.binary)\"]",
        "    env: {\(env.sorted { $0.key < $1.key }.map { "\($0.key): \"\($0.value)\"" }.joined(separator: ", "))}",
        "    shutdown: brutal_kill",
        "    backoff: {initial: 100ms, reset_after: 10ms}",
    ]
    lines += kind.extraSpec.map { "    " + $0 }
    return lines.joined(separator: "\n") + "\n"
}

/// Kills the single worker `w` of a fresh vigil `n` (+ warm-up) times and measures each
/// resurrection from vigil's journal and the worker's own start stamp.
func resurrectionSeries(_ kind: WorkerKind, layout: Layout, workDir: String, n: Int, warmup: Int = 2,
                        gapMilliseconds: Double = 20, jitterMilliseconds: Double = 10) -> KillSeries {
    let dir = temporaryDirectory(in: workDir, prefix: "vigil-bench-resurrect")
    let log = StartLog(path: dir + "/start.fifo")
    let run = VigilRun(layout: layout, directory: dir + "/v", topology: oneWorkerTopology(kind, log: log.path))
    defer { run.stop(); removeTree(dir) }
    guard let first = log.next(timeoutMilliseconds: 10_000),
          var current = run.waitRun(node: "w", after: 0, timeoutSeconds: 10)?.new, current.pid == first.pid else {
        fatal("\(kind.label): the first worker did not come up (see \(dir)/v/vigil.out)")
    }
    var samples: [KillSample] = []
    var failures = 0
    let steal0 = stealMilliseconds()
    for i in 0..<(n + warmup) {
        sleepMilliseconds(gapMilliseconds + Double.random(in: 0...jitterMilliseconds))
        guard let pid = current.pid else { break }
        let t0 = wallNow()
        kill(pid, SIGKILL)
        guard let started = log.next(timeoutMilliseconds: 10_000),
              let r = run.waitRun(node: "w", after: current.incarnation, timeoutSeconds: 10),
              let old = r.old, let exited = old.exitedNanoseconds, let ready = r.new.readyNanoseconds else {
            failures += 1
            say("\(kind.label): kill \(i): no replacement within 10 s")
            break
        }
        if started.pid != r.new.pid {
            failures += 1
            log.drain()
        } else if i >= warmup {
            samples.append(KillSample(detected: exited - t0, spawned: r.new.startedNanoseconds - t0,
                                      main: started.wall - t0, ready: ready - t0))
        }
        current = r.new
    }
    return KillSeries(label: kind.label, samples: samples, steal: stealMilliseconds() - steal0, failures: failures)
}

/// The floor: the same worker binary spawned with vigil's own spawn primitive
/// (posix_spawn, own process group, channel at fd 3) by a loop that does nothing else,
/// no supervisor. Per start: spawn -> its first message (READY) arrives; and for the
/// kill-inclusive figure: kill -> waitpid -> spawn -> READY, and kill -> waitpid returned.
struct FloorSeries {
    var label: String
    var spawnToMessage: [Int64]
    var killToMessage: [Int64]
    var killToReap: [Int64]
}

func floorSeries(_ kind: WorkerKind, workDir: String, n: Int, warmup: Int = 2,
                 gapMilliseconds: Double = 20, jitterMilliseconds: Double = 10) -> FloorSeries {
    let dir = temporaryDirectory(in: workDir, prefix: "vigil-bench-floor")
    defer { removeTree(dir) }
    let log = StartLog(path: dir + "/start.fifo")
    var env = processEnvironment()
    for k in ["NOTIFY_SOCKET", "LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES"] { env.removeValue(forKey: k) }
    for (k, v) in kind.environment { env[k] = v }
    env["BENCH_LOG"] = log.path
    env["VIGIL_FD"] = "3"
    env["VIGIL_NAME"] = "w"
    env["VIGIL_INCARNATION"] = "1"
    env["VIGIL_HEARTBEAT_MS"] = "1000"
    var result = FloorSeries(label: kind.label, spawnToMessage: [], killToMessage: [], killToReap: [])
    var lastKill: Int64?
    var buffer = [UInt8](repeating: 0, count: 65536)
    for i in 0..<(n + warmup) {
        var pair: [Int32] = [-1, -1]
        guard pair.withUnsafeMutableBufferPointer({ vigil_seqpacket_pair($0.baseAddress) }) == 0 else { fatal("socketpair") }
        let childEnd = vigil_move_fd_above(pair[1], 4)
        let t0 = wallNow()
        guard let pid = spawn([kind.binary], environment: env, inherit: [childEnd]) else { fatal("spawn \(kind.binary)") }
        close(childEnd)
        // What vigil says first to every incarnation: "no checkpoint" (the SDK waits for it).
        var restore: [UInt8] = [0x13, 0]
        _ = send(pair[0], &restore, 2, Int32(MSG_NOSIGNAL))
        var t1: Int64 = 0
        while true {
            let got = buffer.withUnsafeMutableBytes { recv(pair[0], $0.baseAddress, $0.count, 0) }
            if got < 0 && errno == EINTR { continue }
            if got <= 0 { fatal("\(kind.label) floor: the worker closed its channel before READY") }
            if buffer[0] == 0x01 { t1 = wallNow(); break }
        }
        _ = log.next(timeoutMilliseconds: 1000)
        if i >= warmup {
            result.spawnToMessage.append(t1 - t0)
            if let k = lastKill { result.killToMessage.append(t1 - k) }
        }
        sleepMilliseconds(gapMilliseconds + Double.random(in: 0...jitterMilliseconds))
        let tk = wallNow()
        kill(pid, SIGKILL)
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        let tr = wallNow()
        close(pair[0])
        if i >= warmup { result.killToReap.append(tr - tk) }
        lastKill = tk
    }
    return result
}
