import CShim
import Glibc
import VigilCore

/// Collects exited children and decides when a child's whole process group is gone.
///
/// vigil is a child subreaper, so a worker's own children are re-parented to vigil when the
/// worker dies. One SIGCHLD (through a signalfd, so none is lost) reaps every exited child
/// at once with waitid(P_ALL, WNOHANG): group leaders and orphans alike, so no zombie is
/// ever left. The exit is reported only once `kill(-pgid, 0)` says no process of the group
/// is left. When a leader dies on its own, what remains of its group is SIGKILLed at once
/// (nobody is left to shut it down in order, and the replacement must not meet it); when
/// vigil is stopping it, the rest of the group keeps its `shutdown` time to finish (a
/// wrapper script whose child does the graceful work), and the core's shutdown timer
/// SIGKILLs the group if it overruns.
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

    /// What to do with the rest of a group whose leader has exited.
    public enum Remnants: Sendable {
        /// SIGKILL them now (the leader crashed).
        case kill
        /// Let them finish (the group is being stopped; its timer will SIGKILL).
        case await
    }

    /// Reaps everything that has exited. `leader` says whether a pid leads a tracked group
    /// (nil: it does not) and what to do with the rest of its group. Returns the groups
    /// that are now completely gone.
    public mutating func reap(leader: (Int32) -> Remnants?) -> [GroupExit] {
        var gone: [GroupExit] = []
        var pid: pid_t = 0, code: Int32 = 0, status: Int32 = 0
        while vigil_reap(0, 0, &pid, &code, &status) == 1 {
            guard let remnants = leader(pid) else { continue }  // an orphan of some group: reaped, done
            let exit: ProcessExit = code == 1 ? .exited(status) : .signaled(status)
            if kill(-pid, remnants == .kill ? SIGKILL : 0) != 0 && errno == ESRCH {
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
