/// The supervision tree's decision logic, after OTP's `supervisor.erl`: events in, effects
/// out. It performs no I/O, reads no clock and draws no randomness of its own: the shell
/// passes `now` with each event and a random source at construction, so every decision
/// can be replayed and tested deterministically, with thousands of children.
///
/// Start order is depth-first declaration order; dependencies must be declared first (the
/// validator enforces it), so reverse start order is also reverse dependency order.
public struct SupervisionTree {
    var nodes = NodeStore()
    var byName: [String: [NodeID]] = [:]
    var timers = TimerQueue()
    var random: any RandomNumberGenerator

    /// Set by `handle`: the time of the event being handled.
    var now = Instant.zero
    var effects: [Effect] = []
    /// Supervisors whose plan may be able to advance.
    var dirty: [NodeID] = []

    public internal(set) var isStarted = false
    public internal(set) var isShuttingDown = false
    public internal(set) var outcome: TreeOutcome?
    var readyAnnounced = false
    var safeModeState: SafeModeState?
    var pendingQuestions: [UInt64: PendingQuestion] = [:]
    /// Questions held until the guardian, restarting, is READY again (see askGuardian).
    var questionsForTheReturningGuardian: [GuardianQuestion] = []
    /// A topology reload waiting for the workers it stops (see SupervisionTree+Reload).
    var pendingReload: PendingReload?
    var nextQuestion: UInt64 = 0
    /// Questions put to the guardian about predicted failures (see SupervisionTree+Prediction).
    var predictionQuestions: [UInt64: PredictionQuestion] = [:]
    /// Forecasts not settled yet.
    var ledger = PredictionLedger()
    /// Processes of a previous vigil to take back instead of spawning (see
    /// SupervisionTree+Adoption), consumed as the tree starts.
    var adoptions: [NodeID: AdoptionCandidate] = [:]
    /// Guarded children whose restart across a vigil restart waits for the guardian, with
    /// why (see `start(adopting:restarting:at:)`), consumed as they would be spawned.
    var unseenRestarts: [NodeID: String] = [:]
    /// Candidates `start(adopting:)` found no place for; the shell stops them.
    public internal(set) var unclaimedAdoptions: [NodeID: AdoptionCandidate] = [:]

    public let settings: TreeSettings
    /// The worker with role guardian, if the topology has one (found once: it is asked
    /// about on every exit and every READY).
    private(set) var guardianNode: NodeID?
    /// The workers with `safe_mode: stop`, in start order (found once: safe mode may come
    /// and go often, and the tree may be large).
    private(set) var stoppedInSafeMode: [NodeID] = []
    public var root: NodeID { NodeID(0) }

    public init(topology: Topology, random: any RandomNumberGenerator = SystemRandomNumberGenerator()) {
        self.random = random
        self.settings = topology.settings
        add(.supervisor(topology.root), parent: nil, depth: 0)
        resolveDependencies()
        guardianNode = nodes.indices.first { i in
            if case .worker(let w) = nodes[i].kind { return w.role == .guardian }
            return false
        }.map { nodes[$0].id }
        stoppedInSafeMode = nodes.filter { $0.worker?.safeMode == .stop }.map(\.id)
    }

    private mutating func add(_ spec: ChildSpec, parent: NodeID?, depth: Int) {
        switch spec {
        case .worker(let w) where w.instances > 1:
            for i in 1...w.instances {
                append(Node(id: NodeID(nodes.count), name: "\(w.name).\(i)", parent: parent, depth: depth,
                            kind: .worker(w), pool: w.name))
            }
            byName[w.name] = (nodes.count - w.instances..<nodes.count).map(NodeID.init)
        case .worker(let w):
            append(Node(id: NodeID(nodes.count), name: w.name, parent: parent, depth: depth,
                        kind: .worker(w), pool: nil))
        case .supervisor(let s):
            let id = NodeID(nodes.count)
            append(Node(id: id, name: s.name, parent: parent, depth: depth, kind: .supervisor(s), pool: nil))
            for child in s.children { add(child, parent: id, depth: depth + 1) }
        }
    }

