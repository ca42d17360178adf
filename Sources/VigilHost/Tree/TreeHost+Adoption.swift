import CShim
import Glibc
import VigilCore
import VigilWire

/// Re-adoption: vigil died (kill -9, a crash, an upgrade) and its workers did not. The new
/// vigil takes back each one it can vouch for, as it is, instead of starting it again:
///
/// 1. The journal names each child's last run; /proc says whether that pid still exists,
///    leads its own group, and started when the journal says (`Leftovers.survey`). A pid
///    that fails this is someone else's now and is never signalled.
/// 2. Workers on the SDK reconnect to `runtime/adopt.sock` and say who they are; the
///    kernel's pid for the connection must be the run's (`AdoptionSocket`). A worker on
///    the native channel that does not come back within `reconnectionWait` cannot be
///    supervised (no heartbeats, no READY) and is stopped; an unmodified daemon
///    (`readiness: notify` or `exec`) is taken back on pid and start time alone.
/// 3. The core decides what is adopted (`planAdoption`): a child that died while no vigil
///    ran still gets its supervisor's strategy, so its rest_for_one/one_for_all siblings
///    are stopped and start again with it. Everything that is not adopted is stopped
///    before the tree starts, so nothing ever runs twice.
/// 4. Each adopted process gets its descriptors back: a pidfd for its exit (it is not
///    vigil's child any more, so no SIGCHLD and no exit status), its output pipe opened
///    through /proc (the worker kept a read end open meanwhile, so nothing it wrote is
///    lost), its own NOTIFY_SOCKET bound again at the same path, and its channel.
extension TreeHost {
    /// How long a starting vigil waits for the workers it expects back to reconnect. They
    /// retry every 10 ms, so this only matters for a worker that is not running (stopped,
    /// starved): it is then stopped and started again.
    static let reconnectionWait: Duration = .seconds(3)
    /// How often an adopted group whose leader exited is checked for being empty.
    static let adoptedDrainPoll: Duration = .milliseconds(10)

