import CShim
@preconcurrency import Glibc
import VigilHost

/// Where the binaries and the anchor scripts are.
struct Layout {
    var buildDirectory: String
    var repository: String
    var sharedBench: String
    var vigil: String { buildDirectory + "/vigil" }
    /// The plain C worker. SwiftPM links even a C executable target with the Swift runtime
    /// (libswiftCore, libstdc++: about 2 ms of dynamic loading per start), so the benchmark
    /// compiles Sources/vigil-bench-worker/main.c itself, static, as shared/bench does.
    var cWorker: String
    var sdkWorker: String { buildDirectory + "/vigil-bench-sdk-worker" }
}

/// One `vigil up` of a generated topology, in a directory of its own (runtime and state
/// directories, vigil's output), started by us so we can read its journal and /proc.
final class VigilRun {
    let directory: String
    let pid: Int32
    let startedWall: Int64
    let startedMono: Int64
    private(set) var journal: Journal?
    /// Our end of the NOTIFY_SOCKET vigil was given (a stand-in for systemd), or -1.
    let notifyFD: Int32
    private(set) var readyMono: Int64?
    var stopped = false

    /// Writes `topology` to DIR/topology.yaml and runs vigil on it. With `notify`, vigil gets
    /// a NOTIFY_SOCKET of ours, as under systemd (Deploy/vigil.service: Type=notify).
    init(layout: Layout, directory: String, topology: String, notify: Bool = false, extraEnvironment: [String: String] = [:]) {
        self.directory = directory
        makeDirectory(directory)
        writeText(directory + "/topology.yaml", topology)
        var env = processEnvironment()
        for k in ["NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES", "VIGIL_FD"] {
            env.removeValue(forKey: k)
        }
        env["VIGIL_RUNTIME_DIR"] = directory + "/run"
        env["VIGIL_STATE_DIR"] = directory + "/state"
        for (k, v) in extraEnvironment { env[k] = v }
        if notify {
            let path = directory + "/systemd-notify.sock"
            let fd = vigil_notify_socket(path)
            if fd < 0 { fatal("cannot make a notify socket at \(path)") }
            _ = vigil_set_nonblocking(fd, 1)
            notifyFD = fd
            env["NOTIFY_SOCKET"] = path
        } else {
            notifyFD = -1
        }
        startedWall = wallNow()
        startedMono = monoNow()
        guard let p = spawn([layout.vigil, "up", directory + "/topology.yaml"], environment: env, output: directory + "/vigil.out") else {
            fatal("cannot start \(layout.vigil)")
        }
        pid = p
    }

    var journalPath: String { directory + "/state/journal.db" }

    /// The journal, opened read-only once vigil created it.
    func openJournal(timeoutSeconds: Double = 10) -> Journal {
        if let journal { return journal }
        let deadline = monoNow() + Int64(timeoutSeconds * 1e9)
        while true {
            if access(journalPath, F_OK) == 0, let j = try? Journal(readOnlyPath: journalPath) {
                journal = j
                return j
            }
            if !isAlive(pid) || monoNow() > deadline { fatal("vigil did not start (see \(directory)/vigil.out)") }
            sleepMilliseconds(5)
        }
    }

    /// Reads what vigil sent to its NOTIFY_SOCKET; notes when READY=1 arrived.
    func drainNotify() {
        guard notifyFD >= 0 else { return }
        var buf = [UInt8](repeating: 0, count: 4096)
        while true {
            var peer: pid_t = 0, uid: uid_t = 0
            var fds = [Int32](repeating: -1, count: 16)
            var nfds: Int32 = 0
            let n = buf.withUnsafeMutableBufferPointer { b in
                fds.withUnsafeMutableBufferPointer { f in
                    vigil_notify_receive(notifyFD, b.baseAddress, b.count, &peer, &uid, f.baseAddress, 16, &nfds)
                }
            }
            if n < 0 { return }
            for i in 0..<Int(nfds) where fds[i] >= 0 { close(fds[i]) }
            let text = String(decoding: buf[0..<min(buf.count, max(0, n))], as: UTF8.self)
            if readyMono == nil && text.split(separator: "\n").contains("READY=1") { readyMono = monoNow() }
        }
    }

    /// Waits until READY=1 arrived (notify) and returns how long after the start, in ns.
    func waitReady(timeoutSeconds: Double) -> Int64? {
        let deadline = monoNow() + Int64(timeoutSeconds * 1e9)
        while readyMono == nil {
            var p = pollfd(fd: notifyFD, events: Int16(POLLIN), revents: 0)
            _ = poll(&p, 1, 50)
            drainNotify()
            if !isAlive(pid) || monoNow() > deadline { return nil }
        }
        return readyMono! - startedMono
    }

    /// Sleeps, reading the notify socket now and then so vigil never finds it full.
    func idle(seconds: Double) {
        let end = monoNow() + Int64(seconds * 1e9)
        while monoNow() < end {
            drainNotify()
            sleepNanoseconds(min(100_000_000, end - monoNow()))
        }
        drainNotify()
    }