    private mutating func append(_ node: Node) {
        nodes.append(node)
        byName[node.name] = [node.id]
        if let p = node.parent { nodes[p.index].children.append(node.id) }
    }

    private mutating func resolveDependencies() {
        for i in nodes.indices {
            guard let w = nodes[i].worker else { continue }
            nodes[i].dependencies = w.dependsOn.flatMap { byName[$0.name] ?? [] }
        }
    }

    /// Continues incarnation numbers from an earlier run of vigil (from its journal), so a
    /// child's runs are numbered uniquely across vigil restarts.
    public mutating func continueIncarnations(from previous: [String: UInt64]) {
        for i in nodes.indices where nodes[i].worker != nil {
            nodes[i].incarnation = max(nodes[i].incarnation, previous[nodes[i].name] ?? 0)
            nodes[i].lastIncarnation = nodes[i].incarnation
        }
    }

    // MARK: Queries

    /// Every node, in start order.
    public var nodeIDs: [NodeID] { nodes.map(\.id) }
    public func name(of id: NodeID) -> String { nodes[id.index].name }
    public func workerSpec(of id: NodeID) -> WorkerSpec? { nodes[id.index].worker }
    public func pid(of id: NodeID) -> Int32? { nodes[id.index].pid }
    public func incarnation(of id: NodeID) -> UInt64 { nodes[id.index].incarnation }
    public func restarts(of id: NodeID) -> Int { nodes[id.index].restarts }
    public func parent(of id: NodeID) -> NodeID? { nodes[id.index].parent }
    /// How many times supervisor `id` has started. Each start brings a fresh restart
    /// intensity window, so an observer checking the window (the simulation's invariant
    /// checker) knows which restarts belong to the same one.
    public func activations(of id: NodeID) -> Int { nodes[id.index].activations }
    /// True while supervisor `id` is terminating children (a cascade, an escalation, its
    /// own stop): what it terminates goes last-started first.
    public func isTerminatingChildren(_ id: NodeID) -> Bool { nodes[id.index].plan != nil }
    /// True while vigil is terminating this child on purpose (its group may then finish
    /// shutting down within `shutdown` after the leader exits).
    public func isBeingStopped(_ id: NodeID) -> Bool {
        if case .stopping = nodes[id.index].state { return true }
        return false
    }

    /// The same for one incarnation: during a handoff the node has two processes, and the
    /// outgoing one is being stopped while the incoming one is not.
    public func isBeingStopped(_ id: NodeID, incarnation: UInt64) -> Bool {
        if let side = nodes[id.index].overlap, side.process.incarnation == incarnation {
            if case .leaving = side { return true }
            return false
        }
        return incarnation == nodes[id.index].incarnation && isBeingStopped(id)
    }

    /// The nodes a name stands for: one child, a pool's instances, or a supervisor.
    public func resolve(_ name: String) -> [NodeID] { byName[name] ?? [] }
    /// The next time the core wants a `.tick`, if any.
    public var nextDeadline: Instant? { timers.earliest }

    /// True when a worker is READY, a supervisor has every child it cares about READY, or a
    /// child finished successfully (a transient job that exited 0 satisfies dependents).
    /// (Fields are read in place, not by copying the node: this runs for every dependency
    /// of every waiting node after every event.)
    public func isReady(_ id: NodeID) -> Bool {
        // Fields are read in place: a copy of the whole Node (its spec, strings, arrays)
        // per call made the tree's start and every reconcile cost O(n) copies.
        let i = id.index
        if nodes[i].finished { return nodes[i].lastExit == .exited(0) || nodes[i].isSupervisor }
        guard case .running = nodes[i].state else { return false }
        guard nodes[i].isSupervisor else { return true }
        for c in nodes[i].children {
            let k = c.index
            if nodes[k].held { continue }
            if nodes[k].finished, case .worker(let w) = nodes[k].kind, w.restart == .temporary { continue }
            if !isReady(c) { return false }
        }
        return true
    }

