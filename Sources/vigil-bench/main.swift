// vigil-bench: Vigil's benchmark. Every row measured in one run on one machine; prints a
// table with ratios and targets, and writes BENCHMARKS.md (see the README, "Benchmarks").
//
//   vigil-bench [--quick] [--only ROW[,ROW...]] [--out FILE] [--n KILLS] [--idle-seconds S]
//               [--anchors "baseline vigil supervisord erlang runit s6"] [--anchor-gaps 0,1.1]
//               [--anchor-n N] [--workers 1000] [--supervisors 50] [--setup-only]
//               [--shared-bench DIR] [--tmpdir DIR] [--label TEXT]
// ROW: resurrect (also detection and the floor), anchors, tree, mass, idle, frames, handoff.
import CShim
@preconcurrency import Glibc
import VigilHost

let usage = """
    usage: vigil-bench [--quick] [--only ROW[,ROW...]] [--out FILE] [--n KILLS] [--idle-seconds S]
                       [--anchors "NAMES"] [--anchor-gaps 0,1.1] [--anchor-n N] [--workers N]
                       [--supervisors N] [--mass N] [--setup-only] [--shared-bench DIR] [--tmpdir DIR]
                       [--label TEXT]
    rows: resurrect anchors tree mass idle frames handoff (default: all)
    """

struct Options {
    var quick = false
    var rows: Set<String> = ["resurrect", "anchors", "tree", "mass", "idle", "frames", "handoff"]
    var out: String?
    var n = 200
    var idleSeconds = 60.0
    var anchors = ["baseline", "vigil", "supervisord", "erlang", "runit", "s6"]
    var anchorGaps = ["0", "1.1"]
    var anchorN: Int?
    var workers = 1000
    var supervisors = 50
    var mass = 100
    var frameWorkers = 150
    var frameRate = 1000
    var frameSeconds = 10.0
    var setupOnly = false
    var sharedBench: String?
    var tmpdir: String?
    var label: String?
}

var options = Options()
var args = Array(CommandLine.arguments.dropFirst())
@MainActor func value(_ flag: String) -> String {
    guard !args.isEmpty else { say("\(flag) needs a value\n\(usage)"); exit(2) }
    return args.removeFirst()
}
var explicitN = false, explicitIdle = false, explicitAnchors = false, explicitGaps = false
while !args.isEmpty {
    let a = args.removeFirst()
    switch a {
    case "--quick": options.quick = true
    case "--only":
        options.rows = Set(value(a).split(separator: ",").map { $0 == "detect" || $0 == "floor" ? "resurrect" : String($0) })
    case "--out": options.out = value(a)
    case "--n": options.n = Int(value(a)) ?? options.n; explicitN = true
    case "--idle-seconds": options.idleSeconds = Double(value(a)) ?? options.idleSeconds; explicitIdle = true
    case "--anchors": options.anchors = value(a).split(separator: " ").map(String.init); explicitAnchors = true
    case "--anchor-gaps": options.anchorGaps = value(a).split(separator: ",").map(String.init); explicitGaps = true
    case "--anchor-n": options.anchorN = Int(value(a))
    case "--workers": options.workers = Int(value(a)) ?? options.workers
    case "--supervisors": options.supervisors = Int(value(a)) ?? options.supervisors
    case "--mass": options.mass = Int(value(a)) ?? options.mass
    case "--setup-only": options.setupOnly = true
    case "--print-topology":  // the tree rows' topology, for a look by hand
        out(treeTopology(workers: options.workers, supervisors: options.supervisors, binary: value(a)))
        exit(0)
    case "--shared-bench": options.sharedBench = value(a)
    case "--tmpdir": options.tmpdir = value(a)
    case "--label": options.label = value(a)
    case "-h", "--help": out(usage); exit(0)
    default: say("unknown option \(a)\n\(usage)"); exit(2)
    }
}
if options.quick {
    if !explicitN { options.n = 20 }
    if !explicitIdle { options.idleSeconds = 5 }
    if !explicitAnchors { options.anchors = ["baseline", "vigil"] }
    if !explicitGaps { options.anchorGaps = ["0"] }
    options.frameWorkers = 50
    options.frameSeconds = 3
}
let known: Set<String> = ["resurrect", "anchors", "tree", "mass", "idle", "frames", "handoff"]
if !options.rows.isSubset(of: known) { say("unknown row(s) \(options.rows.subtracting(known).sorted())\n\(usage)"); exit(2) }

