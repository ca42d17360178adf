import CShim
import Glibc
import VigilCore
import VigilWire

/// Processes vigil is responsible for but no longer tracks as a group leader.
///
/// - Runs a previous vigil started and never saw end (it was SIGKILLed, crashed, was
///   upgraded). Starting the tree again would run two of each (two gateways holding one
///   exchange session), so the new vigil adopts them or, where it cannot vouch for them,
///   stops them before the tree starts (`survey`, TreeHost+Adoption). A pid counts as the
///   run's only when it still leads its own process group and its start time matches the
///   journal's to within half a second, so a reused pid is never signalled.
/// - Processes that left their worker's process group (`setsid` daemons) and were
///   re-parented to vigil, the child subreaper: killed when the tree stops.
enum Leftovers {
    /// A run from the journal whose process is still alive.
    struct StaleRun {
        var run: ChildRun
        /// The run's process group (its first process's pid, alive or not).
        var pid: Int32
        /// Its `MAINPID=` process when alive (the first one may be gone).
        var mainPID: Int32? = nil
        /// The process that stands for the run: its main one, else its first.
        var processPID: Int32 { mainPID ?? pid }
    }

    /// What the previous vigil left: per child, its latest open run, alive (`current`) or
    /// not (`ended`: gone, or its pid now someone else's); and the live processes of older
    /// open runs (`extra`: a handoff's second process, a run a crash left open).
    struct Survey {
        var current: [String: StaleRun] = [:]
        /// Every open run whose process is gone (a child may have one beside its `current`).
        var ended: [ChildRun] = []
        var extra: [StaleRun] = []
        /// Ended runs whose process group lives on: the leader is gone, but processes it
        /// started (a `MAINPID=` daemon, a helper) still run. `pid` is the group.
        var remnants: [StaleRun] = []
    }

    static func survey(_ journal: Journal) -> Survey {
        guard let runs = try? journal.runs(node: nil, limit: 100_000) else { return Survey() }
        var survey = Survey()
        var open: [String: [ChildRun]] = [:]
        for run in runs where run.isRunning && run.pid != nil { open[run.node, default: []].append(run) }
        for (node, runs) in open.sorted(by: { $0.key < $1.key }) {
            var alive: [StaleRun] = []
            for run in runs.sorted(by: { $0.incarnation > $1.incarnation }) {
                let main = vouchedMainPID(run)
                if let pid = vouchedPID(run) {
                    alive.append(StaleRun(run: run, pid: pid, mainPID: main))
                } else if let main, let pgid = run.pid {
                    alive.append(StaleRun(run: run, pid: pgid, mainPID: main))  // a forking daemon
                } else {
                    survey.ended.append(run)
                    if let pgid = run.pid, groupBelongs(pgid, to: run) { survey.remnants.append(StaleRun(run: run, pid: pgid)) }
                }
            }
            // Two alive: a handoff was under way. The child is the newest READY one (an
            // incoming one not READY yet had not taken over); the other is extra.
            guard let current = alive.first(where: { $0.run.readyNanoseconds != nil }) ?? alive.first else { continue }
            survey.current[node] = current
            survey.extra += alive.filter { $0.pid != current.pid }
        }
        return survey
    }

