import VigilCore

/// syslog(3) levels, journald's `PRIORITY=`: what `journalctl -p` filters on.
enum SyslogPriority: Int, Sendable {
    case critical = 2, error = 3, warning = 4, notice = 5, info = 6

    /// The level of one journal record. Chosen so that `journalctl -p warning` shows what
    /// needs an operator's eye (a crash, a hang, an escalation, safe mode, a liquidation),
    /// `-p notice` adds the decisions vigil took about it, and routine life (spawned, ready)
    /// is info.
    static func of(_ record: Record) -> SyslogPriority {
        switch record.kind {
        case .spawned, .adopted, .ready, .mainPID, .terminate, .guardianAsked, .handoff, .fdStore, .report:
            return .info
        case .exited:
            // "exit 0 after 3.2s" ended on its own terms; a signal or another status is a crash.
            return record.detail.hasPrefix("exit 0 ") || record.detail.hasPrefix("stopped:") ? .notice : .warning
        case .restart, .backoff, .notRestarted, .command, .treeReady, .treeStopped, .verdict, .prediction:
            return .notice
        case .kill, .readyTimeout, .watchdog, .safeMode, .liquidation, .checkpointRefused, .protocolViolation, .memoryLimit:
            return .warning
        case .spawnFailed, .escalate:
            return .error
        case .treeFailed:
            return .critical
        }
    }
}