// MARK: Layout

let buildDirectory = dirname(ownExecutable())
var repository = buildDirectory
while repository != "/" && access(repository + "/Package.swift", F_OK) != 0 { repository = dirname(repository) }
if repository == "/" { fatal("cannot find the repository above \(buildDirectory)") }
var layout = Layout(buildDirectory: buildDirectory, repository: repository,
                    sharedBench: options.sharedBench ?? getenv("SHARED_BENCH").map { String(cString: $0) } ?? repository + "/../shared/bench",
                    cWorker: buildDirectory + "/vigil-bench-worker")
for b in [layout.vigil, layout.cWorker, layout.sdkWorker] where !isExecutable(b) {
    fatal("\(b) is missing: swift build -c release first")
}
// Run directories on a tmpfs, as shared/bench does (state files of runsv and s6 rewrite
// on every restart; vigil's journal commits do not fsync, but its checkpoints do).
let workRoot = options.tmpdir ?? (access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp")
let workDir = temporaryDirectory(in: workRoot, prefix: "vigil-bench-run")
let anchorOut = workDir + "/anchors"
// The plain C worker, static and without the Swift runtime SwiftPM links into it.
let staticWorker = workDir + "/vigil-bench-worker"
let cc = runShell("cc -O2 -static -o '\(staticWorker)' '\(repository)/Sources/vigil-bench-worker/main.c' 2>&1")
if cc.status == 0 { layout.cWorker = staticWorker } else { say("cannot build a static C worker (\(cc.output.trimmed())); using the SwiftPM one") }
makeDirectory(anchorOut)
let anchorN = options.anchorN ?? (options.quick ? 10 : options.n)

let startWall = wallNow()
let startMono = monoNow()
let load0 = readText("/proc/loadavg")?.split(separator: " ").prefix(3).joined(separator: " ") ?? "?"
let steal0 = stealMilliseconds()
say("work directory \(workDir); rows: \(options.rows.sorted().joined(separator: " "))")

// MARK: Setup (installs the anchors; the benchmark runs it itself)

var anchorVersions: [String: String] = [:]
if options.rows.contains("anchors") || options.setupOnly {
    say("setup: installing anchors \(options.anchors.joined(separator: " ")) (as shared/bench does)")
    anchorVersions = installAnchors(options.anchors, layout: layout, out: anchorOut)
}
if options.setupOnly { removeTree(workDir); exit(0) }

// MARK: Rows

let cKind = WorkerKind(label: "C worker (vigil-bench-worker)", binary: layout.cWorker)
let sdkKind = WorkerKind(label: "SDK worker (vigil-bench-sdk-worker)", binary: layout.sdkWorker)

var series: [KillSeries] = []
var floors: [FloorSeries] = []
if options.rows.contains("resurrect") {
    for k in [cKind, sdkKind] {
        say("resurrect: floor, \(k.label), \(options.n) spawns")
        floors.append(floorSeries(k, workDir: workDir, n: options.n))
        say("resurrect: vigil, \(k.label), \(options.n) kills")
        series.append(resurrectionSeries(k, layout: layout, workDir: workDir, n: options.n))
    }
}

var handoff: [KillSeries] = []
if options.rows.contains("handoff") {
    let mib = 1 << 20
    let kinds = [
        WorkerKind(label: "C, no state", binary: layout.cWorker),
        WorkerKind(label: "C, 1 MiB state (memfd in the fd store)", binary: layout.cWorker, environment: ["BENCH_STATE_BYTES": "\(mib)"]),
        WorkerKind(label: "SDK, no checkpoint", binary: layout.sdkWorker),
        WorkerKind(label: "SDK, 16,000-byte checkpoint (channel)", binary: layout.sdkWorker,
                   environment: ["BENCH_CHECKPOINT_BYTES": "16000"], extraSpec: ["max_checkpoint_bytes: 16000"]),
    ]
    for k in kinds {
        say("handoff: \(k.label), \(options.n) kills")
        handoff.append(resurrectionSeries(k, layout: layout, workDir: workDir, n: options.n))
    }
}

var frames: ThroughputResults?
if options.rows.contains("frames") {
    say("frames: \(options.frameWorkers) workers x \(options.frameRate)/s for \(Int(options.frameSeconds)) s")
    frames = throughputRun(layout: layout, workDir: workDir, workers: options.frameWorkers, rate: options.frameRate, seconds: options.frameSeconds)
}

var tree: TreeResults?
if !options.rows.isDisjoint(with: ["tree", "mass", "idle"]) {
    tree = treeSession(layout: layout, workDir: workDir, workers: options.workers, supervisors: options.supervisors,
                       idleSeconds: options.idleSeconds, doIdle: options.rows.contains("idle"),
                       doMass: options.rows.contains("mass"), massKills: options.mass)
}

var anchorRows: [AnchorRow] = []
if options.rows.contains("anchors") {
    anchorRows = runAnchors(options.anchors, gaps: options.anchorGaps, n: anchorN, layout: layout, out: anchorOut, versions: anchorVersions)
}

// MARK: Report

let elapsed = Double(monoNow() - startMono) / 1e9
let load1 = readText("/proc/loadavg")?.split(separator: " ").prefix(3).joined(separator: " ") ?? "?"
let steal = stealMilliseconds() - steal0

@MainActor func machine() -> [String] {
    let cpu = (readText("/proc/cpuinfo") ?? "").split(separator: "\n").first { $0.hasPrefix("model name") }
        .map { String($0.split(separator: ":", maxSplits: 1).last ?? "").trimmed() } ?? "?"
    var u = utsname()
    uname(&u)
    let kernel = withUnsafeBytes(of: u.release) { String(cString: $0.baseAddress!.assumingMemoryBound(to: CChar.self)) }
    let mem = (readText("/proc/meminfo") ?? "").split(separator: "\n").first { $0.hasPrefix("MemTotal") }
        .flatMap { $0.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first }.flatMap { Int($0) } ?? 0
    let rev = runShell("cd '\(layout.repository)' && git rev-parse --short HEAD && git status --porcelain | grep -q . && echo dirty || true").output
        .split(separator: "\n").joined(separator: " ")
    var t = time(nil)
    var tmv = tm()
    gmtime_r(&t, &tmv)
    let date = "\(1900 + Int(tmv.tm_year))-\(format2(Int(tmv.tm_mon) + 1))-\(format2(Int(tmv.tm_mday))) \(format2(Int(tmv.tm_hour))):\(format2(Int(tmv.tm_min))) UTC"
    let swiftVersion = runShell("swift --version 2>/dev/null | head -n1").output.trimmed()
    return [
        "date: \(date)",
        "machine: \(sysconf(Int32(_SC_NPROCESSORS_ONLN))) CPUs (nproc), \(cpu), kernel \(kernel), \(mem / 1024) MiB RAM",
        "vigil: \(rev) (release build), \(swiftVersion)",
        "load average at start \(load0), at end \(load1); hypervisor steal during the run \(steal) ms; run took \(Int(elapsed)) s",
    ]
}

var md: [String] = []
var targets: [(String, String, String, Bool?)] = []  // target, measured, note, met

@MainActor func seriesFor(_ label: String) -> KillSeries? { series.first { $0.label == label } }
@MainActor func floorFor(_ label: String) -> FloorSeries? { floors.first { $0.label == label } }

if !series.isEmpty {
    md += ["## Resurrection and detection", "",
           "kill -9 of the only worker to the replacement's READY as vigil journaled it, N=\(options.n) kills per row (+2 warm-up, not counted), each kill 20-30 ms after the previous READY. ms from just before `kill()`.", "",
           "| worker | what | p50 | p90 | p99 | max |", "|---|---|---|---|---|---|"]
    for s in series {
        let rows: [(String, KeyPath<KillSample, Int64>)] = [("detected (exit journaled)", \.detected), ("spawned (posix_spawn returned)", \.spawned),
                                                             ("replacement in main()", \.main), ("**READY** (vigil read it)", \.ready)]
        for (what, key) in rows {
            if let p = s.pct(key) { md.append("| \(s.label) | \(what) | \(ms(p.p50)) | \(ms(p.p90)) | \(ms(p.p99)) | \(ms(p.max)) |") }
        }
        if s.failures > 0 { md.append("| \(s.label) | failures | \(s.failures) | | | |") }
    }
    md += ["", "The floor: the same binary spawned by a loop with no supervisor (vigil's own spawn primitive, `vigil_spawn`: posix_spawn, own process group, channel at fd 3, the restore frame sent as vigil does), N=\(options.n).", "",
           "| worker | floor | p50 | p90 | p99 | max |", "|---|---|---|---|---|---|"]
    for f in floors {
        for (what, v) in [("spawn -> first message (READY)", f.spawnToMessage), ("kill -> waitpid -> spawn -> READY", f.killToMessage), ("kill -> waitpid returned", f.killToReap)] {
            if let p = Percentiles(v) { md.append("| \(f.label) | \(what) | \(ms(p.p50)) | \(ms(p.p90)) | \(ms(p.p99)) | \(ms(p.max)) |") }
        }
    }
    md += ["", "| worker | Vigil kill->READY / floor spawn->READY (p50, p99) | Vigil kill->READY / floor kill->READY (p50, p99) |", "|---|---|---|"]
    for s in series {
        guard let f = floorFor(s.label), let v = s.pct(\.ready), let a = Percentiles(f.spawnToMessage), let b = Percentiles(f.killToMessage) else { continue }
        md.append("| \(s.label) | \(fixed(v.p50 / a.p50, 2))x, \(fixed(v.p99 / a.p99, 2))x | \(fixed(v.p50 / b.p50, 2))x, \(fixed(v.p99 / b.p99, 2))x |")
        targets.append(("resurrection p99 <= 1.5x floor, \(s.label)", "\(ms(v.p99)) ms vs floor \(ms(a.p99)) ms = \(fixed(v.p99 / a.p99, 2))x",
                        "kill->READY vs spawn->READY; vs the kill-inclusive floor (\(ms(b.p99)) ms): \(fixed(v.p99 / b.p99, 2))x", v.p99 <= 1.5 * a.p99))
        if let d = s.pct(\.detected) {
            targets.append(("detection p99 < 1 ms, \(s.label)", "\(ms(d.p99)) ms", "kill() -> exit journaled; the kernel alone (floor kill -> waitpid) p99 \(Percentiles(f.killToReap).map { ms($0.p99) } ?? "-") ms", d.p99 < 1))
        }
    }
    md.append("")
}

if let t = tree {
    md += ["## Tree: start, stop, mass failure, idle overhead", "",
           "A generated topology: \(t.supervisors) one_for_one supervisors of \(t.workers / max(1, t.supervisors)) C workers each (\(t.workers) workers), heartbeat every 1 s, `watchdog: 5s`; worker k >= 5 depends on worker k-5 of its supervisor, worker 0 of supervisor j on worker 0 of supervisor j-1 (a dependency chain \(t.supervisors) deep). vigil runs with a NOTIFY_SOCKET of the benchmark's, as under systemd (`Type=notify`).", "",
           "| measure | value |", "|---|---|"]
    if options.rows.contains("tree") {
        md.append("| start: `vigil up` spawned -> READY=1 (every worker READY) | \(t.startNanoseconds.map { ms(Double($0) / 1e6) + " ms" } ?? "FAILED") |")
        md.append("| stop: SIGTERM -> vigil exited and no worker left | \(t.stopNanoseconds.map { ms(Double($0) / 1e6) + " ms" } ?? "FAILED") (exit status \(t.stopStatus >> 8), \(t.leftover) left) |")
        if let s = t.startNanoseconds { targets.append(("\(t.workers)-worker tree up < 3 s on this machine", "\(ms(Double(s) / 1e6)) ms", "", Double(s) < 3e9)) }
        else { targets.append(("\(t.workers)-worker tree up < 3 s", "did not come up", "", false)) }
    }
    if options.rows.contains("mass") {
        md.append("| mass failure: kill -9 of \(t.killed) at once -> all READY again | \(t.healedNanoseconds.map { ms(Double($0) / 1e6) + " ms" } ?? "FAILED")\(t.unhealed > 0 ? ", \(t.unhealed) not healed" : "") |")
        if let e = t.healedEach { md.append("| each of the \(t.killed): kill -> READY p50 / p90 / p99 | \(ms(e.p50)) / \(ms(e.p90)) / \(ms(e.p99)) ms |") }
        targets.append(("\(t.killed) simultaneous deaths healed < 1 s", t.healedNanoseconds.map { ms(Double($0) / 1e6) + " ms" } ?? "not healed", "",
                        t.healedNanoseconds.map { Double($0) < 1e9 && t.unhealed == 0 }))
    }
    if options.rows.contains("idle"), let cpu = t.cpuNanoseconds, let rss = t.rssKB {
        let perMinute = Double(cpu) / 1e6 * 60 / t.idleSeconds
        let core = Double(cpu) / (t.idleSeconds * 1e9) * 100
        md.append("| idle: vigil CPU per minute (measured over \(Int(t.idleSeconds.rounded())) s) | \(fixed(perMinute, 0)) ms = \(fixed(core, 3)) % of one core |")
        md.append("| idle: vigil RSS / peak RSS / PSS | \(fixed(Double(rss) / 1024, 1)) / \(fixed(Double(t.hwmKB ?? 0) / 1024, 1)) / \(fixed(Double(t.pssKB ?? 0) / 1024, 1)) MiB |")
        if let one = t.rssOneKB {
            md.append("| vigil RSS with 1 worker; bytes of vigil RSS per extra child | \(fixed(Double(one) / 1024, 1)) MiB; \(thousands((rss - one) * 1024 / max(1, t.workers - 1))) B |")
        }
        md.append("| vigil's open descriptors with \(t.workers) children | \(t.fds) |")
        if t.wakeups > 0 {
            md.append("| vigil wake-ups (voluntary context switches) per second; CPU per wake-up | \(thousands(Int(Double(t.wakeups) / t.idleSeconds))); \(fixed(Double(cpu) / Double(t.wakeups) / 1000, 1)) us |")
        }
        if t.workerRestartsDuringIdle > 0 { md.append("| worker (re)starts during the idle window (should be 0) | \(t.workerRestartsDuringIdle) |") }
        targets.append(("idle, \(t.workers) workers: < 1% of one core", "\(fixed(core, 3)) %", "\(fixed(perMinute, 0)) ms CPU per minute", core < 1))
        targets.append(("idle, \(t.workers) workers: < 64 MB RSS", "\(fixed(Double(rss) / 1024, 1)) MiB", "", Double(rss) * 1024 < 64e6))
    }
    md.append("")
}

if let f = frames {
    md += ["## Control throughput", "",
           "\(f.workers) C workers (a pool) each send \(f.ratePerWorker) heartbeat frames a second on their channels (in 10 ms ticks, non-blocking: a send that finds the channel full, whose queue holds net.unix.max_dgram_qlen frames, ends that tick and what was due stays due, so the rate achieved falls behind the offered one only if vigil does). vigil \(f.pinned ? "pinned to CPU 0, the senders to the other CPUs" : "not pinned (1 CPU)"), measured over \(fixed(f.seconds, 1)) s.", "",
           "| measure | value |", "|---|---|",
           "| frames per second into vigil | \(thousands(Int(f.framesPerSecond))) |",
           "| offered | \(thousands(f.workers * f.ratePerWorker)) |",
           "| sends that found a channel full (retried) | \(thousands(f.dropped)) |",
           "| vigil CPU | \(fixed(f.vigilCPUFraction * 100, 1)) % of one core |",
           "| frames per CPU-second of vigil (capacity of one core) | \(thousands(Int(f.framesPerCPUSecond))) |",
           "| workers cut off for flooding | \(f.cutOff) |", ""]
    let ok = f.framesPerSecond >= 100_000
    targets.append((">= 100,000 frames/s on one core", "\(thousands(Int(f.framesPerSecond)))/s taken in",
                    "\(fixed(f.vigilCPUFraction * 100, 0)) % of the core; capacity \(thousands(Int(f.framesPerCPUSecond)))/CPU-s; offered \(thousands(f.workers * f.ratePerWorker))/s",
                    f.framesPerSecond >= 100_000 ? ok : (f.framesPerCPUSecond >= 100_000 ? nil : false)))
}

if !handoff.isEmpty {
    md += ["## State handoff", "",
           "Resurrection (kill -9 -> READY, N=\(options.n)) of the same binary with and without state. A channel checkpoint is at most 16,000 bytes (one frame), so 1 MiB goes the way the README gives for large state: a memfd in vigil's descriptor store (`FDSTORE=1`, handed back as `LISTEN_FDS`), read in full and checked by the replacement before READY.", "",
           "| worker | p50 | p90 | p99 | max | extra p50 | extra p99 |", "|---|---|---|---|---|---|---|"]
    for (i, s) in handoff.enumerated() {
        guard let p = s.pct(\.ready) else { continue }
        let base = i % 2 == 1 ? handoff[i - 1].pct(\.ready) : nil
        md.append("| \(s.label) | \(ms(p.p50)) | \(ms(p.p90)) | \(ms(p.p99)) | \(ms(p.max)) | \(base.map { ms(p.p50 - $0.p50) } ?? "") | \(base.map { ms(p.p99 - $0.p99) } ?? "") |")
    }
    md.append("")
}

if !anchorRows.isEmpty {
    md += ["## Beside other supervisors (shared/bench's method)", "",
           "shared/bench's anchor scripts, run from here one after another: its static C worker (`src/worker.c`), its kill loop (`killwait`), N=\(anchorN) kills per row; latency = kill -> the replacement's own stamp at the top of main() (these workers send no READY). Vigil runs in the same frame (`Benchmarks/anchors/vigil.sh`: `readiness: exec`, backoff initial 0). gap 0 kills as soon as the replacement is up (a crash loop; runit, s6 and supervisord throttle to 1 s there), gap 1.1 kills it after 1.1 s + 0..0.1 s (a service that dies now and then). ms.", ""]
    for gap in options.anchorGaps {
        let vigilRow = anchorRows.first { $0.name == "vigil" && $0.gap == gap && $0.error == nil }
        md += ["gap \(gap):", "", "| supervisor | p50 | p90 | p99 | max | reap p50 | spawn p50 | steal ms | p50 / Vigil | p99 / Vigil |", "|---|---|---|---|---|---|---|---|---|---|"]
        for r in anchorRows where r.gap == gap {
            if let e = r.error { md.append("| \(r.name) | \(e) | | | | | | | | |"); continue }
            let v = r.values
            let ratio: (String) -> String = { k in
                guard let a = r.number(k), let b = vigilRow?.number(k), b > 0 else { return "" }
                return fixed(a / b, 2) + "x"
            }
            md.append("| \(r.name) | \(v["lat_p50"] ?? "") | \(v["lat_p90"] ?? "") | \(v["lat_p99"] ?? "") | \(v["lat_max"] ?? "") | \(v["reap_p50"] ?? "") | \(v["spawn_p50"] ?? "") | \(v["steal_ms"] ?? "") | \(ratio("lat_p50")) | \(ratio("lat_p99")) |")
        }
        md.append("")
    }
    md.append("Versions: " + options.anchors.compactMap { n in anchorVersions[n].map { "\(n): \($0.trimmed())" } }.joined(separator: "; ") + ".")
    md.append("")
}

var head: [String] = ["# Benchmarks", ""]
if let l = options.label { head += ["**\(l)**", ""] }
head += machine().map { "- " + $0 }
head += ["- command: `\(CommandLine.arguments.map { $0.contains(" ") ? "'\($0)'" : $0 }.joined(separator: " "))`", ""]
if !targets.isEmpty {
    head += ["## Targets", "", "| target | measured | | notes |", "|---|---|---|---|"]
    for (t, m, n, met) in targets {
        head.append("| \(t) | \(m) | \(met.map { $0 ? "met" : "**MISSED**" } ?? "see notes") | \(n) |")
    }
    head.append("")
}
let notes = readText(layout.repository + "/Benchmarks/NOTES.md").map { ["", $0] } ?? []
let report = (head + md + notes).joined(separator: "\n")

out(report)
if let path = options.out {
    writeText(path, report.hasSuffix("\n") ? report : report + "\n")
    say("wrote \(path)")
}
say("done in \(Int(elapsed)) s; anchors' raw rows were in \(anchorOut)")
removeTree(workDir)
