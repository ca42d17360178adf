/// What a child's process ended with, as the shell observed it once its whole process
/// group was gone.
public enum ProcessExit: Hashable, Sendable, CustomStringConvertible {
    /// `exit(code)`.
    case exited(Int32)
    /// Killed by this signal number.
    case signaled(Int32)
    /// The program could not be started at all (errno from posix_spawn/exec).
    case spawnFailed(Int32)
    /// Gone, with a status nobody could read: an adopted process (no longer vigil's child,
    /// so its parent reaped it), or one that died while no vigil was running. Abnormal.
    case unknown

    public var description: String {
        switch self {
        case .exited(let c): "exit \(c)"
        case .signaled(let s): "signal \(SignalName.of(s))"
        case .spawnFailed(let e): "spawn failed: \(ErrnoName.describe(e))"
        case .unknown: "exit status unknown"
        }
    }
}

/// What a failed exec means, in words an operator can act on (the core imports no libc).
public enum ErrnoName {
    static let known: [Int32: String] = [
        1: "EPERM, operation not permitted",
        2: "ENOENT, no such file or directory (the program, its #! interpreter, or working_directory)",
        7: "E2BIG, argument list too long",
        8: "ENOEXEC, exec format error (a script without a #! line?)",
        12: "ENOMEM, out of memory",
        13: "EACCES, permission denied (not executable, or a directory on the path is not searchable)",
        20: "ENOTDIR, a component of the path is not a directory",
        23: "ENFILE, too many open files in the system",
        24: "EMFILE, vigil has too many open files",
        26: "ETXTBSY, the program is being written",
        40: "ELOOP, too many symbolic links",
        11: "EAGAIN, process limit reached",
    ]

    public static func describe(_ errno: Int32) -> String {
        known[errno].map { "\($0) (errno \(errno))" } ?? "errno \(errno)"
    }
}

/// Signal names for logs, without importing Glibc into the core.
public enum SignalName {
    public static let numbers: [(String, Int32)] = [
        ("SIGHUP", 1), ("SIGINT", 2), ("SIGQUIT", 3), ("SIGILL", 4), ("SIGTRAP", 5),
        ("SIGABRT", 6), ("SIGBUS", 7), ("SIGFPE", 8), ("SIGKILL", 9), ("SIGUSR1", 10),
        ("SIGSEGV", 11), ("SIGUSR2", 12), ("SIGPIPE", 13), ("SIGALRM", 14), ("SIGTERM", 15),
        ("SIGCHLD", 17), ("SIGCONT", 18), ("SIGSTOP", 19), ("SIGTSTP", 20), ("SIGXCPU", 24),
        ("SIGSYS", 31),
    ]

    public static func of(_ number: Int32) -> String {
        numbers.first(where: { $0.1 == number })?.0 ?? "SIG\(number)"
    }

    /// `KILL`, `SIGKILL`, `kill` or `9`.
    public static func number(_ text: String) -> Int32? {
        if let n = Int32(text), n > 0, n < 65 { return n }
        let upper = text.uppercased()
        let full = upper.hasPrefix("SIG") ? upper : "SIG" + upper
        return numbers.first(where: { $0.0 == full })?.1
    }

    public static let term: Int32 = 15
    public static let kill: Int32 = 9
    public static let abort: Int32 = 6
}

/// The kinds of journal record. Raw values are what `vigil events` and the SQLite journal
/// show, so they are part of the interface.
public enum RecordKind: String, Sendable, CaseIterable {
    /// A child's process was spawned (pid, incarnation).
    case spawned
    /// A child a previous vigil started, still running, was taken back (pid, incarnation),
    /// or could not be vouched for and was stopped.
    case adopted
    /// A child said READY.
    case ready
    /// A child named its main process with `MAINPID=` (pid: the main process).
    case mainPID = "main_pid"
    /// A child's process group is gone (detail: exit status).
    case exited
    /// A child could not be spawned.
    case spawnFailed = "spawn_failed"
    /// A child did not say READY in time; its group is killed and the start counts as failed.
    case readyTimeout = "ready_timeout"
    /// Decision: restart a child now or after a delay (detail: reason, delay).
    case restart
    /// Decision: a restart waits for its backoff delay.
    case backoff
    /// Decision: not restarted (temporary, transient normal exit, shutting down).
    case notRestarted = "not_restarted"
    /// Decision: terminate a child (SIGTERM or SIGKILL to its group), with the reason.
    case terminate
    /// The shutdown timeout passed: SIGKILL to the group.
    case kill
    /// A supervisor exceeded its restart intensity and fails to its parent.
    case escalate
    /// The whole tree is READY.
    case treeReady = "tree_ready"
    /// The root supervisor failed: the tree is down.
    case treeFailed = "tree_failed"
    /// The tree was stopped on request (SIGINT/SIGTERM).
    case treeStopped = "tree_stopped"
    /// An operator command (stop, start, restart, kill).
    case command
    /// A step of an overlapping handoff: the incoming incarnation started beside the
    /// running one, took over, or did not make it (and the running one stays); the outgoing
    /// one is gone.
    case handoff
    /// A child sent no heartbeat within its watchdog: hung; its group is killed.
    case watchdog
    /// The guardian was asked whether a guarded child may be restarted.
    case guardianAsked = "guardian_asked"
    /// The guardian's verdict (or the fail-safe when it gave none), and what was done.
    case verdict
    /// The tree entered or left safe mode.
    case safeMode = "safe_mode"
    /// Liquidation was ordered, or a gateway reported a step of it.
    case liquidation
    /// A checkpoint was refused (too large, malformed); the previous one stands.
    case checkpointRefused = "checkpoint_refused"
    /// Descriptors a child stored with FDSTORE=1 (or removed, or that were refused).
    case fdStore = "fd_store"
    /// A fact a worker reported for the journal.
    case report
    /// A child broke the protocol (garbage frames, flooding) and is cut off.
    case protocolViolation = "protocol_violation"
    /// The predictor forecast a failure (detail: `id=N model=M action=A forecast=Ss
    /// horizon=Hs: reason`, then what vigil did), or the forecast's outcome
    /// (`outcome=confirmed|refuted|missed id=N ...`): what precision and recall are computed from.
    case prediction
    /// A child's memory exceeded its `memory_limit`: it was killed.
    case memoryLimit = "memory_limit"
}

/// One journal line: every decision the core makes and every observed fact about a child.
/// The shell appends these to the journal *before* it carries out the effects after them.
public struct Record: Hashable, Sendable {
    public var kind: RecordKind
    /// The child or supervisor this is about; the root's name for tree-level records.
    public var node: String
    public var pid: Int32?
    public var incarnation: UInt64?
    /// A short human sentence: reason, status, delay.
    public var detail: String

    public init(_ kind: RecordKind, node: String, pid: Int32? = nil, incarnation: UInt64? = nil,
                detail: String = "") {
        self.kind = kind
        self.node = node
        self.pid = pid
        self.incarnation = incarnation
        self.detail = detail
    }
}
