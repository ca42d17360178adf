import CShim
import Glibc
import VigilCore

/// `MAINPID=`: a child names another process of its own group as its main one, as a
/// forking daemon does (its first process forks the real one and exits). As under systemd,
/// the child then lives as long as that process does: the leader's exit is not the
/// child's, and the main process's exit is (its status is the child's, what is left of
/// the group is killed). The process group stays the child's identity: vigil signals the
/// group, and the main process too should it have left it.
extension TreeHost {
    /// Takes a child's `MAINPID=`: it must be a live process of the child's own group (a
    /// stranger's pid would let a child make vigil watch, and signal, any process).
    func setMainPID(_ value: String, of child: LiveChild, sender: Int32) {
        let name = tree.name(of: child.node)
        guard let main = Int32(value), main > 0 else {
            note(child, sender, "sent MAINPID=\(value), which is not a pid: ignored")
            return
        }
        guard main != child.pid else {
            if child.mainPID != nil {
                var c = child
                forgetMain(&c)
                store(c)
                note(child, sender, "MAINPID=\(main): its main process is its first one again")
            }
            return
        }
        guard main != child.mainPID else { return }
        guard kill(main, 0) == 0, getpgid(main) == child.pid else {
            note(child, sender, "sent MAINPID=\(main), which is not a live process of its group (\(child.pid)): ignored")
            return
        }
        let fd = vigil_pidfd_open(main)
        guard fd >= 0 else {
            note(child, sender, "sent MAINPID=\(main), which cannot be watched (\(String(cString: strerror(-fd)))): ignored")
            return
        }
        var c = child
        forgetMain(&c)
        c.mainPID = main
        c.mainPidfd = fd
        nodeByPidfd[fd] = c.node
        nodeByMainPID[main] = c.node
        do { try loop.register(fd, as: .pidfd(fd)) } catch {
            log.note("cannot watch the main process \(main) of \(name): \(error)", .error)
        }
        store(c)
        apply([.record(Record(.mainPID, node: name, pid: main, incarnation: child.incarnation,
                              detail: "its main process is now pid \(main) (MAINPID=, sent by \(sender)): the child lives as long as it does"))])
    }

    private func note(_ child: LiveChild, _ sender: Int32, _ detail: String) {
        apply([.record(Record(.report, node: tree.name(of: child.node), pid: sender, incarnation: child.incarnation, detail: detail))])
    }

    /// Stops watching a main process (replaced, or gone).
    func forgetMain(_ child: inout LiveChild) {
        if child.mainPidfd >= 0 {
            loop.unregister(child.mainPidfd)
            nodeByPidfd.removeValue(forKey: child.mainPidfd)
            close(child.mainPidfd)
        }
        if let m = child.mainPID { nodeByMainPID.removeValue(forKey: m) }
        child.mainPID = nil
        child.mainPidfd = -1
    }

    /// Which tracked child the exit of `pid` ends, if any: the child whose group it leads
    /// (unless its named main process lives on), or the child whose main process it was.
    func groupEnded(byExitOf pid: Int32) -> (NodeID, LiveChild)? {
        if let id = nodeByPID[pid], let child = liveChild(id, pid: pid) {
            if let main = child.mainPID, kill(main, 0) == 0 { return nil }  // the child lives on in it
            return (id, child)
        }
        if let id = nodeByMainPID[pid], let child = live[id] ?? overlapping[id], child.mainPID == pid {
            return (id, child)
        }
        return nil
    }

    /// The main process has exited (its pidfd says so). Reaped here if it is vigil's child
    /// and SIGCHLD has not been handled yet; otherwise (the leader, its parent, is alive)
    /// its status went to the leader and is not known.
    func mainProcessExited(_ child: LiveChild) {
        guard let main = child.mainPID else { return }
        let status = reaper.collect(main) ?? .unknown
        var c = child
        forgetMain(&c)
        c.mainPID = main  // kept until the group is gone, so the leader's exit stays no exit
        store(c)
        let stopping = tree.isBeingStopped(child.node, incarnation: child.incarnation)
        if child.adopted {
            // Not vigil's children: no SIGCHLD will tell when the group is empty; poll.
            if !stopping { _ = kill(-child.pid, SIGKILL) }
            if Leftovers.groupIsGone(child.pid) { groupGone(child.pid, status) } else { drainingAdopted.insert(child.pid) }
            return
        }
        var gone: [Reaper.GroupExit] = []
        reaper.end(child.pid, status, stopping ? .await : .kill, into: &gone)
        for exit in gone { groupGone(exit.pgid, exit.status) }
    }

    /// A signal for the child's group also reaches its main process should it have left
    /// the group (a daemon that called setsid after saying MAINPID=).
    func signalMainOutsideGroup(_ id: NodeID, group: Int32, _ signal: Int32) {
        guard let child = liveChild(id, pid: group), let main = child.mainPID, getpgid(main) != group else { return }
        _ = kill(main, signal)
        if signal == SIGTERM || signal == SIGABRT { _ = kill(main, SIGCONT) }
    }
}
