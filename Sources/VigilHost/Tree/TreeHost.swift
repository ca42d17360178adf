import CShim
import Glibc
import VigilCore
import VigilWire

/// The imperative shell around a `SupervisionTree`: turns effects into syscalls and
/// syscalls into events, on one epoll loop. It decides nothing about supervision itself.
public final class TreeHost {
    /// Everything `vigil up` needs to know besides the topology.
    public struct Configuration: Sendable {
        public var topology: Topology
        public var paths: RuntimePaths
        public var environment: [String: String]
        /// Frames per second above which a worker is cut off as flooding.
        public var floodLimit = 2000
        /// Reads the topology file again for `vigil reload` / SIGHUP: the new topology, or
        /// every problem as `file:line:column: message` lines. nil: reload unsupported.
        public var reloadTopology: (@Sendable () -> Result<Topology, ReloadRefused>)?
        /// While the tree is not READY yet, how often vigil asks systemd for more start
        /// time (EXTEND_TIMEOUT_USEC, three times this) if more children became READY.
        public var startExtensionEvery: Duration = .seconds(10)

        public init(topology: Topology, paths: RuntimePaths, environment: [String: String]) {
            self.topology = topology
            self.paths = paths
            self.environment = environment
        }
    }

    /// How `run` ended, mapped to vigil's exit code by the CLI.
    public enum Outcome: Sendable {
        case stopped
        case treeFailed(String)
    }

    var configuration: Configuration
    var tree: SupervisionTree
    let loop: EventLoop
    var spawner: Spawner
    var reaper = Reaper()
    let journal: Journal
    let notifier: SystemdNotifier
    var control: ControlServer?
    var connections: [Int32: ControlConnection] = [:]

    /// The process of each worker's current incarnation (the core's `incarnation(of:)`).
    var live: [NodeID: LiveChild] = [:]
    /// A worker's second process during an overlapping handoff: the incoming one until it
    /// takes over, then the outgoing one until it is gone (see `followHandoffs`).
    var overlapping: [NodeID: LiveChild] = [:]
    var nodeByPID: [Int32: NodeID] = [:]
    var nodeByChannel: [Int32: NodeID] = [:]
    /// Whose stdout/stderr pipe each output descriptor is.
    var nodeByOutput: [Int32: NodeID] = [:]
    /// Whose own NOTIFY_SOCKET each descriptor is.
    var nodeByNotify: [Int32: NodeID] = [:]
    /// Children's stdout and stderr, line by line, in files (`vigil logs`).
    let childLogs: ChildLogs
    /// vigil's own log: text lines on stderr, or entries to journald when stderr is the journal.
    let log: VigilLog

    let signalFD: Int32
    let timerFD: Int32
    var armedDeadline: Int64 = 0
    var interruptCount = 0
    var outcome: TreeOutcome?
    var lastSystemdStatus = ""
    var nextWatchdogPing: Int64?
    /// While the tree is coming up under systemd: when to ask for more start time next,
    /// and how many children were READY at the last ask (see `extendStartIfProgressing`).
    var nextStartExtension: Int64?
    var readyAtLastExtension = 0
    var nextSample: Int64?
    var journalStepsSinceCheckpoint = 0
    var pendingCommands: [PendingCommand] = []
    /// One receive buffer for every channel: a frame is copied out before the next read.
    var receiveBuffer = [UInt8](repeating: 0, count: Frame.maximumSize + 1)
    /// One read of a child's output at a time.
    var outputBuffer = [UInt8](repeating: 0, count: 64 * 1024)
    let startedAt: Int64
    /// Held for vigil's lifetime: one tree per state directory (journal, trading data).
    let stateLock: StateDirectoryLock
    /// Each child's last checkpoint, durable across crashes of the child and of vigil.
    let checkpoints: CheckpointStore
    var handoffs = Handoffs()
    /// Children's sd_notify datagrams come in here.
    let notifySocket: NotifySocket
    /// Descriptors children stored with FDSTORE=1, handed to their next incarnation.
    var fdStore = FDStore()
    /// Children told once that READY=1 on NOTIFY_SOCKET does not count for their readiness.
    var toldAboutNotifyReadiness: Set<NodeID> = []
    /// The topology a reload under way will put in `configuration` once it takes effect.
    var pendingTopology: Topology?
    /// What the last accepted reload set out to do (for `vigil reload`'s answer).
    var lastReloadPlan: SupervisionTree.ReloadPlan?
    /// The safe mode last written to the journal (`SafeModeState.persisted`).
    var persistedSafeMode: SafeModeState?
    /// Whose pidfd (adopted processes) each descriptor is.
    var nodeByPidfd: [Int32: NodeID] = [:]
    /// Whose main process (`MAINPID=`) each pid is.
    var nodeByMainPID: [Int32: NodeID] = [:]
    /// Adopted groups whose leader has exited while members remain, with the leader's exit
    /// (see `adoptedProcessExited`).
    var drainingAdopted: Set<Int32> = []
    /// Prometheus scrapes (`metrics:` in the topology), and the scrapes under way.
    var metricsServer: MetricsServer?
    var metricsConnections: [Int32: MetricsConnection] = [:]
    /// Samples sent to, and reports received from, workers with role predictor (metrics).
    var predictorSamplesSent = 0
    var predictorAdvisories = 0

