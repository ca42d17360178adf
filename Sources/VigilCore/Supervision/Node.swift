/// Why a worker is being stopped, which decides what its exit means.
enum StopCause: Hashable, Sendable {
    /// Part of a supervisor's termination plan (cascade, escalation, tree shutdown): the
    /// plan decides what happens next.
    case plan
    /// `vigil stop`: stays down until `vigil start`.
    case operatorStop
    /// `vigil restart`: starts again as soon as it is gone, not counted as a restart.
    case operatorRestart
    /// No READY within the ready timeout: the exit is a failed start.
    case readyTimeout
    /// No heartbeat within the watchdog: the exit is a failure (hung).
    case watchdog
    /// The child broke the channel protocol: the exit is a failure.
    case protocolViolation(String)
    /// The child exceeded its `memory_limit` and was killed: the exit is a failure.
    case memoryLimit(String)
}

/// Where a node is in its life. Workers use all of these; supervisors use idle, backoff,
/// running (active), stopping (terminating their children) and stopped.
enum NodeState: Hashable, Sendable {
    /// Will be started as soon as its parent is running and its dependencies are READY.
    case idle
    /// Will become idle at `until`.
    case backoff(until: Instant)
    /// The spawn effect is out; the shell has not reported a pid yet.
    case spawning
    /// Spawned, waiting for READY.
    case starting
    /// READY (a worker) or active (a supervisor).
    case running
    /// Signalled (or terminating its children), waiting for the exit.
    case stopping(StopCause)
    /// Down, waiting for the guardian's verdict on question `id` before a restart.
    case awaitingGuardian(UInt64)
    /// Down, and not started by itself: held by an operator, finished, or stopped by a plan
    /// whose continuation has not run yet.
    case stopped
}

/// What a supervisor does once a termination plan has finished.
enum Continuation: Hashable, Sendable {
    /// A cascade: restart these children (in start order) after `delay`.
    case restart([NodeID], delay: Duration)
    /// Restart intensity exceeded: the supervisor fails to its parent.
    case fail(String)
    /// The supervisor itself is terminated; `thenIdle` starts it again (operator restart).
    case stopSelf(thenIdle: Bool)
}

/// A supervisor's termination in progress: steps run one after another, the children in
/// one step (a pool's instances) in parallel, like OTP terminating a simple_one_for_one.
struct Plan: Hashable, Sendable {
    var steps: [[NodeID]]
    var inFlight: Set<NodeID> = []
    var then: Continuation

    func contains(_ id: NodeID) -> Bool {
        inFlight.contains(id) || steps.contains(where: { $0.contains(id) })
    }

    mutating func remove(_ id: NodeID) {
        inFlight.remove(id)
        for i in steps.indices { steps[i].removeAll(where: { $0 == id }) }
    }
}

/// The second process of a worker during an overlapping handoff: the incoming incarnation
/// before it is READY, or the outgoing one after. The node's own `incarnation`, `pid` and
/// `state` always describe the process that *is* the child; this one is beside it.
struct SideProcess: Hashable, Sendable {
    var incarnation: UInt64
    /// nil while its spawn is in flight.
    var pid: Int32?
    var startedAt: Instant?
}

/// Why a side process is being stopped, which decides what its exit means.
enum SideEnd: Hashable, Sendable {
    /// The outgoing incarnation, after the incoming became READY: the handoff completes
    /// when it is gone.
    case replaced
    /// An incoming incarnation that did not start (ready timeout, protocol violation): the
    /// handoff fails when it is gone, and the running incarnation stays the child.
    case failed(String)
    /// An incoming incarnation stopped because the node itself is being terminated (stop,
    /// cascade, safe mode, vigil shutting down).
    case aborted(String)
}

/// An overlapping handoff in progress on one worker.
enum Overlap: Hashable, Sendable {
    /// The incoming incarnation is spawning or starting beside the running one.
    case incoming(SideProcess)
    /// A side process is being stopped; the node waits for it before it is down or spawned
    /// again, so a worker never has more than two processes.
    case leaving(SideProcess, SideEnd)

    var process: SideProcess {
        switch self {
        case .incoming(let p), .leaving(let p, _): p
        }
    }
}

enum NodeKind: Hashable, Sendable {
    case worker(WorkerSpec)
    case supervisor(SupervisorSpec)
}

/// One node of the tree with everything the core knows about it.
struct Node: Sendable {
    let id: NodeID
    let name: String
    let parent: NodeID?
    let depth: Int
    let kind: NodeKind
    /// For pool instances, the pool's name (`strategy-runner` for `strategy-runner.2`).
    let pool: String?
    var children: [NodeID] = []
    var dependencies: [NodeID] = []

    var state: NodeState = .idle
    var incarnation: UInt64 = 0
    /// The highest incarnation number given out: ahead of `incarnation` while an incoming
    /// one starts beside it, so a handoff that fails never has its number reused.
    var lastIncarnation: UInt64 = 0
    /// An overlapping handoff in progress: the second process beside this one.
    var overlap: Overlap?
    var pid: Int32?
    var startedAt: Instant?
    var readyAt: Instant?
    var lastHeartbeat: Instant?
    /// This incarnation's watchdog: the spec's, unless the child set its own with
    /// `WATCHDOG_USEC=` (systemd's rule); reset at every spawn.
    var watchdogLimit: Duration?
    /// Whether this incarnation already had the grace of a late watchdog check (vigil not
    /// running on time); cleared by its next heartbeat.
    var watchdogGraceUsed = false
    /// When a start or a stop gives up, as extended by `EXTEND_TIMEOUT_USEC=`; the timers
    /// scheduled for earlier deadlines are then ignored.
    var readyDeadline: Instant?
    var stopDeadline: Instant?
    /// Restarts decided for this node (cascades included).
    var restarts = 0
    /// Consecutive failures since the last stable run, for backoff.
    var consecutiveFailures = 0
    var lastExit: ProcessExit?
    var lastExitAt: Instant?
    var lastReason: String?
    /// Who asked for the overlapping handoff under way (an operator, the predictor).
    var handoffBy = "operator"
    /// Down on an operator's order.
    var held = false
    /// Exited and, by its restart type, not restarted (temporary, or transient exit 0).
    var finished = false
    /// Down because of safe mode (stopped by it, or a guarded restart it refused): started
    /// again when safe mode ends.
    var downForSafeMode = false

    // Supervisors only.
    var window = RestartWindow()
    /// How many times this supervisor has started (each start is a new OTP supervisor
    /// process with a fresh intensity window).
    var activations = 0
    var plan: Plan?
    /// Children that failed while a plan was running, handled when it ends.
    var deferred: [NodeID] = []

    var isSupervisor: Bool {
        if case .supervisor = kind { return true }
        return false
    }

    var worker: WorkerSpec? {
        if case .worker(let w) = kind { return w }
        return nil
    }

    var restartType: RestartType { worker?.restart ?? .permanent }

    var backoff: BackoffPolicy {
        switch kind {
        case .worker(let w): w.backoff
        case .supervisor(let s): s.backoff
        }
    }

    /// A process exists (or is about to) that must exit before this node is down.
    var isAlive: Bool {
        switch state {
        case .spawning, .starting, .running, .stopping: true
        case .idle, .backoff, .stopped, .awaitingGuardian: false
        }
    }
}
