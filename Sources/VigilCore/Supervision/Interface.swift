/// A node of the supervision tree: its index in depth-first declaration order, which is
/// also start order. Stable for the life of a `SupervisionTree`.
public struct NodeID: Hashable, Comparable, Sendable, CustomStringConvertible {
    public let index: Int
    public init(_ index: Int) { self.index = index }
    public static func < (a: NodeID, b: NodeID) -> Bool { a.index < b.index }
    public var description: String { "#\(index)" }
}

/// What the shell tells the core. Every event carries the incarnation it is about, so a
/// late message from a process that has already been replaced is recognised and ignored.
public enum Event: Hashable, Sendable {
    /// Bring the tree up.
    case start
    /// The shell spawned the process for a `.spawn` effect.
    case spawned(NodeID, incarnation: UInt64, pid: Int32)
    /// The shell could not spawn it (errno).
    case spawnFailed(NodeID, incarnation: UInt64, errno: Int32)
    /// The child said READY on its channel.
    case ready(NodeID, incarnation: UInt64)
    /// The child's process has exited and no process of its group is left.
    case exited(NodeID, incarnation: UInt64, ProcessExit)
    /// The child broke the channel protocol (garbage, flooding): it is cut off and killed.
    case protocolViolation(NodeID, incarnation: UInt64, String)
    /// Time has advanced to `now`: fire what is due.
    case tick
    /// Stop the whole tree in reverse start order (SIGINT/SIGTERM to vigil).
    case shutdown
    /// Stop now: SIGKILL every process group still alive (a second SIGINT).
    case forceShutdown
    /// The guardian answered restart question `id`.
    case verdict(id: UInt64, GuardianVerdict)
    /// The guardian (the worker `from`) orders something on its own.
    case guardianOrder(from: NodeID, GuardianOrderKind)
    /// The worker `from` (it must have role predictor) forecasts a worker's failure.
    case advice(from: NodeID, PredictionAdvice)
    /// The shell measured the child's memory above its `memory_limit`: it is killed, and
    /// that is a failure like a crash.
    case memoryLimitExceeded(NodeID, incarnation: UInt64, rssBytes: UInt64)
}

/// The guardian's answer to "may this guarded child be restarted?".
public enum GuardianVerdict: Hashable, Sendable {
    case allow
    case deny(String)
    case delay(Duration, String)
    case safeMode(String)
    case liquidate(String)
}

/// What the guardian may order unasked.
public enum GuardianOrderKind: Hashable, Sendable {
    case safeModeOn(String)
    case safeModeOff(String)
    case liquidate(String)
}

/// The question put to the guardian about one guarded child.
public struct GuardianQuestion: Hashable, Sendable {
    public var id: UInt64
    public var child: String
    public var reason: String
    /// Restarts of the child within its supervisor's intensity period.
    public var recentRestarts: Int
    public var incarnation: UInt64
}

/// The tree's safe mode: guarded children are not restarted, workers marked
/// `safe_mode: stop` are stopped, every worker is told.
public struct SafeModeState: Hashable, Sendable {
    public var reason: String
    public var by: String
    public var since: Instant
    public var liquidating: Bool

    /// What survives a restart of vigil (kept in the journal): safe mode is left only on
    /// an operator's or the guardian's word, never by vigil restarting. `since` is on this
    /// process's monotonic clock, so it is kept as wall-clock time: the caller gives both
    /// clocks' `now`.
    public func persisted(now: Instant, wallNanoseconds: Int64) -> String {
        let sinceWall = wallNanoseconds - now.duration(since: since).nanoseconds
        return [liquidating ? "liquidating" : "safe", String(sinceWall), by, reason].joined(separator: "\u{1F}")
    }

    /// The state `persisted` described, on this process's clocks; nil for anything else.
    public init?(persisted text: String, now: Instant, wallNanoseconds: Int64) {
        let parts = text.split(separator: "\u{1F}", maxSplits: 3, omittingEmptySubsequences: false).map(String.init)
        guard parts.count == 4, parts[0] == "safe" || parts[0] == "liquidating", let sinceWall = Int64(parts[1]) else { return nil }
        let age = max(0, wallNanoseconds - sinceWall)
        self.init(reason: parts[3], by: parts[2], since: now - .nanoseconds(age), liquidating: parts[0] == "liquidating")
    }

    public init(reason: String, by: String, since: Instant, liquidating: Bool) {
        self.reason = reason
        self.by = by
        self.since = since
        self.liquidating = liquidating
    }
}

/// An operator command from the control socket.
public enum Command: Hashable, Sendable {
    /// Terminate a child (or a pool, or a supervisor's subtree) and keep it down.
    case stop(String)
    /// Start a child that is down.
    case start(String)
    /// Terminate and start again; does not count against restart intensity.
    case restart(String)
    /// A planned handoff (`vigil restart --handoff`), once the shell has asked the running
    /// instance for a fresh checkpoint: each worker the name stands for is replaced as its
    /// `handoff:` says, `overlap` (the replacement starts beside it and it is stopped once the
    /// replacement is READY) or `stop_first` (an operator restart). Neither counts against
    /// restart intensity, and dependents are not restarted.
    case handoff(String)
    /// Send a signal to a child's process group; what follows is what the process does
    /// (a death is a crash, handled like any other).
    case kill(String, signal: Int32)
}

/// Why a command was refused.
public struct CommandError: Error, Hashable, Sendable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// How the tree ended.
public enum TreeOutcome: Hashable, Sendable {
    /// Stopped on request; everything terminated in order.
    case stopped
    /// The root supervisor exceeded its restart intensity.
    case failed(String)
}

/// What the core asks the shell to do, in order. `.record` effects come before the actions
/// they explain, so the shell can journal them before it acts.
public enum Effect: Hashable, Sendable {
    case record(Record)
    /// Spawn the worker's program; report `.spawned` or `.spawnFailed` for this incarnation.
    case spawn(NodeID, incarnation: UInt64)
    /// Send `signal` to the process group led by `pid`.
    case signal(NodeID, pid: Int32, signal: Int32)
    /// Ask the guardian (a worker with role guardian) about a guarded child.
    case askGuardian(NodeID, GuardianQuestion)
    /// Tell every live worker (safe mode on/off, liquidate).
    case broadcast(key: String, value: String)
    /// A predicted failure is to be forestalled: ask the running worker for a fresh
    /// checkpoint, then `handoffByPrediction` it (as `vigil restart --handoff` does).
    case plannedHandoff(NodeID, reason: String)
    /// A reload took effect: node numbers moved, from the old tree's to the new one's
    /// (children that kept running); every other old number is gone.
    case reloaded([NodeID: NodeID])
    /// Every child is READY for the first time (sd_notify READY=1).
    case treeReady
    /// The tree is down: vigil exits (0 for `.stopped`, non-zero for `.failed`).
    case treeFinished(TreeOutcome)
}