    /// The newest runs (child lifetimes) in the journal.
    func runs(node: String? = nil, limit: Int) -> [ChildRun] {
        (try? openJournal().runs(node: node, limit: limit)) ?? []
    }

    /// Waits until `node`'s run of incarnation > `after` is READY; nil on timeout.
    func waitRun(node: String, after incarnation: UInt64, timeoutSeconds: Double, pollMicroseconds: Int64 = 200) -> (new: ChildRun, old: ChildRun?)? {
        let deadline = monoNow() + Int64(timeoutSeconds * 1e9)
        while true {
            let r = runs(node: node, limit: 4)
            if let new = r.last(where: { $0.incarnation > incarnation && $0.readyNanoseconds != nil }) {
                let old = r.last(where: { $0.incarnation == incarnation })
                if old?.exitedNanoseconds != nil || old == nil { return (new, old) }
            }
            if monoNow() > deadline || !isAlive(pid) { return nil }
            sleepNanoseconds(pollMicroseconds * 1000)
        }
    }

    /// Every worker pid vigil ever journaled (for cleanup and the "nothing left" check).
    func allWorkerPIDs() -> [Int32] {
        runs(limit: 1_000_000).compactMap(\.pid)
    }

    /// SIGTERM to vigil; returns ns until vigil exited and none of its workers is left.
    @discardableResult
    func stop(timeoutSeconds: Double = 60) -> (nanoseconds: Int64, leftover: Int, status: Int32)? {
        guard !stopped else { return nil }
        let pids = allWorkerPIDs()
        let t0 = monoNow()
        kill(pid, SIGTERM)
        // Keep reading the notify socket as systemd would: vigil's sd_notify blocks on a
        // full one (its STATUS= lines while it stops).
        var status: Int32?
        let deadline = monoNow() + Int64(timeoutSeconds * 1e9)
        while status == nil && monoNow() < deadline {
            drainNotify()
            status = waitChild(pid, timeoutSeconds: 0.002)
        }
        stopped = true
        var left = pids.filter { isAlive($0) && executable(of: $0) != nil }
        // vigil waits for every group to be gone before it exits, so this is normally empty.
        while !left.isEmpty && monoNow() - t0 < Int64(timeoutSeconds * 1e9) {
            sleepMilliseconds(1)
            left = left.filter { isAlive($0) && executable(of: $0) != nil }
        }
        let t1 = monoNow()
        if status == nil { kill(pid, SIGKILL); _ = waitChild(pid, timeoutSeconds: 5) }
        killLeftovers(pids)
        if notifyFD >= 0 { close(notifyFD) }
        journal?.close()
        return (t1 - t0, left.count, status ?? -1)
    }

    /// SIGKILL whatever of ours is still running (after a failure).
    func abandon() {
        guard !stopped else { return }
        let pids = allWorkerPIDs()
        kill(pid, SIGKILL)
        _ = waitChild(pid, timeoutSeconds: 5)
        stopped = true
        killLeftovers(pids)
        journal?.close()
    }

    /// Workers die with vigil (PDEATHSIG); this catches any that did not. Only pids the
    /// journal lists that still run one of our worker binaries are killed.
    private func killLeftovers(_ pids: [Int32]) {
        for p in pids where isAlive(p) {
            if let exe = executable(of: p), exe.hasSuffix("vigil-bench-worker") || exe.hasSuffix("vigil-bench-sdk-worker") {
                kill(p, SIGKILL)
            }
        }
    }
}

/// A FIFO the workers append their "<pid> <ns>" start line to, read without polling.
final class StartLog {
    let path: String
    let fd: Int32
    private var pending: [UInt8] = []

    init(path: String) {
        self.path = path
        unlink(path)
        guard mkfifo(path, 0o600) == 0 else { fatal("mkfifo \(path)") }
        // Read-write, so there is always a writer and a read never sees end of file.
        fd = open(path, O_RDWR | O_CLOEXEC)
        if fd < 0 { fatal("open \(path)") }
    }

    /// The next "<pid> <ns>" line, or nil after the timeout.
    func next(timeoutMilliseconds: Int32) -> (pid: Int32, wall: Int64)? {
        while true {
            if let nl = pending.firstIndex(of: 10) {
                let line = String(decoding: pending[..<nl], as: UTF8.self)
                pending.removeSubrange(...nl)
                let f = line.split(separator: " ")
                if f.count >= 2, let p = Int32(f[0]), let t = Int64(f[1]) { return (p, t) }
                continue
            }
            var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let r = poll(&p, 1, timeoutMilliseconds)
            if r < 0 && errno == EINTR { continue }
            if r <= 0 { return nil }
            var buf = [UInt8](repeating: 0, count: 4096)
            let n = buf.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n > 0 { pending += buf[0..<n] }
        }
    }

    /// Forgets what was written so far.
    func drain() {
        _ = vigil_set_nonblocking(fd, 1)
        var buf = [UInt8](repeating: 0, count: 4096)
        while buf.withUnsafeMutableBytes({ read(fd, $0.baseAddress, $0.count) }) > 0 {}
        _ = vigil_set_nonblocking(fd, 0)
        pending.removeAll()
    }

    deinit {
        close(fd)
        unlink(path)
    }
}
