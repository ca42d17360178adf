@_exported import VigilWire
import CShim
@preconcurrency import Glibc
import Synchronization

/// A worker process supervised by vigil: the one object a worker's `main` needs.
///
///     let worker = Worker.connect()
///     // ... initialise ...
///     worker.ready()
///     while worker.sleep(for: .seconds(1)) { ... }
///     worker.log("stopping")
///
/// `connect()` reads the environment vigil sets (`VigilWire.ChildEnvironment`). Without
/// `VIGIL_FD` the worker runs standalone (for running by hand): it logs that, and frames
/// go nowhere. Connected, it asks the kernel for SIGKILL when vigil dies
/// (`PR_SET_PDEATHSIG`), starts one background thread that beats the heartbeat and reads
/// frames from vigil, and exits the process with status 70 as soon as the channel closes:
/// a worker never outlives vigil.
///
/// Every method is thread-safe. Deliberately free of Foundation: it costs every restart
/// milliseconds of dynamic loading.
public final class Worker: Sendable {
    /// Who sends heartbeats.
    public enum HeartbeatMode: Sendable {
        /// The SDK's background thread beats every `heartbeatInterval`. This proves the
        /// process is alive and scheduled, not that the main loop makes progress.
        case automatic
        /// The worker calls `heartbeat()` itself, from the loop whose progress it vouches for.
        case manual
    }

    /// Exit status when the channel to vigil closes (EX_SOFTWARE).
    public static let channelClosedExitCode: Int32 = 70
    /// Exit status when the environment is unusable (EX_CONFIG).
    public static let badEnvironmentExitCode: Int32 = 78

    /// The name in the tree (`VIGIL_NAME`), or the executable's name when standalone.
    public let name: String
    /// How many times vigil has started this child (`VIGIL_INCARNATION`), 1 when unknown.
    public let incarnation: Int
    /// The heartbeat period (`VIGIL_HEARTBEAT_MS`, default 1000 ms).
    public let heartbeatInterval: Duration
    public let heartbeatMode: HeartbeatMode
    /// `VIGIL_RUNTIME_DIR` (sockets), if set and non-empty.
    public let runtimeDirectory: String?
    /// `VIGIL_STATE_DIR` (databases), if set and non-empty.
    public let stateDirectory: String?
    /// The channel to vigil, or -1 when standalone.
    public let channelFD: Int32

    private let sendLock = Mutex<Void>(())
    private let handler = Mutex<(@Sendable (Frame) -> Void)?>(nil)
    private let logPrefix: [UInt8]

    /// True when running without vigil (no `VIGIL_FD`).
    public var isStandalone: Bool { channelFD < 0 }

    /// True once SIGTERM or SIGINT arrived: finish up and return from `main`.
    public var isStopping: Bool { stopRequested.load(ordering: .sequentiallyConsistent) }

    /// Reads the environment, installs the stop handlers and, under vigil, starts the
    /// channel thread. Exits the process (status 70) if vigil is already gone, and with
    /// status 78 if `VIGIL_FD` is set but not a usable channel.
    public static func connect(heartbeat: HeartbeatMode = .automatic) -> Worker {
        installStopHandlers()
        let worker = Worker(heartbeat: heartbeat)
        guard !worker.isStandalone else {
            worker.log("standalone: \(ChildEnvironment.channelFD) is not set, so no vigil channel; frames are not sent")
            return worker
        }
        // Die with vigil. PDEATHSIG fires when the parent *thread* exits, and not at all if
        // the parent died before the prctl: check the parent afterwards.
        let rc = vigil_set_pdeathsig(SIGKILL)
        if rc < 0 { worker.log("warning: PR_SET_PDEATHSIG failed: \(describe(errno: -rc))") }
        if vigil_getppid() == 1 {
            worker.log("parent already gone before the worker started: exiting")
            _exit(channelClosedExitCode)
        }
        worker.startChannelThread()
        return worker
    }

    private init(heartbeat: HeartbeatMode) {
        let env = Worker.environment
        let argv0 = CommandLine.arguments.first ?? "worker"
        let base = argv0.split(separator: "/").last.map(String.init) ?? argv0
        var name = env(ChildEnvironment.name).flatMap { $0.isEmpty ? nil : $0 } ?? base
        name = String(name.map { $0.isNewline ? " " : $0 })
        self.name = name
        self.logPrefix = Array("\(name)[\(getpid())]: ".utf8)
        self.heartbeatMode = heartbeat
        self.runtimeDirectory = env(ChildEnvironment.runtimeDirectory).flatMap { $0.isEmpty ? nil : $0 }
        self.stateDirectory = env(ChildEnvironment.stateDirectory).flatMap { $0.isEmpty ? nil : $0 }

        var problems: [String] = []
        if let s = env(ChildEnvironment.incarnation) {
            if let n = Int(s), n >= 1 { incarnation = n } else { incarnation = 1; problems.append("ignoring bad \(ChildEnvironment.incarnation)=\(s)") }
        } else {
            incarnation = 1
        }
        if let s = env(ChildEnvironment.heartbeatMilliseconds) {
            if let ms = Int64(s), ms >= 1, ms <= 3_600_000 {
                heartbeatInterval = .milliseconds(ms)
            } else {
                heartbeatInterval = .milliseconds(1000)
                problems.append("ignoring bad \(ChildEnvironment.heartbeatMilliseconds)=\(s), using 1000")
            }
        } else {
            heartbeatInterval = .milliseconds(1000)
        }
        var fd: Int32 = -1
        if let s = env(ChildEnvironment.channelFD) {
            guard let n = Int32(s), n >= 0, Worker.isSeqpacketSocket(n) else {
                Worker.write(line: logPrefix + Array("\(ChildEnvironment.channelFD)=\(s) is not a SOCK_SEQPACKET socket: exiting".utf8))
                _exit(Worker.badEnvironmentExitCode)
            }
            _ = fcntl(n, F_SETFD, FD_CLOEXEC)  // never leak the channel into our own children
            fd = n
        }
        self.channelFD = fd
        for p in problems { log(p) }
    }