    public init(_ configuration: Configuration) throws(HostError) {
        self.configuration = configuration
        log = VigilLog(environment: configuration.environment)
        tree = SupervisionTree(topology: configuration.topology)
        startedAt = vigil_monotonic_ns()
        do {
            try configuration.paths.prepare()
        } catch {
            throw HostError("cannot prepare runtime directories: \(error)")
        }
        stateLock = try StateDirectoryLock(directory: configuration.paths.stateDirectory)
        do {
            // No automatic checkpoint: it would fsync inside whichever commit crosses the
            // threshold, possibly the one in front of a restart. The loop checkpoints
            // when it has nothing else to do (see `checkpointJournal`).
            journal = try Journal(path: configuration.paths.journal, autoCheckpointPages: 0)
        } catch {
            throw HostError("cannot open the journal at \(configuration.paths.journal): \(JournalAdvice.explain(error))")
        }
        do {
            checkpoints = try CheckpointStore(path: configuration.paths.stateDirectory + "/checkpoints.db")
        } catch {
            throw HostError("cannot open the checkpoint store in \(configuration.paths.stateDirectory): \(JournalAdvice.explain(error))")
        }
        if let previous = try? journal.lastIncarnations() { tree.continueIncarnations(from: previous) }
        notifier = SystemdNotifier(environment: configuration.environment)
        spawner = Spawner(environment: configuration.environment,
                          runtimeDirectory: configuration.paths.runtimeDirectory,
                          stateDirectory: configuration.paths.stateDirectory,
                          heartbeat: configuration.topology.settings.heartbeatInterval,
                          notifySocket: configuration.paths.notifySocket,
                          adoptWindow: configuration.topology.settings.adoptWindow,
                          adoptSocket: configuration.paths.adoptSocket)

        // Block the signals vigil handles before any thread exists and read them from a
        // signalfd, so none is lost and none interrupts a syscall half-way.
        signal(SIGPIPE, SIG_IGN)
        var handled: [Int32] = [SIGCHLD, SIGINT, SIGTERM, SIGHUP]
        let sfd = handled.withUnsafeMutableBufferPointer { vigil_signalfd_for($0.baseAddress, Int32($0.count)) }
        guard sfd >= 0 else { throw HostError("signalfd: \(String(cString: strerror(-sfd)))") }
        signalFD = sfd
        let tfd = vigil_timerfd_create()
        guard tfd >= 0 else { throw HostError("timerfd: \(String(cString: strerror(-tfd)))") }
        timerFD = tfd
        do {
            loop = try EventLoop()
            try loop.register(signalFD, as: .signals)
            try loop.register(timerFD, as: .timer)
        } catch {
            throw HostError("event loop: \(error)")
        }
        // Orphans of a worker's own children come back to vigil, so a stop leaves nothing.
        _ = vigil_set_child_subreaper()
        notifySocket = try NotifySocket(path: configuration.paths.notifySocket)
        childLogs = ChildLogs(directory: configuration.paths.logDirectory)
        do {
            try loop.register(notifySocket.fd, as: .notify)
        } catch {
            throw HostError("event loop: \(error)")
        }
        do {
            let server = try ControlServer(path: configuration.paths.controlSocket)
            try loop.register(server.listenFD, as: .controlListener)
            control = server
        } catch {
            throw HostError("\(error)")
        }
        if let endpoint = configuration.topology.settings.metrics {
            let server = try MetricsServer(endpoint)
            do { try loop.register(server.listenFD, as: .metricsListener) } catch { throw HostError("event loop: \(error)") }
            metricsServer = server
        }
    }