    /// True when a live member of process group `pgid` carries the run's `VIGIL_NAME` and
    /// `VIGIL_INCARNATION` (inherited from the child vigil spawned). One is proof enough:
    /// the kernel never gives a group's number to a new group while a member lives.
    static func groupBelongs(_ pgid: Int32, to run: ChildRun) -> Bool {
        guard pgid > 1, !(kill(-pgid, 0) != 0 && errno == ESRCH), let dir = opendir("/proc") else { return false }
        defer { closedir(dir) }
        while let entry = readdir(dir) {
            let text = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
            }
            if let pid = Int32(text), let stat = ProcStat.read(pid: pid), stat.processGroup == pgid, carriesRun(pid, run) {
                return true
            }
        }
        return false
    }

    /// The run's pid if that process still exists, leads its group, and started when the
    /// journal says the run did.
    static func vouchedPID(_ run: ChildRun) -> Int32? {
        guard let pid = run.pid, pid > 1, pid != getpid(), let boot = bootTimeNanoseconds(),
              let stat = ProcStat.read(pid: pid), stat.processGroup == pid else { return nil }
        let ticks = Int64(max(sysconf(Int32(_SC_CLK_TCK)), 1))
        let started = boot + stat.startTicks * 1_000_000_000 / ticks
        // Clock ticks are 10 ms; the journal records the spawn within milliseconds of it.
        return abs(started - run.startedNanoseconds) < 500_000_000 ? pid : nil
    }

    /// The run's `MAINPID=` process if it still lives in the run's group and carries the
    /// run's name and incarnation (its start time is not in the journal; its environment,
    /// inherited from the child vigil spawned, is the proof).
    static func vouchedMainPID(_ run: ChildRun) -> Int32? {
        guard let main = run.mainPID, main > 1, let pgid = run.pid, let stat = ProcStat.read(pid: main),
              stat.processGroup == pgid, carriesRun(main, run) else { return nil }
        return main
    }

    /// Whether `pid`'s environment has the run's `VIGIL_NAME` and `VIGIL_INCARNATION`.
    static func carriesRun(_ pid: Int32, _ run: ChildRun) -> Bool {
        guard let environ = environment(of: pid) else { return false }
        let variables = environ.split(separator: 0)
        let name = Array("\(ChildEnvironment.name)=\(run.node)".utf8)
        let incarnation = Array("\(ChildEnvironment.incarnation)=\(run.incarnation)".utf8)
        return variables.contains(where: { $0.elementsEqual(name) }) && variables.contains(where: { $0.elementsEqual(incarnation) })
    }

    /// True when no process of group `pgid` is left but zombies (whose parent, not vigil,
    /// reaps them: an adopted group is no longer vigil's).
    static func groupIsGone(_ pgid: Int32) -> Bool {
        if kill(-pgid, 0) != 0 && errno == ESRCH { return true }
        guard let dir = opendir("/proc") else { return false }
        defer { closedir(dir) }
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
            }
            if let pid = Int32(name), let stat = ProcStat.read(pid: pid), stat.processGroup == pgid { return false }
        }
        return true
    }

    /// SIGTERM to each group (and SIGCONT, should it be stopped), SIGKILL to what is left
    /// after `grace`; returns once every group is gone or `grace` + 2 s have passed.
    static func stop(_ stale: [StaleRun], grace: Duration) {
        guard !stale.isEmpty else { return }
        for s in stale {
            _ = kill(-s.pid, SIGTERM)
            _ = kill(-s.pid, SIGCONT)
        }
        let start = vigil_monotonic_ns()
        var killed = false
        while stale.contains(where: { kill(-$0.pid, 0) == 0 }) {
            let waited = vigil_monotonic_ns() - start
            if !killed && waited >= grace.nanoseconds {
                for s in stale { _ = kill(-s.pid, SIGKILL) }
                killed = true
            }
            if waited >= grace.nanoseconds + 2_000_000_000 { return }
            usleep(10_000)
        }
    }

    /// Children of vigil that lead no tracked group: orphans re-parented to vigil after
    /// leaving their worker's process group. SIGKILLs and reaps them; returns their pids.
    static func killAdoptedOrphans(except tracked: Set<Int32>) -> [Int32] {
        let me = getpid()
        var found: [Int32] = []
        guard let dir = opendir("/proc") else { return [] }
        defer { closedir(dir) }
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
            }
            guard let pid = Int32(name), !tracked.contains(pid), let stat = ProcStat.read(pid: pid),
                  stat.parent == me else { continue }
            found.append(pid)
        }
        for pid in found {
            _ = kill(pid, SIGKILL)
            var status: Int32 = 0
            _ = waitpid(pid, &status, 0)
        }
        return found
    }

    /// The NUL-separated environment a process started with (up to 256 KiB).
    static func environment(of pid: Int32) -> [UInt8]? {
        let fd = open("/proc/\(pid)/environ", O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 16384)
        while bytes.count < 256 * 1024 {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n <= 0 { break }
            bytes += chunk[0..<n]
        }
        return bytes
    }

    /// Boot time on the realtime clock, to the microsecond: realtime minus the time since
    /// boot (/proc/stat's btime is truncated to whole seconds, too coarse to match runs).
    static func bootTimeNanoseconds() -> Int64? {
        var real = timespec(), boot = timespec()
        guard clock_gettime(CLOCK_REALTIME, &real) == 0, clock_gettime(CLOCK_BOOTTIME, &boot) == 0 else { return nil }
        return (Int64(real.tv_sec) - Int64(boot.tv_sec)) * 1_000_000_000 + Int64(real.tv_nsec) - Int64(boot.tv_nsec)
    }
}

/// The fields of /proc/PID/stat vigil needs.
struct ProcStat {
    var parent: Int32
    var processGroup: Int32
    var cpuTicks: UInt64
    var startTicks: Int64

    static func read(pid: Int32) -> ProcStat? {
        guard let text = readSmallFile("/proc/\(pid)/stat"), let close = text.lastIndex(of: ")") else { return nil }
        // After the command (which may hold spaces and parentheses): field 3 (state) on.
        let f = text[text.index(after: close)...].split(separator: " ")
        guard f.count > 20, let ppid = Int32(f[1]), let pgrp = Int32(f[2]), let utime = UInt64(f[11]),
              let stime = UInt64(f[12]), let start = Int64(f[19]) else { return nil }
        if f[0] == "Z" { return nil }
        return ProcStat(parent: ppid, processGroup: pgrp, cpuTicks: utime + stime, startTicks: start)
    }
}