    // MARK: - Frames to vigil

    /// Tells vigil the worker is initialised and serving.
    public func ready() { send(.ready, droppable: false) }

    /// One heartbeat. Only needed with `.manual` heartbeats (harmless otherwise).
    public func heartbeat() { send(.heartbeat, droppable: true) }

    /// A one-line human status for `vigil status` (newlines become spaces; at most 1 KiB).
    public func status(_ text: String) {
        var line = String(text.map { $0.isNewline ? " " : $0 })
        if line.utf8.count > 1024 {
            var cut = ""
            for c in line {
                if cut.utf8.count + String(c).utf8.count > 1021 { break }
                cut.append(c)
            }
            line = cut + "..."
        }
        send(.status(line), droppable: true)
    }

    /// Tells vigil the worker is shutting down on purpose.
    public func stopping() { send(.stopping, droppable: false) }

    /// Sets the handler for frames from vigil (`.sample`, `.notice`). It runs on the SDK's
    /// channel thread, one frame at a time; keep it short and protect shared state.
    public func onMessage(_ body: @escaping @Sendable (Frame) -> Void) {
        handler.withLock { $0 = body }
    }

    /// Sends one frame. Droppable frames (heartbeat, status) are not worth blocking for
    /// when vigil is not reading; READY and STOPPING are. A send to a vigil that is gone
    /// fails quietly: the channel thread notices the close and exits the process.
    @discardableResult
    func send(_ frame: Frame, droppable: Bool) -> Bool {
        guard channelFD >= 0 else { return false }
        let bytes: [UInt8]
        do { bytes = try frame.encoded() } catch {
            log("cannot encode frame: \(error)")
            return false
        }
        let flags = Int32(MSG_NOSIGNAL) | (droppable ? Int32(MSG_DONTWAIT) : 0)
        return sendLock.withLock { _ in
            bytes.withUnsafeBytes { raw in
                while true {
                    let n = Glibc.send(channelFD, raw.baseAddress, raw.count, flags)
                    if n >= 0 { return true }
                    if errno == EINTR { continue }
                    return false
                }
            }
        }
    }

    // MARK: - Logging

    /// Writes one line to stderr, prefixed with `name[pid]: `, in a single write(2) so lines
    /// of concurrent workers do not interleave. Newlines in `message` become spaces.
    public func log(_ message: String) {
        var line = logPrefix
        line.reserveCapacity(line.count + message.utf8.count + 1)
        for b in message.utf8 { line.append(b == 10 || b == 13 ? 32 : b) }
        Worker.write(line: line)
    }

    static func write(line: [UInt8]) {
        var bytes = line
        bytes.append(10)
        bytes.withUnsafeBytes { raw in
            var offset = 0
            while offset < raw.count {
                let n = Glibc.write(2, raw.baseAddress! + offset, raw.count - offset)
                if n < 0 { if errno == EINTR { continue } else { return } }
                offset += n
            }
        }
    }

    // MARK: - Waiting

    /// Sleeps for `duration`, or less if a stop signal arrives. Returns `true` if the worker
    /// should go on, `false` once it is stopping (so `while worker.sleep(for:) { }` is a
    /// main loop).
    @discardableResult
    public func sleep(for duration: Duration) -> Bool {
        _ = poll(fds: [], timeout: duration)
        return !isStopping
    }