    /// Runs the tree until it is stopped (SIGINT/SIGTERM) or its root fails.
    public func run() -> Outcome {
        let wall = vigil_realtime_ns()
        try? journal.recordStart(pid: getpid(), topology: configuration.topology.file, at: wall)
        log.note("tree \(configuration.topology.root.name): pid \(getpid()), control socket \(configuration.paths.controlSocket), journal \(configuration.paths.journal)\(metricsServer.map { ", metrics http://\($0.endpoint)/metrics" } ?? "")", .info, at: wall)
        if let interval = notifier.watchdogInterval { nextWatchdogPing = now + interval.nanoseconds }
        if notifier.isEnabled { nextStartExtension = now + configuration.startExtensionEvery.nanoseconds }
        if needsSampling { nextSample = now + configuration.topology.settings.sampleInterval.nanoseconds }
        adoptDescriptorsFromSystemd()
        removeStaleNotifySockets()
        resumeSafeMode()
        let survivors = adoptSurvivors()
        apply(tree.start(adopting: survivors.adopted, restarting: survivors.restarting,
                         restartHistory: recentRestartDecisions(), at: Instant(nanoseconds: now)))
        stopUnclaimedAdoptions()

        while outcome == nil {
            armTimer()
            var batch = loop.wait(timeoutMilliseconds: journalStepsSinceCheckpoint >= Self.checkpointEvery ? 0 : -1)
            // Idle, or never idle for long: bound the WAL either way.
            if (batch.isEmpty && journalStepsSinceCheckpoint >= Self.checkpointEvery)
                || journalStepsSinceCheckpoint >= 20 * Self.checkpointEvery {
                checkpointJournal()
                batch = loop.wait(timeoutMilliseconds: -1)
            }
            // Timers last: what children said (heartbeats above all) is taken in before a
            // deadline is judged, so a vigil that was stopped does not kill on stale data.
            batch.sort { a, b in a.token != .timer && b.token == .timer }
            for ready in batch {
                switch ready.token {
                case .signals: handleSignals()
                case .timer: handleTimer()
                case .channel(let fd): readChannel(fd)
                case .notify: readNotifications()
                case .childNotify(let fd): readNotifications(fd)
                case .output(let fd): readOutput(fd)
                case .pidfd(let fd): pidfdReadable(fd)
                case .controlListener: acceptControl()
                case .controlConnection(let fd): serviceConnection(fd, ready)
                case .metricsListener: acceptScrapes()
                case .metricsConnection(let fd): serviceScrape(fd, ready)
                }
            }
            answerFinishedCommands()
            updateSystemdStatus()
        }
        for p in pendingCommands {
            follow(p.connection, p.connection.respond(ok: false, body: "vigil stopped before \(p.verb) \(p.name) finished"))
        }
        _ = try? notifier.stopping()
        let orphans = Leftovers.killAdoptedOrphans(except: Set(nodeByPID.keys))
        if !orphans.isEmpty {
            log.note("killed \(orphans.count) process(es) that had left their worker's process group: \(orphans.map(String.init).joined(separator: ", "))", .warning)
        }
        checkpointJournal()
        control?.close()
        closeMetrics()
        switch outcome! {
        case .stopped:
            return .stopped
        case .failed(let why):
            return .treeFailed(why)
        }
    }

    var now: Int64 { vigil_monotonic_ns() }

    /// Journal steps between checkpoints: about 5 WAL pages each, so a checkpoint copies a
    /// few hundred pages, a few milliseconds, and only when the loop is idle.
    static let checkpointEvery = 200

    /// Copies the WAL into the database while nothing is waiting, so no restart ever waits
    /// behind a checkpoint's fsync.
    func checkpointJournal() {
        journalStepsSinceCheckpoint = 0
        do {
            try journal.checkpoint()
        } catch {
            log.note("journal checkpoint failed: \(error)", .error)
        }
    }

    // MARK: Effects

    /// Journals the records of one decision step, then carries out its actions in order.
    func apply(_ effects: [Effect]) {
        let records = effects.compactMap { e -> Record? in if case .record(let r) = e { r } else { nil } }
        // Safe mode is tree state that must outlive vigil: kept with the records of the
        // step that changed it, in one transaction.
        let safeMode = tree.safeMode
        let wall = vigil_realtime_ns()
        let meta: [String: String?] = safeMode != persistedSafeMode
            ? ["safe_mode": safeMode?.persisted(now: Instant(nanoseconds: now), wallNanoseconds: wall)] : [:]
        if !records.isEmpty || !meta.isEmpty {
            do {
                try journal.append(records, at: wall, meta: meta)
                persistedSafeMode = safeMode
                journalStepsSinceCheckpoint += 1
            } catch {
                log.note("journal write failed: \(error); continuing", .error, at: wall)
            }
            for r in records { log.record(r, at: wall) }
        }
        var followUps: [Event] = []
        for effect in effects {
            switch effect {
            case .record:
                break
            case .spawn(let id, let incarnation):
                followUps.append(spawn(id, incarnation))
            case .signal(let id, let pid, let signal):
                _ = kill(-pid, signal)
                signalMainOutsideGroup(id, group: pid, signal)
                // A stopped (SIGSTOP) process would sit on SIGTERM until the SIGKILL; wake it
                // so it can shut down in order, as systemd does.
                if signal == SIGTERM || signal == SIGABRT { _ = kill(-pid, SIGCONT) }
            case .askGuardian(let guardian, let question):
                send(.restartRequest(RestartRequest(question)), to: guardian)
            case .broadcast(let key, let value):
                for child in live.values { send(.notice(key: key, value: value), to: child) }
                for child in overlapping.values { send(.notice(key: key, value: value), to: child) }
            case .plannedHandoff(let id, let reason):
                startPlannedHandoff(id, reason: reason)
            case .reloaded(let mapping):
                renumber(mapping)
            case .treeReady:
                nextStartExtension = nil
                _ = try? notifier.ready(status: tree.summary())
            case .treeFinished(let o):
                outcome = o
            }
        }
        for event in followUps { apply(tree.handle(event, at: Instant(nanoseconds: now))) }
        followHandoffs()
    }

    private func spawn(_ id: NodeID, _ incarnation: UInt64) -> Event {
        guard let spec = tree.workerSpec(of: id) else { return .spawnFailed(id, incarnation: incarnation, errno: EINVAL) }
        do {
            let stored = fdStore.handover(for: tree.name(of: id)).map { (name: $0.name, fd: $0.fd) }
            let notify = ownNotifySocket(for: tree.name(of: id), incarnation: incarnation)
            let child = try spawner.spawn(spec, name: tree.name(of: id), incarnation: incarnation, listening: stored,
                                          notifySocket: notify?.path)
            var process = LiveChild(node: id, incarnation: incarnation, pid: child.pid, channel: child.channel)
            if let notify {
                process.notify = notify
                nodeByNotify[notify.fd] = id
                do { try loop.register(notify.fd, as: .childNotify(notify.fd)) } catch {
                    log.note("cannot watch the notify socket of \(tree.name(of: id)): \(error)", .error)
                }
            }
            process.output = child.output
            nodeByOutput[child.output] = id
            do {
                try loop.register(child.output, as: .output(child.output))
            } catch {
                log.note("cannot watch the output of \(tree.name(of: id)): \(error)", .error)
            }
            // A handoff's incoming process starts beside the running one.
            let beside = tree.handoffPhase(of: id) == .starting(incoming: incarnation)
            if beside { overlapping[id] = process } else { live[id] = process }
            nodeByPID[child.pid] = id
            nodeByChannel[child.channel] = id
            do {
                try loop.register(child.channel, as: .channel(child.channel))
            } catch {
                log.note("cannot watch the channel of \(tree.name(of: id)): \(error)", .error)
            }
            let given = greet(process)
            if beside { handoffs.greeted(id, with: given.map { ($0.state, $0.incarnation) }) }
            return .spawned(id, incarnation: incarnation, pid: child.pid)
        } catch {
            return .spawnFailed(id, incarnation: incarnation, errno: error.errno)
        }
    }

    // MARK: Signals and reaping

    private func handleSignals() {
        while true {
            let signo = vigil_signalfd_read(signalFD)
            guard signo > 0 else { return }
            switch signo {
            case SIGCHLD:
                reapChildren()
            case SIGINT, SIGTERM:
                interruptCount += 1
                if interruptCount == 1 {
                    _ = try? notifier.stopping()
                    apply(tree.handle(.shutdown, at: Instant(nanoseconds: now)))
                } else {
                    log.note("second \(signo == SIGINT ? "SIGINT" : "SIGTERM"): SIGKILL to every child", .warning)
                    apply(tree.handle(.forceShutdown, at: Instant(nanoseconds: now)))
                }
            case SIGHUP:
                let (_, answer) = reload(requestedBy: "SIGHUP")
                log.note("SIGHUP: \(answer.trimmingCharacters(in: "\n"))")
            default:
                break
            }
        }
    }

    /// A safe mode the previous vigil left in the journal still holds.
    private func resumeSafeMode() {
        guard let text = try? journal.meta("safe_mode"),
              let state = SafeModeState(persisted: text, now: Instant(nanoseconds: now), wallNanoseconds: vigil_realtime_ns()) else { return }
        apply(tree.resumeSafeMode(state, at: Instant(nanoseconds: now)))
    }

    private func reapChildren() {
        let reaped = reaper.collect()
        // What a child said on NOTIFY_SOCKET just before it died is still attributed to it,
        // a MAINPID= above all (a forking daemon's parent exits right after saying it).
        readNotifications()
        for r in reaped {
            if let id = nodeByPID[r.pid], let child = liveChild(id, pid: r.pid), let n = child.notify {
                readNotifications(n.fd, of: child)
            }
        }
        let gone = reaper.settle(reaped, group: { pid in
            guard let (id, child) = groupEnded(byExitOf: pid) else { return nil }
            return (child.pid, tree.isBeingStopped(id, incarnation: child.incarnation) ? .await : .kill)
        })
        for exit in gone { groupGone(exit.pgid, exit.status) }
    }

    /// A child's whole process group is gone: what it still said is read, its descriptors
    /// closed, and the core told.
    func groupGone(_ pgid: Int32, _ status: ProcessExit) {
        guard let id = nodeByPID[pgid] else { return }
        drainChannel(of: id, pid: pgid)
        nodeByPID.removeValue(forKey: pgid)
        drainOutput(of: id, pid: pgid)
        guard let child = removeLiveChild(id, pid: pgid) else { return }
        if let n = child.notify { readNotifications(n.fd, of: child) }  // what it said just before it died
        releaseDescriptors(of: child)
        apply(tree.handle(.exited(id, incarnation: child.incarnation, status), at: Instant(nanoseconds: now)))
    }

    /// Unwatches and closes a process's channel, output, notify socket and pidfds.
    func releaseDescriptors(of child: LiveChild) {
        closeChannel(of: child)
        if child.output >= 0 {
            loop.unregister(child.output)
            nodeByOutput.removeValue(forKey: child.output)
            close(child.output)
        }
        if let n = child.notify {
            loop.unregister(n.fd)
            nodeByNotify.removeValue(forKey: n.fd)
        }
        for fd in [child.pidfd, child.mainPidfd] where fd >= 0 {
            loop.unregister(fd)
            nodeByPidfd.removeValue(forKey: fd)
            close(fd)
        }
        if let main = child.mainPID { nodeByMainPID.removeValue(forKey: main) }
    }

    /// Reads what a dead worker sent before it died (its last checkpoint above all: a
    /// runner checkpoints an order before sending it) up to the end of its channel.
    private func drainChannel(of id: NodeID, pid: Int32) {
        for _ in 0..<16 {
            guard let fd = liveChild(id, pid: pid)?.channel, fd >= 0 else { return }
            readChannel(fd)
        }
    }

    func closeChannel(of child: LiveChild) {
        guard child.channel >= 0 else { return }
        loop.unregister(child.channel)
        nodeByChannel.removeValue(forKey: child.channel)
        close(child.channel)
    }

    // MARK: Timers

    /// One timerfd serves the core's next deadline, the systemd watchdog and sampling.
    private func armTimer() {
        var deadline = tree.nextDeadline?.nanoseconds ?? Int64.max
        if let w = nextWatchdogPing { deadline = min(deadline, w) }
        if let e = nextStartExtension { deadline = min(deadline, e) }
        if let s = nextSample { deadline = min(deadline, s) }
        if let c = connections.values.compactMap(\.deadline).min() { deadline = min(deadline, c) }
        if let p = pendingCommands.map(\.deadline).min() { deadline = min(deadline, p) }
        if let h = handoffs.earliestDeadline { deadline = min(deadline, h) }
        if !drainingAdopted.isEmpty { deadline = min(deadline, now + Self.adoptedDrainPoll.nanoseconds) }
        if let m = metricsConnections.values.compactMap(\.deadline).min() { deadline = min(deadline, m) }
        let target = deadline == Int64.max ? 0 : max(deadline, 1)
        if target != armedDeadline {
            _ = vigil_timerfd_arm(timerFD, target)
            armedDeadline = target
        }
    }

    private func handleTimer() {
        vigil_timerfd_drain(timerFD)
        armedDeadline = 0
        let t = now
        if let deadline = tree.nextDeadline, deadline.nanoseconds <= t {
            apply(tree.handle(.tick, at: Instant(nanoseconds: t)))
        }
        if let w = nextWatchdogPing, w <= t, let interval = notifier.watchdogInterval {
            _ = try? notifier.watchdog()
            nextWatchdogPing = t + interval.nanoseconds
        }
        if let e = nextStartExtension, e <= t { extendStartIfProgressing() }
        if let s = nextSample, s <= t {
            sampleWorkers()
            nextSample = t + configuration.topology.settings.sampleInterval.nanoseconds
        }
        expireConnections(at: t)
        if !drainingAdopted.isEmpty { checkDrainingAdopted() }
        expireScrapes(at: t)
    }

    /// How much start time a slow start asks systemd for each time (3x the interval).
    var startExtension: Duration { configuration.startExtensionEvery * 3 }

    /// A tree that takes long to come up asks systemd for more start time
    /// (`EXTEND_TIMEOUT_USEC=`), but only while it makes progress (more children READY
    /// than at the last ask): a tree stuck starting still hits `TimeoutStartSec=`.
    private func extendStartIfProgressing() {
        let ready = tree.nodeIDs.filter { tree.workerSpec(of: $0) != nil && tree.isReady($0) }.count
        if ready > readyAtLastExtension {
            _ = try? notifier.send("EXTEND_TIMEOUT_USEC=\(startExtension.nanoseconds / 1000)\nSTATUS=starting: \(ready) children READY")
        }
        readyAtLastExtension = ready
        nextStartExtension = now + configuration.startExtensionEvery.nanoseconds
    }

    private func updateSystemdStatus() {
        guard notifier.isEnabled else { return }
        let summary = tree.summary()
        if summary != lastSystemdStatus {
            lastSystemdStatus = summary
            _ = try? notifier.status(summary)
        }
    }
}

/// A failure of vigil itself (not of a child): what went wrong and what to do.
/// A topology that cannot be loaded: every problem, one `file:line:column: message` a line.
public struct ReloadRefused: Error, Sendable {
    public var diagnostics: [String]
    public init(_ diagnostics: [String]) { self.diagnostics = diagnostics }
}

public struct HostError: Error, CustomStringConvertible, Sendable {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