    /// Takes back what the previous vigil left running, stops what cannot be adopted,
    /// closes in the journal the runs that ended unseen; returns what the tree adopts, and
    /// the children for which starting the tree is a restart (with why), which a guarded
    /// one needs the guardian's leave for.
    func adoptSurvivors() -> (adopted: [NodeID: SupervisionTree.AdoptionCandidate], restarting: [NodeID: String]) {
        let survey = Leftovers.survey(journal)
        var stop: [(run: Leftovers.StaleRun, why: String)] = survey.extra.map {
            ($0, "a second process of this child (a handoff was under way when the previous vigil died)")
        }
        stop += survey.remnants.map {
            ($0, "its first process is gone but its process group lives on (a MAINPID= daemon or a helper), which cannot be adopted without it")
        }
        var records: [Record] = survey.ended.map {
            Record(.exited, node: $0.node, pid: $0.pid, incarnation: $0.incarnation,
                   detail: "exit status unknown: it ended while no vigil was running")
        }
        var died = Set(survey.ended.filter { survey.current[$0.node] == nil }.compactMap { single(named: $0.node) })
        var restarting = Dictionary(uniqueKeysWithValues: died.map { ($0, "it ended while no vigil was running") })
        var candidates: [NodeID: (run: Leftovers.StaleRun, pidfd: Int32)] = [:]
        for (name, s) in survey.current.sorted(by: { $0.key < $1.key }) {
            guard let id = single(named: name), tree.workerSpec(of: id) != nil else {
                stop.append((s, "it is not in the topology any more"))
                continue
            }
            if let why = beingStopped(s) {
                stop.append((s, why))
                died.insert(id)
                restarting[id] = why
                continue
            }
            guard configuration.topology.settings.adoptWindow > .zero else {
                stop.append((s, "adopt_window is 0s, so workers are not re-adopted"))
                died.insert(id)
                restarting[id] = "it was left running by the previous vigil and stopped (adopt_window is 0s)"
                continue
            }
            // The pidfd that tells the child's end: its main process's (MAINPID=) or its own.
            let pidfd = vigil_pidfd_open(s.processPID)
            guard pidfd >= 0 else {  // gone since the survey
                records.append(Record(.exited, node: name, pid: s.pid, incarnation: s.run.incarnation,
                                      detail: "exit status unknown: it ended while vigil was starting"))
                died.insert(id)
                restarting[id] = "it ended while vigil was starting"
                continue
            }
            candidates[id] = (s, pidfd)
        }

        var channels: [Int32: Int32] = [:]
        if !candidates.isEmpty {
            let expected = Dictionary(uniqueKeysWithValues: candidates.map {
                ($0.value.run.processPID, AdoptionSocket.Expected(name: tree.name(of: $0.key), incarnation: $0.value.run.run.incarnation))
            })
            let required = Set(candidates.filter { tree.workerSpec(of: $0.key)?.readiness == .channel }.map(\.value.run.processPID))
            let found = AdoptionSocket.collect(at: configuration.paths.adoptSocket, expected: expected, required: required,
                                               until: now + Self.reconnectionWait.nanoseconds)
            for why in found.refused {
                log.note("adoption socket: refused \(why)", .warning)
            }
            channels = found.channels
            for (id, c) in candidates where required.contains(c.run.processPID) && channels[c.run.processPID] == nil {
                stop.append((c.run, "it did not reconnect within \(Self.reconnectionWait) (a worker on the native channel is supervised through it)"))
                died.insert(id)
                restarting[id] = "it did not reconnect to the new vigil and was stopped"
                close(c.pidfd)
                candidates[id] = nil
            }
        }

        let wall = vigil_realtime_ns()
        let plan = tree.planAdoption(
            alive: candidates.mapValues {
                .init(incarnation: $0.run.run.incarnation, pid: $0.run.pid, wasReady: $0.run.run.readyNanoseconds != nil,
                      startedAgo: .nanoseconds(wall - $0.run.run.startedNanoseconds),
                      readyAgo: $0.run.run.readyNanoseconds.map { .nanoseconds(wall - $0) })
            }, died: died)
        for (id, why) in plan.stop.sorted(by: { $0.key < $1.key }) {
            guard let c = candidates.removeValue(forKey: id) else { continue }
            stop.append((c.run, why))
            restarting[id] = why
            close(c.pidfd)
        }
        let adoptedPIDs = Set(candidates.values.map(\.run.processPID))
        for (pid, fd) in channels where !adoptedPIDs.contains(pid) { close(fd) }

        records += stop.map {
            Record(.terminate, node: $0.run.run.node, pid: $0.run.pid, incarnation: $0.run.run.incarnation,
                   detail: "left running by the previous vigil and not adopted: \($0.why); stopping it before the tree starts (SIGTERM, SIGKILL after 5s)")
        }
        if !records.isEmpty { apply(records.map { .record($0) }) }
        if !stop.isEmpty {
            // What they write until they are gone (a farewell on SIGTERM) is kept too.
            let outputs = stop.map { vigil_open_pipe_of($0.run.processPID, 1) }
            Leftovers.stop(stop.map(\.run), grace: .seconds(5))
            for (s, fd) in zip(stop, outputs) where fd >= 0 {
                drainLeftoverOutput(fd, of: s.run.run.node, pid: s.run.processPID)
            }
            apply(stop.map { .record(Record(.exited, node: $0.run.run.node, pid: $0.run.pid, incarnation: $0.run.run.incarnation,
                                            detail: "stopped: left running by the previous vigil, not adopted")) })
        }
        for (id, c) in candidates.sorted(by: { $0.key < $1.key }) {
            takeBack(id, c.run, pidfd: c.pidfd, channel: channels[c.run.processPID])
        }
        return (plan.adopt, restarting)
    }

    /// The previous vigil's restart decisions of the last day, as how long ago, by child.
    func recentRestartDecisions() -> [NodeID: [Duration]] {
        let wall = vigil_realtime_ns()
        guard let byName = try? journal.restartDecisions(since: wall - 86_400_000_000_000) else { return [:] }
        var out: [NodeID: [Duration]] = [:]
        for (name, times) in byName {
            guard let id = single(named: name) else { continue }
            out[id] = times.map { .nanoseconds(wall - $0) }
        }
        return out
    }