    // MARK: Events

    /// A heartbeat from a worker: O(1) and no effects, so a thousand workers beating every
    /// second cost next to nothing. The watchdog timer looks at the last beat when it fires.
    public mutating func heartbeat(_ id: NodeID, incarnation: UInt64, at now: Instant) {
        guard nodes[id.index].incarnation == incarnation else { return }
        nodes[id.index].lastHeartbeat = now
        nodes[id.index].watchdogGraceUsed = false
    }

    /// Handles one event at `now` and returns the effects to carry out, in order.
    public mutating func handle(_ event: Event, at now: Instant) -> [Effect] {
        begin(at: now)
        if handleSideEvent(event) { return finish() }
        switch event {
        case .start:
            if !isStarted {
                isStarted = true
                nodes[0].state = .idle
            }
        case .spawned(let id, let inc, let pid): spawned(id, inc, pid)
        case .spawnFailed(let id, let inc, let errno):
            guard nodes[id.index].incarnation == inc else { break }
            emit(.spawnFailed, id, detail: "could not start \(nodes[id.index].worker?.argv.first ?? "?"): \(ErrnoName.describe(errno))")
            exited(id, inc, .spawnFailed(errno))
        case .ready(let id, let inc): ready(id, inc)
        case .exited(let id, let inc, let status): exited(id, inc, status)
        case .protocolViolation(let id, let inc, let why):
            let n = nodes[id.index]
            guard n.incarnation == inc, n.isAlive, let pid = n.pid else { break }
            if case .stopping = n.state { break }
            emit(.protocolViolation, id, detail: "\(why); killing its process group")
            nodes[id.index].state = .stopping(.protocolViolation(why))
            effects.append(.signal(id, pid: pid, signal: SignalName.kill))
        case .tick: fireTimers()
        case .shutdown:
            if isStarted && !isShuttingDown && outcome == nil {
                isShuttingDown = true
                emit(.terminate, root, detail: "stopping the tree in reverse start order")
                terminateSupervisor(root, then: .stopSelf(thenIdle: false))
            }
        case .forceShutdown:
            isShuttingDown = true
            for n in nodes where n.isAlive {
                if let pid = n.pid { effects.append(.signal(n.id, pid: pid, signal: SignalName.kill)) }
            }
            killSideProcesses()
            if nodes[0].plan == nil && nodes[0].state != .stopped {
                terminateSupervisor(root, then: .stopSelf(thenIdle: false))
            }
        case .verdict(let id, let v): verdict(id, v)
        case .guardianOrder(let from, let order): guardianOrder(from: from, order)
        case .advice(let from, let advice): advise(advice, from: from)
        case .memoryLimitExceeded(let id, let inc, let rss): memoryLimitExceeded(id, inc, rssBytes: rss)
        }
        return finish()
    }

    mutating func begin(at now: Instant) {
        self.now = now
        effects.removeAll(keepingCapacity: true)
    }

    /// Advances plans and starts what can start, until nothing changes.
    mutating func finish() -> [Effect] {
        completeReloadIfReady()
        repeat {
            while let s = dirty.popLast() { advance(s) }
            reconcile()
        } while !dirty.isEmpty
        if !readyAnnounced, isStarted, !isShuttingDown, outcome == nil, isReady(root) {
            readyAnnounced = true
            emit(.treeReady, root, detail: "every child is READY")
            effects.append(.treeReady)
        }
        return effects
    }

    mutating func emit(_ kind: RecordKind, _ id: NodeID, detail: String = "") {
        let n = nodes[id.index]
        effects.append(.record(Record(kind, node: n.name, pid: n.pid,
                                      incarnation: n.worker == nil ? nil : n.incarnation, detail: detail)))
    }

