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
/// go nowhere. Connected, it starts one background thread that beats the heartbeat and
/// reads frames from vigil.
///
/// When vigil dies, the worker does not die with it if vigil gave it an adoption window
/// (`VIGIL_ADOPT_MS`, the topology's `adopt_window`): it goes on working, keeps what it
/// sends meanwhile (the latest checkpoint, READY, reports), and connects to the next
/// vigil's adoption socket (`VIGIL_ADOPT_SOCKET`) as soon as it exists; the new vigil
/// checks who it is and takes it back, and the kept frames go to it first. Without a
/// window, or when it passes with no vigil, the worker exits with status 70: a worker never
/// runs unsupervised for long. (Without a window it also asks the kernel for SIGKILL when
/// vigil dies, `PR_SET_PDEATHSIG`.)
///
/// State handoff: vigil's first frame to a new incarnation is always `.restore`, the last
/// checkpoint of this child (or none). `connect()` waits for it (at most
/// `restoreTimeout`), so `restoredState` is known before the worker initialises. The worker
/// sends checkpoints with `checkpoint(_:)` whenever its state changes materially, and
/// answers vigil's `.checkpointRequest` (a planned handoff) through `onCheckpointRequest`.
///
/// Frames from vigil are handled on the channel thread, one at a time. A frame goes to its
/// specific handler when one is set (`onCheckpointRequest`, `onRestartRequest`, `onNotice`,
/// `onCheckpointRefused`), and to `onMessage` otherwise, so a worker written against
/// `onMessage` alone still sees every frame. A frame no handler takes yet is kept (up
/// to 64) and handed over when its handler is set, so nothing vigil says between
/// `connect()` and the handlers being set is lost.
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
    /// How long `connect()` waits for vigil's `.restore` frame.
    public static let restoreTimeout: Duration = .seconds(2)
    /// The largest state `checkpoint(_:)` can send: one frame, less its kind byte. vigil
    /// may keep a lower limit per worker (`max_checkpoint_bytes`) and refuse larger ones.
    public static let maximumCheckpointSize = Frame.maximumSize - 1

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
    /// The channel to vigil: -1 when standalone, and while waiting to be adopted by a new
    /// vigil (see `adoptWindow`).
    public var channelFD: Int32 { channel.load(ordering: .acquiring) }
    /// How long this worker waits for a new vigil when the channel closes; zero: it exits.
    public let adoptWindow: Duration
    /// Where a new vigil takes workers back, if vigil said.
    let adoptSocket: String?
    /// The state the previous incarnation checkpointed, as vigil handed it over in its
    /// first frame. nil when there is no checkpoint, when standalone, or when no `.restore`
    /// came within `restoreTimeout` (logged; `restoreReceived` tells the cases apart).
    /// Decode it with `StateReader`.
    public let restoredState: [UInt8]?
    /// True when vigil's `.restore` frame arrived in time. False standalone, or when vigil
    /// said nothing for `restoreTimeout`: then the last checkpoint is unknown rather than
    /// absent, and a worker holding money should not assume it starts flat.
    public let restoreReceived: Bool

    /// Held for every send; guards the frames kept while no vigil listens (see `park`).
    private let sendLock = Mutex<[Frame]>([])
    let channel: Atomic<Int32>
    private let connected: Bool
    /// The last checkpoint sent on the channel: sent again to a vigil that adopts this
    /// worker, since the one that died may not have read it from its socket yet.
    private let lastCheckpoint = Mutex<[UInt8]?>(nil)
    /// READY was said once: said again to a vigil that adopts this worker, in case the one
    /// that died never journaled it (the new one would otherwise wait for it in vain).
    private let saidReady = Atomic<Bool>(false)
    private let handlers = Mutex<Handlers>(Handlers())
    private let logPrefix: [UInt8]
    /// Frames no handler took yet, kept (at most `keptFramesLimit`) until one that takes
    /// them is set, then handed to it on the channel thread in arrival order. They are
    /// normal at start-up: vigil's greeting (`safe_mode=on` for a tree in safe mode, a
    /// liquidation in progress) follows `.restore` at once, usually before `main` has set
    /// its handlers, and must not be lost.
    private let kept: Mutex<[Frame]>
    static let keptFramesLimit = 64
    /// Self-pipe that wakes the channel thread when a handler is set while `kept` holds
    /// frames; -1 when standalone.
    private let wakeRead: Int32
    private let wakeWrite: Int32

    /// The handlers for frames from vigil; nil ones fall through to `message`.
    private struct Handlers {
        var message: (@Sendable (Frame) -> Void)?
        var checkpointRequest: (@Sendable () -> [UInt8])?
        var restartRequest: (@Sendable (RestartRequest) -> Verdict)?
        var notice: (@Sendable (String, String) -> Void)?
        var checkpointRefused: (@Sendable (String) -> Void)?
    }

    /// True when running without vigil (no `VIGIL_FD`).
    public var isStandalone: Bool { !connected }

    /// True while a vigil holds this worker's channel, so what `checkpoint(_:)` sends is
    /// kept durably. False standalone, and while waiting for a new vigil to adopt it: a
    /// checkpoint is then only in this process's memory, and an order written ahead of it
    /// would not survive this process being killed meanwhile. Capital-safe workers send no
    /// new order while it is false.
    public var isSupervised: Bool { channelFD >= 0 }

    /// Whether a closed channel means waiting for a new vigil rather than exiting.
    var isAdoptable: Bool { adoptWindow > .zero && adoptSocket != nil }

    /// True once SIGTERM or SIGINT arrived: finish up and return from `main`.
    public var isStopping: Bool { stopRequested.load(ordering: .sequentiallyConsistent) }

    /// Reads the environment, installs the stop handlers and, under vigil, waits for the
    /// `.restore` frame (at most `restoreTimeout`; it is normally already there) and starts
    /// the channel thread. Exits the process (status 70) if vigil is already gone, and with
    /// status 78 if `VIGIL_FD` is set but not a usable channel.
    public static func connect(heartbeat: HeartbeatMode = .automatic) -> Worker {
        installStopHandlers()
        let worker = Worker(heartbeat: heartbeat)
        guard !worker.isStandalone else {
            worker.log("standalone: \(ChildEnvironment.channelFD) is not set, so no vigil channel; frames are not sent")
            return worker
        }
        if worker.isAdoptable {
            // Outliving vigil is the point: a write to a log pipe nobody reads any more
            // must fail (EPIPE), not kill the worker.
            signal(SIGPIPE, SIG_IGN)
        } else {
            // Die with vigil. PDEATHSIG fires when the parent *thread* exits, and not at all
            // if the parent died before the prctl: check the parent afterwards.
            let rc = vigil_set_pdeathsig(SIGKILL)
            if rc < 0 { worker.log("warning: PR_SET_PDEATHSIG failed: \(describe(errno: -rc))") }
        }
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
        var window = Duration.zero
        if let s = env(ChildEnvironment.adoptWindowMilliseconds) {
            if let ms = Int64(s), ms >= 0, ms <= 86_400_000 { window = .milliseconds(ms) } else {
                problems.append("ignoring bad \(ChildEnvironment.adoptWindowMilliseconds)=\(s): this worker exits when vigil does")
            }
        }
        adoptWindow = window
        adoptSocket = env(ChildEnvironment.adoptSocket).flatMap { $0.isEmpty ? nil : $0 }
        var fd: Int32 = -1
        if let s = env(ChildEnvironment.channelFD) {
            guard let n = Int32(s), n >= 0, Worker.isSeqpacketSocket(n) else {
                Worker.write(line: logPrefix + Array("\(ChildEnvironment.channelFD)=\(s) is not a SOCK_SEQPACKET socket: exiting".utf8))
                _exit(Worker.badEnvironmentExitCode)
            }
            _ = fcntl(n, F_SETFD, FD_CLOEXEC)  // never leak the channel into our own children
            fd = n
        }
        self.channel = Atomic(fd)
        self.connected = fd >= 0
        var wake: [Int32] = [-1, -1]
        if fd >= 0 {
            let handoff = Worker.awaitRestore(fd: fd, logPrefix: logPrefix)
            restoreReceived = handoff.received
            restoredState = handoff.state
            kept = Mutex(handoff.early)
            if pipe(&wake) == 0 {
                for w in wake {
                    _ = fcntl(w, F_SETFD, FD_CLOEXEC)
                    _ = fcntl(w, F_SETFL, fcntl(w, F_GETFL) | O_NONBLOCK)
                }
            } else {
                wake = [-1, -1]
            }
        } else {
            restoreReceived = false
            restoredState = nil
            kept = Mutex([])
        }
        wakeRead = wake[0]
        wakeWrite = wake[1]
        for p in problems { log(p) }
    }

    /// Reads frames until vigil's `.restore` (its first frame by contract) or the timeout.
    /// Frames before it are kept for the handlers. Exits (status 70) if the channel closes.
    private static func awaitRestore(fd: Int32, logPrefix: [UInt8]) -> (received: Bool, state: [UInt8]?, early: [Frame]) {
        func log(_ message: String) { write(line: logPrefix + Array(message.utf8)) }
        let deadline = vigil_monotonic_ns() + restoreTimeout.wholeNanoseconds
        var buffer = [UInt8](repeating: 0, count: Frame.maximumSize + 1)
        var early: [Frame] = []
        var set = [pollfd(fd: fd, events: Int16(POLLIN), revents: 0)]
        while true {
            let left = deadline - vigil_monotonic_ns()
            if left <= 0 {
                log("no restore frame from vigil within \(restoreTimeout): starting without restored state (the last checkpoint, if any, is unknown)")
                return (false, nil, early)
            }
            set[0].revents = 0
            let n = Glibc.poll(&set, 1, pollMilliseconds(.nanoseconds(left)))
            if n < 0 {
                if errno == EINTR { continue }  // a stop signal: still take the handoff
                log("poll on the channel failed while waiting for the restore frame: \(describe(errno: errno))")
                return (false, nil, early)
            }
            if n == 0 { continue }
            let got = buffer.withUnsafeMutableBytes { raw in
                recv(fd, raw.baseAddress, raw.count, Int32(MSG_DONTWAIT) | Int32(MSG_TRUNC))
            }
            if got == 0 {
                log("channel to vigil closed before the restore frame: vigil is gone, exiting with status \(channelClosedExitCode)")
                _exit(channelClosedExitCode)
            }
            if got < 0 {
                if errno == EAGAIN || errno == EINTR { continue }
                log("channel to vigil failed before the restore frame: \(describe(errno: errno)): exiting with status \(channelClosedExitCode)")
                _exit(channelClosedExitCode)
            }
            guard got <= Frame.maximumSize else {
                log("dropping a \(got)-byte frame from vigil (limit \(Frame.maximumSize))")
                continue
            }
            let frame: Frame
            do { frame = try Frame(decoding: buffer[0..<got]) } catch {
                log("dropping an undecodable frame from vigil: \(error)")
                continue
            }
            if case .restore(let state) = frame { return (true, state, early) }
            if early.count < 16 {
                log("frame \(frame.kindName) came before vigil's restore frame: kept for the handlers")
                early.append(frame)
            } else {
                log("frame \(frame.kindName) came before vigil's restore frame: dropped (16 kept already)")
            }
        }
    }

    // MARK: - Frames to vigil

    /// Tells vigil the worker is initialised and serving.
    public func ready() {
        saidReady.store(true, ordering: .releasing)
        send(.ready, droppable: false)
    }

    /// One heartbeat. Only needed with `.manual` heartbeats (harmless otherwise).
    public func heartbeat() { send(.heartbeat, droppable: true) }

    /// A one-line human status for `vigil status` (newlines become spaces; at most 1 KiB).
    public func status(_ text: String) {
        send(.status(Worker.clip(String(text.map { $0.isNewline ? " " : $0 }), bytes: 1024)), droppable: true)
    }

    /// Tells vigil the worker is shutting down on purpose.
    public func stopping() { send(.stopping, droppable: false) }

    /// Hands `state` to vigil, which keeps it durably (replacing the previous checkpoint)
    /// and gives it to the next incarnation as `restoredState`. A blocking send, like
    /// READY: never dropped. Build the bytes with `StateWriter`.
    /// - Returns: false (and logs why) when `state` is larger than
    ///   `maximumCheckpointSize`, or when not connected to vigil (standalone). True means
    ///   sent, not kept: vigil answers a checkpoint it refuses with `.checkpointRefused`
    ///   (see `onCheckpointRefused`).
    @discardableResult
    public func checkpoint(_ state: [UInt8]) -> Bool {
        guard !isStandalone else { return false }
        guard state.count <= Worker.maximumCheckpointSize else {
            log("checkpoint of \(state.count) bytes exceeds the \(Worker.maximumCheckpointSize)-byte frame limit: NOT sent; vigil keeps the previous one")
            return false
        }
        return send(.checkpoint(state), droppable: false)
    }

    /// The guardian's own order: safe mode on or off, or liquidation. Blocking, never
    /// dropped; the reason is cut to 1 KiB. False when standalone or the send failed.
    @discardableResult
    public func order(_ order: GuardianOrder) -> Bool {
        send(.guardianOrder(order.mapReason { Worker.clip($0, bytes: 1024) }), droppable: false)
    }

    /// A fact for vigil's journal (each liquidation step, final positions). Blocking, never
    /// dropped; the key is cut to 256 bytes and the text to 15 KiB. False when standalone
    /// or the send failed.
    @discardableResult
    public func report(key: String, text: String) -> Bool {
        send(.report(key: Worker.clip(key, bytes: 256), text: Worker.clip(text, bytes: 15 * 1024)), droppable: false)
    }

    // MARK: - Handlers for frames from vigil

    /// Sets the handler for every frame from vigil that no specific handler takes: all of
    /// them when none is set (`.sample`, `.notice`, `.checkpointRequest`,
    /// `.restartRequest`, `.checkpointRefused`, ...). It runs on the SDK's channel thread,
    /// one frame at a time; keep it short and protect shared state.
    public func onMessage(_ body: @escaping @Sendable (Frame) -> Void) {
        handlers.withLock { $0.message = body }
        wakeForKeptFrames()
    }

    /// Sets what the SDK calls when vigil asks for a fresh checkpoint (a planned handoff,
    /// before vigil restarts this worker on purpose): `body` returns the state, and the
    /// SDK sends it as `checkpoint(_:)` would. Runs on the channel thread, which sends no
    /// heartbeat meanwhile: keep it quick. Without it, a request is logged (this worker
    /// cannot hand off) and passed to `onMessage`.
    public func onCheckpointRequest(_ body: @escaping @Sendable () -> [UInt8]) {
        handlers.withLock { $0.checkpointRequest = body }
        wakeForKeptFrames()
    }

    /// For the worker with role `guardian`: decides whether a guarded child may be
    /// restarted. The SDK sends `.verdict(requestID: request.id, body(request))` (its
    /// reason cut to 1 KiB). Runs on the channel thread; vigil waits only so long for an
    /// answer and then falls back to safe mode, so decide quickly. Without it, requests go
    /// to `onMessage` (which must answer with `answer(_:with:)`), or are logged unanswered.
    public func onRestartRequest(_ body: @escaping @Sendable (RestartRequest) -> Verdict) {
        handlers.withLock { $0.restartRequest = body }
        wakeForKeptFrames()
    }

    /// Answers a restart request by hand (for a guardian that takes them in `onMessage`).
    @discardableResult
    public func answer(_ request: RestartRequest, with verdict: Verdict) -> Bool {
        let sent = send(.verdict(requestID: request.id, verdict.mapReason { Worker.clip($0, bytes: 1024) }), droppable: false)
        if !sent { log("could not send the verdict for restart request #\(request.id) (\(request.child))") }
        return sent
    }

    /// Sets the handler for tree-level notices (`Notice.safeMode` = `on`/`off`,
    /// `Notice.liquidate` = `start`), called with key and value on the channel thread.
    /// Without it, notices go to `onMessage`.
    public func onNotice(_ body: @escaping @Sendable (String, String) -> Void) {
        handlers.withLock { $0.notice = body }
        wakeForKeptFrames()
    }

    /// Sets the handler for vigil's refusal of a checkpoint (too large, not storable): the
    /// previous checkpoint stands. The SDK always logs a refusal; without this handler the
    /// frame then goes to `onMessage`.
    public func onCheckpointRefused(_ body: @escaping @Sendable (String) -> Void) {
        handlers.withLock { $0.checkpointRefused = body }
        wakeForKeptFrames()
    }

    /// Sends one frame. Droppable frames (heartbeat, status) are not worth blocking for
    /// when vigil is not reading; READY and STOPPING are. A send to a vigil that is gone
    /// fails quietly: the channel thread notices the close and exits the process, or, for
    /// an adoptable worker, keeps the frame for the next vigil (`park`) and returns true
    /// for it unless it is droppable.
    @discardableResult
    func send(_ frame: Frame, droppable: Bool) -> Bool {
        guard connected else { return false }
        let bytes: [UInt8]
        do { bytes = try frame.encoded() } catch {
            log("cannot encode frame: \(error)")
            return false
        }
        return sendLock.withLock { parked in
            let fd = channel.load(ordering: .acquiring)
            if fd >= 0 {
                if Worker.send(bytes, on: fd, blocking: !droppable) {
                    if case .checkpoint = frame { lastCheckpoint.withLock { $0 = bytes } }
                    return true
                }
                let gone = errno == EPIPE || errno == ECONNRESET || errno == ENOTCONN
                guard gone && isAdoptable else { return false }
            }
            guard isAdoptable, !droppable else { return false }
            Worker.park(frame, in: &parked)
            return true
        }
    }

    /// One frame on `fd`; false with errno set when it did not go.
    static func send(_ bytes: [UInt8], on fd: Int32, blocking: Bool) -> Bool {
        let flags = Int32(MSG_NOSIGNAL) | (blocking ? 0 : Int32(MSG_DONTWAIT))
        return bytes.withUnsafeBytes { raw in
            while true {
                let n = Glibc.send(fd, raw.baseAddress, raw.count, flags)
                if n >= 0 { return true }
                if errno == EINTR { continue }
                return false
            }
        }
    }

    /// The most frames kept for the next vigil; the oldest go first (a checkpoint never:
    /// only the latest one is kept, and it is what the next incarnation restores).
    static let parkedFramesLimit = 64

    /// Keeps a frame sent while no vigil listens. A checkpoint replaces the one kept before
    /// it, since only the latest state matters.
    static func park(_ frame: Frame, in parked: inout [Frame]) {
        if case .checkpoint = frame { parked.removeAll { if case .checkpoint = $0 { true } else { false } } }
        parked.append(frame)
        while parked.count > parkedFramesLimit,
              let i = parked.firstIndex(where: { if case .checkpoint = $0 { false } else { true } }) {
            parked.remove(at: i)
        }
    }

    /// Under the send lock: makes `fd` the channel and sends it what was kept meanwhile, in
    /// order. False (and `fd` not taken) when the new vigil is already gone again.
    func takeChannel(_ fd: Int32) -> Bool {
        sendLock.withLock { parked in
            let parksCheckpoint = parked.contains { if case .checkpoint = $0 { true } else { false } }
            if !parksCheckpoint, let bytes = lastCheckpoint.withLock({ $0 }) {
                guard Worker.send(bytes, on: fd, blocking: true) else { return false }
            }
            for (i, frame) in parked.enumerated() {
                guard let bytes = try? frame.encoded(), Worker.send(bytes, on: fd, blocking: true) else {
                    parked.removeFirst(i)
                    return false
                }
                if case .checkpoint = frame { lastCheckpoint.withLock { $0 = bytes } }
            }
            parked.removeAll()
            if saidReady.load(ordering: .acquiring), let bytes = try? Frame.ready.encoded() {
                _ = Worker.send(bytes, on: fd, blocking: true)
            }
            channel.store(fd, ordering: .releasing)
            return true
        }
    }

    /// Under the send lock: no channel until a new vigil adopts this worker.
    func dropChannel() {
        sendLock.withLock { _ in
            let fd = channel.exchange(-1, ordering: .acquiringAndReleasing)
            if fd >= 0 { close(fd) }
        }
    }

    /// `text` cut at a character boundary to at most `bytes` UTF-8 bytes, `...` marking a cut.
    static func clip(_ text: String, bytes: Int) -> String {
        guard text.utf8.count > bytes else { return text }
        var cut = ""
        for c in text {
            if cut.utf8.count + String(c).utf8.count > bytes - 3 { break }
            cut.append(c)
        }
        return cut + "..."
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
        var fds = [pollfd(fd: channel.load(ordering: .acquiring), events: Int16(POLLIN), revents: 0)]
        if wakeRead >= 0 { fds.append(pollfd(fd: wakeRead, events: Int16(POLLIN), revents: 0)) }
        deliverKeptFrames()
        while true {
            var timeout: Int32 = -1
            if heartbeatMode == .automatic {
                let now = vigil_monotonic_ns()
                if now >= nextBeat {
                    heartbeat()
                    nextBeat = Worker.nextBeat(after: now, every: interval)
                }
                timeout = pollMilliseconds(.nanoseconds(nextBeat - now))
            }
            for i in fds.indices { fds[i].revents = 0 }
            let n = Glibc.poll(&fds, nfds_t(fds.count), timeout)
            if n < 0 {
                if errno == EINTR { continue }
                channelClosed("poll on the channel failed: \(describe(errno: errno))")
                return
            }
            if n == 0 { continue }
            if fds.count > 1 && fds[1].revents != 0 {
                var drain = [UInt8](repeating: 0, count: 64)
                while drain.withUnsafeMutableBytes({ read(wakeRead, $0.baseAddress, $0.count) }) > 0 {}
                deliverKeptFrames()
            }
            if fds[0].revents == 0 { continue }
            let got = buffer.withUnsafeMutableBytes { raw in
                recv(fds[0].fd, raw.baseAddress, raw.count, Int32(MSG_DONTWAIT) | Int32(MSG_TRUNC))
            }
            if got == 0 || got < 0 && errno != EAGAIN && errno != EINTR {
                let why = got == 0 ? "channel to vigil closed" : "channel to vigil failed: \(describe(errno: errno))"
                guard let fd = channelClosed(why) else { return }
                fds[0].fd = fd
                nextBeat = vigil_monotonic_ns()
                continue
            }
            if got < 0 { continue }
            guard got <= Frame.maximumSize else {
                log("dropping a \(got)-byte frame from vigil (limit \(Frame.maximumSize))")
                continue
            }
            let frame: Frame
            do { frame = try Frame(decoding: buffer[0..<got]) } catch {
                log("dropping an undecodable frame from vigil: \(error)")
                continue
            }
            if isHandled(frame) { dispatch(frame) } else { keep(frame) }
        }
    }

    /// The next heartbeat time: the next multiple of the interval on the machine's
    /// monotonic clock, so every worker with the same interval beats at the same instants
    /// and vigil takes a thousand heartbeats in one wake-up instead of a thousand (its idle
    /// cost is wake-ups, not frames). Never sooner than half an interval (no double beat
    /// right after the first one), and a worker that fell behind does not burst.
    static func nextBeat(after now: Int64, every interval: Int64) -> Int64 {
        guard interval > 0 else { return now }
        let aligned = (now / interval + 1) * interval
        return aligned - now < interval / 2 ? aligned + interval : aligned
    }

    /// Keeps a frame no handler takes yet (see `kept`).
    private func keep(_ frame: Frame) {
        let room = kept.withLock { k in
            guard k.count < Worker.keptFramesLimit else { return false }
            k.append(frame)
            return true
        }
        if !room { log("dropping frame \(frame.kindName) from vigil: no handler takes it and \(Worker.keptFramesLimit) are kept already") }
    }

    /// Hands one frame to its handler (see the class comment), on the channel thread.
    private func dispatch(_ frame: Frame) {
        let h = handlers.withLock { $0 }
        switch frame {
        case .checkpointRequest:
            if let provide = h.checkpointRequest {
                let state = provide()
                if checkpoint(state) { return }
                log("vigil asked for a checkpoint and the state (\(state.count) bytes) could not be sent")
                return
            }
            log("vigil asked for a checkpoint, but no onCheckpointRequest handler is set: this worker cannot hand off its state")
            h.message?(frame)
        case .restartRequest(let request):
            if let decide = h.restartRequest {
                answer(request, with: decide(request))
            } else if let body = h.message {
                body(frame)
            } else {
                log("restart request #\(request.id) for \(request.child), but no onRestartRequest handler is set: not answered (vigil falls back to safe mode)")
            }
        case .notice(let key, let value):
            if let body = h.notice { body(key, value) } else { h.message?(frame) }
        case .checkpointRefused(let reason):
            log("CHECKPOINT REFUSED by vigil (the previous one stands): \(reason)")
            if let body = h.checkpointRefused { body(reason) } else { h.message?(frame) }
        case .restore(let state):
            log("a second restore frame (\(state.map { "\($0.count) bytes" } ?? "none")) after start-up: restoredState is unchanged")
            h.message?(frame)
        default:
            h.message?(frame)
        }
    }

    /// Whether a handler would take `frame` now.
    private func isHandled(_ frame: Frame) -> Bool {
        handlers.withLock { h in
            if h.message != nil { return true }
            return switch frame {
            case .checkpointRequest: h.checkpointRequest != nil
            case .restartRequest: h.restartRequest != nil
            case .notice: h.notice != nil
            case .checkpointRefused: h.checkpointRefused != nil
            default: false
            }
        }
    }

    /// On the channel thread: hands the kept frames that now have a handler to it, in
    /// arrival order; the others stay.
    private func deliverKeptFrames() {
        let ready: [Frame] = kept.withLock { kept in
            var now: [Frame] = []
            var later: [Frame] = []
            for f in kept { if isHandled(f) { now.append(f) } else { later.append(f) } }
            kept = later
            return now
        }
        for f in ready { dispatch(f) }
    }

    /// A handler was set: if kept frames wait, wake the channel thread to deliver them.
    private func wakeForKeptFrames() {
        guard wakeWrite >= 0, !kept.withLock({ $0.isEmpty }) else { return }
        var byte: UInt8 = 1
        _ = Glibc.write(wakeWrite, &byte, 1)
    }

    /// Vigil is gone. Unless the worker is already stopping on request (its main thread is
    /// finishing and exits by itself: nil), it waits for a new vigil to adopt it and returns
    /// the new channel, or, not adoptable or not adopted in time, exits the process now.
    private func channelClosed(_ why: String) -> Int32? {
        if isStopping {
            log("\(why) while stopping; letting the shutdown finish")
            return nil
        }
        guard isAdoptable, let path = adoptSocket else {
            log("\(why): vigil is gone, exiting with status \(Worker.channelClosedExitCode)")
            _exit(Worker.channelClosedExitCode)
        }
        dropChannel()
        log("\(why): waiting up to \(adoptWindow) for a new vigil to adopt this worker at \(path)")
        if let fd = awaitAdoption(at: path, within: adoptWindow) { return fd }
        if isStopping { return nil }
        log("no vigil adopted this worker within \(adoptWindow): exiting with status \(Worker.channelClosedExitCode)")
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