    /// Reads a stopped leftover's output pipe to its end into its log, then closes it.
    private func drainLeftoverOutput(_ fd: Int32, of name: String, pid: Int32) {
        defer { close(fd) }
        guard vigil_is_pipe(fd) == 1 else { return }
        var lines = LineAssembler()
        for _ in 0..<1024 {
            let n = outputBuffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            guard n > 0 else { break }  // end, or nothing more (EAGAIN: a writer is left)
            let wall = vigil_realtime_ns()
            outputBuffer.withUnsafeBytes { raw in
                lines.feed(UnsafeRawBufferPointer(rebasing: raw[0..<n])) { emitOutput($0, of: name, pid: pid, at: wall) }
            }
        }
        lines.flush { emitOutput($0, of: name, pid: pid, at: vigil_realtime_ns()) }
    }

    /// Why the previous vigil was ending this process when it died, or nil: its last record
    /// for the pid is a watchdog kill, a terminate or a SIGKILL after the shutdown timeout.
    /// That decision was journaled before it was acted on, so it is carried out, not undone:
    /// a hung process may well run again (the Swift runtime's backtracer survives the
    /// watchdog's SIGABRT and vigil sends SIGCONT with it; the SIGKILL was 1 s away) and
    /// reconnect, yet it is the one the tree was replacing. Counted as a death, so its
    /// supervisor's strategy applies as for any that happened while no vigil ran.
    private func beingStopped(_ s: Leftovers.StaleRun) -> String? {
        guard let events = try? journal.events(limit: 500, node: s.run.node) else { return nil }
        for e in events.reversed() where e.pid == s.pid {
            switch e.kind {
            case RecordKind.watchdog.rawValue, RecordKind.kill.rawValue, RecordKind.terminate.rawValue:
                return "the previous vigil was stopping it (\(e.kind): \(e.detail.prefix(120)))"
            case RecordKind.spawned.rawValue, RecordKind.adopted.rawValue, RecordKind.ready.rawValue:
                return nil
            default:
                continue
            }
        }
        return nil
    }

    /// The node a name stands for when it is exactly one (a pool's name stands for several).
    private func single(named name: String) -> NodeID? {
        let ids = tree.resolve(name)
        return ids.count == 1 ? ids[0] : nil
    }

    /// Gives an adopted process its descriptors back and tracks it as the child.
    private func takeBack(_ id: NodeID, _ s: Leftovers.StaleRun, pidfd: Int32, channel: Int32?) {
        let name = tree.name(of: id)
        var child = LiveChild(node: id, incarnation: s.run.incarnation, pid: s.pid, channel: channel ?? -1)
        child.adopted = true
        if let main = s.mainPID, main != s.pid {
            // A forking daemon: the pidfd is its main process's, which ends the child.
            child.mainPID = main
            child.mainPidfd = pidfd
            nodeByMainPID[main] = id
        } else {
            child.pidfd = pidfd
        }
        do { try loop.register(pidfd, as: .pidfd(pidfd)) } catch {
            log.note("cannot watch the adopted \(name) (pid \(s.pid)) for its exit: \(error)", .error)
        }
        nodeByPidfd[pidfd] = id
        if let fd = channel {
            _ = vigil_set_nonblocking(fd, 1)
            nodeByChannel[fd] = id
            do { try loop.register(fd, as: .channel(fd)) } catch {
                log.note("cannot watch the channel of \(name): \(error)", .error)
            }
        }
        // Its stdout and stderr are one pipe (fd 1 and 2): a new read end through /proc.
        let output = vigil_open_pipe_of(s.processPID, 1)
        if output >= 0 && vigil_is_pipe(output) == 1 {
            child.output = output
            nodeByOutput[output] = id
            do { try loop.register(output, as: .output(output)) } catch {
                log.note("cannot watch the output of \(name): \(error)", .error)
            }
        } else {
            if output >= 0 { close(output) }
            log.note("the output of the adopted \(name) (pid \(s.pid)) cannot be reopened (\(output < 0 ? String(cString: strerror(-output)) : "not a pipe")): its lines are not captured until it restarts", .warning)
        }
        // Its NOTIFY_SOCKET names a path in the runtime directory: bind it again there.
        if let notify = ownNotifySocket(for: name, incarnation: s.run.incarnation) {
            child.notify = notify
            nodeByNotify[notify.fd] = id
            do { try loop.register(notify.fd, as: .childNotify(notify.fd)) } catch {
                log.note("cannot watch the notify socket of \(name): \(error)", .error)
            }
        }
        nodeByPID[s.pid] = id
        live[id] = child
        // The tree's mode, as a new incarnation hears it (its state it has: no restore).
        if tree.safeMode != nil { send(.notice(key: Notice.safeMode, value: "on"), to: child) }
    }