    /// A record about a process of `id` that is not (or no longer) the node's own: a
    /// handoff's side process.
    mutating func emit(_ kind: RecordKind, _ id: NodeID, process: SideProcess, detail: String) {
        effects.append(.record(Record(kind, node: nodes[id.index].name, pid: process.pid,
                                      incarnation: process.incarnation, detail: detail)))
    }

    /// The next incarnation number of a worker, never one given out before.
    mutating func nextIncarnation(_ id: NodeID) -> UInt64 {
        nodes[id.index].lastIncarnation = max(nodes[id.index].lastIncarnation, nodes[id.index].incarnation) + 1
        return nodes[id.index].lastIncarnation
    }

    private mutating func spawned(_ id: NodeID, _ inc: UInt64, _ pid: Int32) {
        guard nodes[id.index].incarnation == inc else { return }
        nodes[id.index].pid = pid
        nodes[id.index].startedAt = now
        nodes[id.index].watchdogLimit = nodes[id.index].worker?.watchdog
        nodes[id.index].watchdogGraceUsed = false
        nodes[id.index].readyDeadline = nil
        nodes[id.index].stopDeadline = nil
        emit(.spawned, id, detail: "incarnation \(inc)")
        switch nodes[id.index].state {
        case .spawning where nodes[id.index].worker?.readiness == .exec:
            nodes[id.index].state = .starting
            ready(id, inc)
        case .spawning:
            nodes[id.index].state = .starting
            let timeout = nodes[id.index].worker?.readyTimeout ?? .seconds(10)
            nodes[id.index].readyDeadline = now + timeout
            timers.schedule(.readyTimeout(id, incarnation: inc), at: now + timeout)
        case .stopping:
            // Terminated while the spawn was in flight: signal it now that it has a pid.
            signalTermination(id)
        default: break
        }
    }

    private mutating func ready(_ id: NodeID, _ inc: UInt64) {
        guard nodes[id.index].incarnation == inc, nodes[id.index].state == .starting else { return }
        nodes[id.index].state = .running
        nodes[id.index].readyAt = now
        nodes[id.index].lastHeartbeat = now
        if let watchdog = nodes[id.index].watchdogLimit {
            timers.schedule(.watchdog(id, incarnation: inc), at: now + watchdog)
        }
        let took = now.duration(since: nodes[id.index].startedAt ?? now)
        emit(.ready, id, detail: "after \(formatMilliseconds(took))")
        settleForecasts(ready: id)
        if id == guardianNode { guardianReturned() }
    }

    private mutating func fireTimers() {
        while let (due, dueAt) = timers.popDue(at: now) {
            if sideTimerFired(due) { continue }
            switch due {
            case .readyTimeout(let id, let inc):
                let n = nodes[id.index]
                guard n.incarnation == inc, n.state == .starting, now >= (n.readyDeadline ?? now) else { continue }
                emit(.readyTimeout, id, detail: "no READY within \(n.worker?.readyTimeout.topologyText ?? "?"); a failed start")
                nodes[id.index].state = .stopping(.readyTimeout)
                signalTermination(id)
            case .shutdownTimeout(let id, let inc):
                let n = nodes[id.index]
                guard n.incarnation == inc, case .stopping = n.state, let pid = n.pid, now >= (n.stopDeadline ?? now) else { continue }
                emit(.kill, id, detail: n.state == .stopping(.watchdog)
                     ? "still running after SIGABRT and its grace; SIGKILL to its group"
                     : "still running after its shutdown timeout; SIGKILL to its group")
                effects.append(.signal(id, pid: pid, signal: SignalName.kill))
            case .backoff(let id):
                guard case .backoff(let until) = nodes[id.index].state, until <= now else { continue }
                nodes[id.index].state = .idle
            case .guardianTimeout(let id):
                guardianTimedOut(id)
            case .predictionHorizon(let id):
                forecastHorizonPassed(id)
            case .watchdog(let id, let inc):
                let n = nodes[id.index]
                guard n.incarnation == inc, n.state == .running, let limit = n.watchdogLimit,
                      let beat = n.lastHeartbeat else { continue }
                if now.duration(since: beat) < limit {
                    timers.schedule(.watchdog(id, incarnation: inc), at: beat + limit)
                    continue
                }
                let late = now.duration(since: dueAt)
                if late > Self.watchdogGraceThreshold(limit), !n.watchdogGraceUsed {
                    // vigil itself checked late (stopped, starved): the child's heartbeats
                    // may be waiting unread. One more period instead of a kill storm.
                    nodes[id.index].watchdogGraceUsed = true
                    emit(.watchdog, id, detail: "watchdog checked \(formatMilliseconds(late)) late (vigil was not running on time): grace of \(limit.topologyText) before judging it hung")
                    timers.schedule(.watchdog(id, incarnation: inc), at: now + limit)
                    continue
                }
                watchdogFired(id, detail: "no heartbeat for \(formatMilliseconds(now.duration(since: beat))) (watchdog \(limit.topologyText)): hung")
            }
        }
    }

