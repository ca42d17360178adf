import CShim
import Glibc
import VigilCore

/// Collects exited children and decides when a child's whole process group is gone.
///
/// vigil is a child subreaper, so a worker's own children are re-parented to vigil when the
/// worker dies. One SIGCHLD (through a signalfd, so none is lost) reaps every exited child
/// at once with waitid(P_ALL, WNOHANG): group leaders and orphans alike, so no zombie is
/// ever left. When a leader exits, whatever remains of its group is SIGKILLed (nobody is
/// left to shut it down in order), and the exit is reported only once `kill(-pgid, 0)`
/// says no process of the group is left.
public struct Reaper {
    /// A leader whose exit is known but whose group still has members.
    struct Draining {
        var status: ProcessExit
    }

    private var draining: [Int32: Draining] = [:]

    public init() {}

    /// A reaped or fully drained process group: pgid (= the leader's pid) and the leader's
    /// exit status.
    public struct GroupExit: Sendable {
        public var pgid: Int32
        public var status: ProcessExit
    }

    /// Reaps everything that has exited. `isLeader` tells which pids lead a tracked group.
    /// Returns the groups that are now completely gone.
    public mutating func reap(isLeader: (Int32) -> Bool) -> [GroupExit] {
        var gone: [GroupExit] = []
        var pid: pid_t = 0, code: Int32 = 0, status: Int32 = 0
        while vigil_reap(0, 0, &pid, &code, &status) == 1 {
            guard isLeader(pid) else { continue }  // an orphan of some group: reaped, done
            let exit: ProcessExit = code == 1 ? .exited(status) : .signaled(status)
            if kill(-pid, SIGKILL) != 0 && errno == ESRCH {
                gone.append(GroupExit(pgid: pid, status: exit))
            } else {
                draining[pid] = Draining(status: exit)
            }
        }
        for (pgid, d) in draining where kill(-pgid, 0) != 0 && errno == ESRCH {
            draining.removeValue(forKey: pgid)
            gone.append(GroupExit(pgid: pgid, status: d.status))
        }
        return gone
    }

    /// Groups whose leader has exited but whose members are still being killed.
    public var drainingGroups: [Int32] { Array(draining.keys) }
}