    /// Adopted processes the tree found no place for after all: forgotten and stopped.
    func stopUnclaimedAdoptions() {
        let unclaimed = tree.unclaimedAdoptions
        guard !unclaimed.isEmpty else { return }
        var stale: [Leftovers.StaleRun] = []
        for (id, a) in unclaimed {
            guard let child = live[id], child.pid == a.pid else { continue }
            forget(child)
            stale.append(Leftovers.StaleRun(run: ChildRun(node: tree.name(of: id), incarnation: a.incarnation, pid: a.pid,
                                                          startedNanoseconds: 0, readyNanoseconds: nil, exitedNanoseconds: nil, exit: nil),
                                            pid: a.pid))
        }
        apply(stale.map { .record(Record(.terminate, node: $0.run.node, pid: $0.pid, incarnation: $0.run.incarnation,
                                         detail: "adopted, but the tree keeps this child down; stopping it")) })
        Leftovers.stop(stale, grace: .seconds(5))
        apply(stale.map { .record(Record(.exited, node: $0.run.node, pid: $0.pid, incarnation: $0.run.incarnation,
                                         detail: "stopped: adopted, but the tree keeps this child down")) })
    }

    /// Drops every descriptor and map entry of a process vigil no longer tracks.
    private func forget(_ child: LiveChild) {
        releaseDescriptors(of: child)
        nodeByPID.removeValue(forKey: child.pid)
        _ = removeLiveChild(child.node, pid: child.pid)
    }

    /// A pidfd is readable: an adopted process, or a child's main process, has exited.
    func pidfdReadable(_ fd: Int32) {
        if let id = nodeByPidfd[fd], let child = live[id] ?? overlapping[id], child.mainPidfd == fd {
            mainProcessExited(child)
        } else {
            adoptedProcessExited(fd)
        }
    }

    /// An adopted process has exited. Its exit status went to its parent, not to vigil.
    /// As for vigil's own children, what is left of its group is SIGKILLed unless vigil is
    /// stopping it (then the group keeps its shutdown time); the core hears of it once the
    /// group is empty.
    func adoptedProcessExited(_ fd: Int32) {
        loop.unregister(fd)
        // During an overlapping handoff the node has two processes: the one this pidfd is
        // for may be either (an adopted outgoing one beside a freshly spawned incoming one).
        guard let id = nodeByPidfd.removeValue(forKey: fd),
              let child = [live[id], overlapping[id]].compactMap({ $0 }).first(where: { $0.pidfd == fd }) else {
            close(fd)
            return
        }
        var updated = child
        updated.pidfd = -1
        store(updated)
        close(fd)
        if !tree.isBeingStopped(id, incarnation: child.incarnation) { _ = kill(-child.pid, SIGKILL) }
        if Leftovers.groupIsGone(child.pid) {
            groupGone(child.pid, .unknown)
        } else {
            drainingAdopted.insert(child.pid)
        }
    }

    /// Adopted groups whose leader exited: reported once nothing of them is left.
    func checkDrainingAdopted() {
        for pgid in drainingAdopted.sorted() where Leftovers.groupIsGone(pgid) {
            drainingAdopted.remove(pgid)
            groupGone(pgid, .unknown)
        }
    }
}
