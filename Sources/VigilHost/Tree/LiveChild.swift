import VigilCore

/// What the shell tracks about one running incarnation of a worker.
struct LiveChild {
    var node: NodeID
    let incarnation: UInt64
    let pid: Int32
    /// vigil's end of the channel; -1 once the worker closed it or was cut off.
    var channel: Int32
    /// vigil's end of the child's stdout/stderr pipe; -1 once it reached its end.
    var output: Int32 = -1
    /// The child's output so far that is not yet a whole line.
    var outputLine = LineAssembler()
    /// This child's own NOTIFY_SOCKET (nil: it shares vigil's), so a datagram is its own
    /// even when the sender (a `systemd-notify` helper) is gone before it is read.
    var notify: NotifySocket?
    /// The worker's last STATUS text.
    var statusText: String?
    /// Flood guard: frames received in the current one-second window.
    var framesInWindow = 0
    var windowStart: Int64 = 0
    /// CPU time (clock ticks) at the previous sample, for the predictor's CPU share.
    var lastCPUTicks: UInt64?
    /// When the last heartbeat arrived, and the largest distance of a heartbeat's gap from
    /// the heartbeat interval since the last sample (ns): the predictor's heartbeat jitter.
    var lastHeartbeatArrival: Int64?
    var heartbeatJitter: Int64 = 0
    /// For a process adopted from a previous vigil (not vigil's child, so no SIGCHLD):
    /// the pidfd that tells its exit; -1 otherwise.
    var pidfd: Int32 = -1
    /// Taken back from a previous vigil: not vigil's child, so its group is watched by
    /// polling (no SIGCHLD) once its process has exited.
    var adopted = false
    /// The process the child named with `MAINPID=` (a forking daemon's real one), when it
    /// is not `pid`: its exit, not the leader's, ends the child; and its pidfd.
    var mainPID: Int32?
    var mainPidfd: Int32 = -1
    /// The process to sample and to show: the main one.
    var processPID: Int32 { mainPID ?? pid }
}

/// An operator command that answers once its work is done.
struct PendingCommand {
    let connection: ControlConnection
    let verb: String
    let name: String
    var nodes: [NodeID]
    /// Incarnations before a restart, to know the new process has come.
    var previous: [NodeID: UInt64]
    let since: Int64
    let deadline: Int64
    /// For a reload: the children it starts (by name: the new tree's numbers do not exist
    /// yet), and what it said it would do.
    var waitFor: [String] = []
    var summary = ""
}
