import CShim
import Glibc
import VigilCore

/// Collects exited children and decides when a child's whole process group is gone.
///
/// vigil is a child subreaper, so a worker's own children are re-parented to vigil when the
/// worker dies. One SIGCHLD (through a signalfd, so none is lost) reaps every exited child
/// at once with waitid(P_ALL, WNOHANG): group leaders and orphans alike, so no zombie is
/// ever left. Reaping (`collect`) and judging (`settle`) are two steps, so the shell can
/// read what a child said just before it died (a `MAINPID=` above all) in between. The exit is reported only once `kill(-pgid, 0)` says no process of the group
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

    /// One reaped child: its pid and how it ended.
    public struct Reaped: Sendable {
        public var pid: Int32
        public var status: ProcessExit
    }

    /// Reaps every child that has exited, without judging what it means.
    public func collect() -> [Reaped] {
        var reaped: [Reaped] = []
        var pid: pid_t = 0, code: Int32 = 0, status: Int32 = 0
        while vigil_reap(0, 0, &pid, &code, &status) == 1 {
            reaped.append(Reaped(pid: pid, status: code == 1 ? .exited(status) : .signaled(status)))
        }
        return reaped
    }

    /// Reaps this one child if it has exited (it may not be vigil's child at all).
    public func collect(_ pid: Int32) -> ProcessExit? {
        var reaped: pid_t = 0, code: Int32 = 0, status: Int32 = 0
        guard vigil_reap(1, pid, &reaped, &code, &status) == 1 else { return nil }
        return code == 1 ? .exited(status) : .signaled(status)
    }

    /// What the reaped children mean. `group` says, for a pid, which tracked group its
    /// exit ends (its own as leader, or the group whose main process it was; nil: it ends
    /// none, e.g. an orphan, or a leader whose `MAINPID=` lives on) and what to do with the
    /// rest of that group. Returns the groups that are now completely gone.
    public mutating func settle(_ reaped: [Reaped], group: (Int32) -> (pgid: Int32, remnants: Remnants)?) -> [GroupExit] {
        var gone: [GroupExit] = []
        for r in reaped {
            guard let (pgid, remnants) = group(r.pid) else { continue }
            end(pgid, r.status, remnants, into: &gone)
        }
        for (pgid, d) in draining where kill(-pgid, 0) != 0 && errno == ESRCH {
            draining.removeValue(forKey: pgid)
            gone.append(GroupExit(pgid: pgid, status: d.status))
        }
        return gone
    }

    /// A group's main process ended with `status`: SIGKILLs the rest unless it may finish,
    /// and reports the group once it is empty (now, or in a later `settle`).
    /// A group already draining keeps the status it ended with first (its main process's,
    /// not the leader's that the kill brought down after it).
    public mutating func end(_ pgid: Int32, _ status: ProcessExit, _ remnants: Remnants, into gone: inout [GroupExit]) {
        let status = draining[pgid]?.status ?? status
        if kill(-pgid, remnants == .kill ? SIGKILL : 0) != 0 && errno == ESRCH {
            draining.removeValue(forKey: pgid)
            gone.append(GroupExit(pgid: pgid, status: status))
        } else {
            draining[pgid] = Draining(status: status)
        }
    }

    /// Groups whose leader has exited but whose members are still being killed.
    public var drainingGroups: [Int32] { Array(draining.keys) }
}