    /// Starts every idle node whose parent is active and whose dependencies are READY, in
    /// start order. A supervisor that starts gets a fresh intensity window and fresh children,
    /// like a new OTP supervisor process.
    mutating func reconcile() {
        guard isStarted, outcome == nil else { return }
        // A worker whose side process (a handoff's) is still going away starts once it is gone.
        // In start order, looking for the next idle node only after this one is handled: a
        // supervisor that starts makes its children (later in start order) idle, and they
        // start in the same pass.
        // Waiting nodes are parked on the dependency they wait for (see NodeStore).
        nodes.wakeWaiters()
        var next = nodes.nextStartable(from: 0)
        while let i = next {
            defer {
                nodes.wakeWaiters()
                next = nodes.nextStartable(from: i + 1)
            }
            guard nodes[i].overlap == nil else { continue }
            let id = nodes[i].id
            if let p = nodes[i].parent {
                guard nodes[p.index].state == .running, nodes[p.index].plan == nil else {
                    nodes.park(i, on: p.index)
                    continue
                }
            } else if isShuttingDown {
                continue
            }
            // An adopted process is already running: dependencies gate starts, not it.
            if let adopted = adoptions.removeValue(forKey: id) {
                adopt(id, adopted)
                continue
            }
            if let waitingFor = nodes[i].dependencies.first(where: { !isReady($0) }) {
                nodes.park(i, on: waitingFor.index)
                continue
            }
            if let reason = unseenRestarts.removeValue(forKey: id) {
                restartUnseen(id, reason: reason)
                continue
            }
            if nodes[i].isSupervisor {
                nodes[i].state = .running
                nodes[i].window.reset()
                nodes[i].activations += 1
                nodes[i].startedAt = now
                nodes[i].readyAt = now
                for c in nodes[i].children { refresh(c) }
            } else {
                nodes[i].incarnation = nextIncarnation(id)
                nodes[i].state = .spawning
                nodes[i].readyAt = nil
                effects.append(.spawn(id, incarnation: nodes[i].incarnation))
            }
        }
    }

    /// A child of a supervisor that (re)starts begins from its spec again.
    private mutating func refresh(_ id: NodeID) {
        // What safe mode keeps down stays down, however its supervisor (re)starts.
        nodes[id.index].state = nodes[id.index].downForSafeMode ? .stopped : .idle
        nodes[id.index].held = false
        nodes[id.index].finished = false
        nodes[id.index].consecutiveFailures = 0
    }

    func formatMilliseconds(_ d: Duration) -> String {
        let ms = d.milliseconds
        return ms < 10 ? "\(Double(Int(ms * 100)) / 100)ms" : ms < 10_000 ? "\(Int(ms))ms" : "\(Int(ms / 1000))s"
    }
}