    /// Waits until one of `fds` is readable (or hung up, or in error: a read will tell),
    /// the timeout passes, or a stop signal arrives. Returns the ready fds in the order
    /// given; empty on timeout or stop (check `isStopping`). A negative timeout waits forever.
    public func poll(fds: [Int32], timeout: Duration) -> [Int32] {
        let wake = wakeReadFD.load(ordering: .relaxed)
        var set = fds.map { pollfd(fd: $0, events: Int16(POLLIN), revents: 0) }
        set.append(pollfd(fd: wake, events: Int16(POLLIN), revents: 0))
        let forever = timeout < .zero
        let deadline = vigil_monotonic_ns().addingReportingOverflow(timeout.wholeNanoseconds).partialValue
        while true {
            if isStopping { return [] }
            let remaining = forever ? Int32(-1) : pollMilliseconds(.nanoseconds(deadline - vigil_monotonic_ns()))
            let n = Glibc.poll(&set, nfds_t(set.count), remaining)
            if n < 0 {
                if errno == EINTR { continue }
                log("poll failed: \(describe(errno: errno))")
                return []
            }
            if isStopping { return [] }
            if n == 0 {
                if forever || vigil_monotonic_ns() < deadline { continue }
                return []
            }
            let readyMask = Int16(POLLIN) | Int16(POLLHUP) | Int16(POLLERR) | Int16(POLLNVAL)
            let ready = set.dropLast().filter { $0.revents & readyMask != 0 }.map(\.fd)
            if !ready.isEmpty { return ready }
        }
    }

    /// Waits for one fd: true when it is readable, false on timeout or stop.
    public func wait(fd: Int32, timeout: Duration) -> Bool {
        !poll(fds: [fd], timeout: timeout).isEmpty
    }

    /// The signal that asked this worker to stop, or nil.
    public var stopSignal: Int32? {
        let s = stopSignalNumber.load(ordering: .relaxed)
        return s == 0 ? nil : s
    }

    // MARK: - The channel thread

    private func startChannelThread() {
        let context = Unmanaged.passRetained(self).toOpaque()
        var thread = pthread_t()
        let rc = pthread_create(&thread, nil, { raw in
            let worker = Unmanaged<Worker>.fromOpaque(raw!).takeRetainedValue()
            // Stop signals go to the main thread, whose waits they are meant to cut short.
            var mask = sigset_t()
            sigemptyset(&mask)
            sigaddset(&mask, SIGTERM)
            sigaddset(&mask, SIGINT)
            pthread_sigmask(SIG_BLOCK, &mask, nil)
            worker.channelLoop()
            return nil
        }, context)
        guard rc == 0 else {
            log("cannot start the channel thread: \(describe(errno: rc)): exiting")
            _exit(Worker.badEnvironmentExitCode)
        }
        pthread_detach(thread)
    }

    private func channelLoop() {
        let interval = heartbeatInterval.wholeNanoseconds
        var nextBeat = vigil_monotonic_ns()
        var buffer = [UInt8](repeating: 0, count: Frame.maximumSize + 1)
        var fds = [pollfd(fd: channelFD, events: Int16(POLLIN), revents: 0)]
        while true {
            var timeout: Int32 = -1
            if heartbeatMode == .automatic {
                let now = vigil_monotonic_ns()
                if now >= nextBeat {
                    heartbeat()
                    nextBeat += interval
                    if nextBeat <= now { nextBeat = now + interval }  // fell behind: do not burst
                }
                timeout = pollMilliseconds(.nanoseconds(nextBeat - now))
            }
            fds[0].revents = 0
            let n = Glibc.poll(&fds, 1, timeout)
            if n < 0 {
                if errno == EINTR { continue }
                channelClosed("poll on the channel failed: \(describe(errno: errno))")
                return
            }
            if n == 0 { continue }
            let got = buffer.withUnsafeMutableBytes { raw in
                recv(channelFD, raw.baseAddress, raw.count, Int32(MSG_DONTWAIT) | Int32(MSG_TRUNC))
            }
            if got == 0 {
                channelClosed("channel to vigil closed")
                return
            }
            if got < 0 {
                if errno == EAGAIN || errno == EINTR { continue }
                channelClosed("channel to vigil failed: \(describe(errno: errno))")
                return
            }
            guard got <= Frame.maximumSize else {
                log("dropping a \(got)-byte frame from vigil (limit \(Frame.maximumSize))")
                continue
            }
            do {
                let frame = try Frame(decoding: buffer[0..<got])
                if let body = handler.withLock({ $0 }) { body(frame) }
            } catch {
                log("dropping an undecodable frame from vigil: \(error)")
            }
        }
    }

    /// Vigil is gone. A worker never outlives vigil: exit now, unless the worker is already
    /// stopping on request, in which case its main thread is finishing and exits by itself.
    private func channelClosed(_ why: String) {
        if isStopping {
            log("\(why) while stopping; letting the shutdown finish")
            return
        }
        log("\(why): vigil is gone, exiting with status \(Worker.channelClosedExitCode)")
        _exit(Worker.channelClosedExitCode)
    }

    // MARK: - Environment

    /// The value of an environment variable, or nil.
    public static func environment(_ key: String) -> String? {
        guard let p = getenv(key) else { return nil }
        return String(cString: p)
    }

    private static func isSeqpacketSocket(_ fd: Int32) -> Bool {
        var type: Int32 = 0
        var length = socklen_t(MemoryLayout<Int32>.size)
        guard getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &length) == 0 else { return false }
        return type == Int32(SOCK_SEQPACKET.rawValue)
    }
}

/// `strerror` text for an errno value.
public func describe(errno code: Int32) -> String {
    String(cString: strerror(code))
}
