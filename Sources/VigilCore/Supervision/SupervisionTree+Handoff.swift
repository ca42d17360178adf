/// Planned overlapping handoffs (`handoff: overlap`, `vigil restart --handoff NAME`): the
/// incoming incarnation starts beside the running one, and the outgoing one is stopped only
/// once the incoming is READY, so the service never has a gap.
///
/// The node's own fields (`incarnation`, `pid`, `state`) always describe the process that
/// *is* the child; the other one is its `overlap`:
///
///     running N ──handoff──▶ running N + incoming M ──M READY──▶ running M + leaving N ──N gone──▶ running M
///                                 │   │                                    (.replaced)
///                                 │   └─ M exits / no READY / spawn fails / protocol violation:
///                                 │      running N + leaving M (.failed) ──M gone──▶ running N
///                                 └─ N dies: starting M (M is the child; no restart decision)
///
/// Rules:
/// - A handoff is an operator's planned replacement, not a failure: restarts, intensity and
///   backoff are untouched, and dependents (and `rest_for_one` siblings) are not restarted.
/// - If the incoming fails to start, the outgoing keeps running and the handoff is reported
///   failed; it does not count as a failure of the running child.
/// - If the outgoing dies during the overlap, the incoming (spawned already, not READY yet)
///   becomes the child: a replacement is on its way, so nothing is restarted or counted.
///   Should the incoming then fail too, that is an ordinary failed start of the child.
/// - Each exit is attributed to its own incarnation: the outgoing's exit after the takeover
///   is journaled as its own and changes nothing else.
/// - Terminating the node (stop, a cascade, safe mode, vigil shutting down) abandons the
///   handoff: the incoming is stopped with the outgoing, and the node is down (or started
///   again) only when both are gone. A worker never has more than two processes.
/// - One handoff at a time per worker: a second one, or a restart, is refused until the
///   first is over.
extension SupervisionTree {
    /// Where a worker's overlapping handoff is, for the shell and `vigil status`.
    public enum HandoffPhase: Hashable, Sendable {
        /// The incoming incarnation is starting beside the running one.
        case starting(incoming: UInt64)
        /// The incoming is READY and is the child; the outgoing is being stopped.
        case stoppingOutgoing(outgoing: UInt64)
        /// The incoming did not start, or the handoff was abandoned: it is being stopped.
        case abandoning(incoming: UInt64)
    }

    /// The handoff in progress on `id`, if any.
    public func handoffPhase(of id: NodeID) -> HandoffPhase? {
        switch nodes[id.index].overlap {
        case nil: nil
        case .incoming(let p): .starting(incoming: p.incarnation)
        case .leaving(let p, .replaced): .stoppingOutgoing(outgoing: p.incarnation)
        case .leaving(let p, _): .abandoning(incoming: p.incarnation)
        }
    }

    /// Why `handoff` of `name` (resolved to `ids`) cannot be done now, if it cannot: checked
    /// for every target before anything is done, so a pool is handed off whole or not at all.
    /// The shell asks before it requests a fresh checkpoint.
    public func handoffRefusal(_ ids: [NodeID], name: String) -> CommandError? {
        if ids.contains(where: { nodes[$0.index].isSupervisor }) {
            return CommandError("\(name) is a supervisor: a handoff replaces a worker (or a pool's instances) from its checkpoint; restart a subtree with vigil restart \(name)")
        }
        if let busy = ids.first(where: { nodes[$0.index].overlap != nil }) {
            return handoffInProgress(busy)
        }
        for id in ids where nodes[id.index].worker?.handoff == .overlap {
            let n = nodes[id.index]
            guard n.state == .running else {
                return CommandError("\(n.name) is \(stateText(id)), not running: an overlapping handoff needs a READY instance to hand off from; use vigil restart \(name)")
            }
            if safeModeState != nil, n.worker?.guarded == true {
                return CommandError("\(n.name) is guarded and the tree is in safe mode: no second instance of it is started; leave safe mode first: vigil safe-mode off")
            }
        }
        return nil
    }

    func handoffInProgress(_ id: NodeID) -> CommandError {
        let n = nodes[id.index]
        let what: String
        switch n.overlap {
        case .incoming(let p)?: what = "incarnation \(p.incarnation) is starting beside incarnation \(n.incarnation)"
        case .leaving(let p, .replaced)?: what = "incarnation \(p.incarnation) is being stopped after incarnation \(n.incarnation) took over"
        case .leaving(let p, _)?: what = "incarnation \(p.incarnation) did not take over and is being stopped"
        case nil: what = "no handoff"
        }
        return CommandError("\(n.name) is in the middle of a handoff (\(what)); wait for it to finish (vigil events \(n.name)), or stop it")
    }

    /// Starts the incoming incarnation beside the running one.
    mutating func beginOverlap(_ id: NodeID, by who: String = "operator") {
        let incoming = SideProcess(incarnation: nextIncarnation(id), pid: nil, startedAt: nil)
        let n = nodes[id.index]
        nodes[id.index].handoffBy = who
        emit(.command, id, detail: "\(who): handoff (overlap)")
        emit(.handoff, id, detail: "starting incarnation \(incoming.incarnation) beside incarnation \(n.incarnation) (pid \(n.pid.map(String.init) ?? "?")), which is stopped once it is READY")
        nodes[id.index].overlap = .incoming(incoming)
        effects.append(.spawn(id, incarnation: incoming.incarnation))
    }

    // MARK: Events about the side process

    /// Handles an event about a handoff's side process (the incoming before it takes over,
    /// the outgoing after). Returns false for every other event.
    mutating func handleSideEvent(_ event: Event) -> Bool {
        let id: NodeID, inc: UInt64
        switch event {
        case .spawned(let i, let n, _), .spawnFailed(let i, let n, _), .ready(let i, let n),
             .exited(let i, let n, _), .protocolViolation(let i, let n, _):
            (id, inc) = (i, n)
        default:
            return false
        }
        guard let side = nodes[id.index].overlap, side.process.incarnation == inc else { return false }
        switch event {
        case .spawned(_, _, let pid): sideSpawned(id, pid: pid)
        case .spawnFailed(_, _, let errno):
            emit(.spawnFailed, id, process: side.process,
                 detail: "could not start \(nodes[id.index].worker?.argv.first ?? "?"): \(ErrnoName.describe(errno))")
            sideExited(id, .spawnFailed(errno))
        case .ready:
            if case .incoming(let p) = side, p.pid != nil { takeOver(id) }
        case .exited(_, _, let status): sideExited(id, status)
        case .protocolViolation(_, _, let why):
            guard let pid = side.process.pid else { break }
            emit(.protocolViolation, id, process: side.process, detail: "\(why); killing its process group")
            effects.append(.signal(id, pid: pid, signal: SignalName.kill))
            if case .incoming(let p) = side { nodes[id.index].overlap = .leaving(p, .failed("protocol violation: \(why)")) }
        default: break
        }
        return true
    }

    private mutating func sideSpawned(_ id: NodeID, pid: Int32) {
        guard var p = nodes[id.index].overlap?.process else { return }
        p.pid = pid
        p.startedAt = now
        emit(.spawned, id, process: p, detail: "incarnation \(p.incarnation) (handoff, beside incarnation \(nodes[id.index].incarnation))")
        switch nodes[id.index].overlap! {
        case .incoming:
            nodes[id.index].overlap = .incoming(p)
            let spec = nodes[id.index].worker!
            if spec.readiness == .exec {
                takeOver(id)
            } else {
                timers.schedule(.readyTimeout(id, incarnation: p.incarnation), at: now + spec.readyTimeout)
            }
        case .leaving(_, let end):
            // Abandoned while the spawn was in flight: stop it now that it has a pid.
            nodes[id.index].overlap = .leaving(p, end)
            signalTermination(id, process: p)
        }
    }

    /// The side process's group is gone: the handoff is over, one way or the other.
    private mutating func sideExited(_ id: NodeID, _ status: ProcessExit) {
        guard let side = nodes[id.index].overlap else { return }
        let p = side.process
        let n = nodes[id.index]
        if case .spawnFailed = status {} else {
            let uptime = p.startedAt.map { now.duration(since: $0) } ?? .zero
            emit(.exited, id, process: p, detail: "\(status) after \(formatMilliseconds(uptime))")
        }
        nodes[id.index].overlap = nil
        dirty.append(n.parent!)
        let keeps = "incarnation \(n.incarnation)\(n.pid.map { " (pid \($0))" } ?? "") stays the child"
        switch side {
        case .incoming:
            let why = if case .spawnFailed = status { "could not be started (\(status))" } else { "exited (\(status)) before READY" }
            handoffFailed(id, incoming: p, why: why, keeps: keeps)
        case .leaving(_, .failed(let why)):
            handoffFailed(id, incoming: p, why: why, keeps: keeps)
        case .leaving(_, .aborted(let why)):
            emit(.handoff, id, process: p, detail: "abandoned (\(why)): incoming incarnation \(p.incarnation) is stopped")
        case .leaving(_, .replaced):
            emit(.handoff, id, detail: "complete: outgoing incarnation \(p.incarnation) is gone; incarnation \(n.incarnation)\(n.pid.map { " (pid \($0))" } ?? "") is the child")
        }
    }

    private mutating func handoffFailed(_ id: NodeID, incoming p: SideProcess, why: String, keeps: String) {
        nodes[id.index].lastReason = "handoff to incarnation \(p.incarnation) failed: \(why)"
        emit(.handoff, id, process: p, detail: "failed: incoming incarnation \(p.incarnation) \(why); \(keeps), and this is not counted as its failure")
    }

    /// The incoming is READY: it becomes the child, and the outgoing is stopped.
    private mutating func takeOver(_ id: NodeID) {
        guard case .incoming(let incoming) = nodes[id.index].overlap, let pid = incoming.pid else { return }
        let n = nodes[id.index]
        let outgoing = SideProcess(incarnation: n.incarnation, pid: n.pid, startedAt: n.startedAt)
        var alreadyKilled = false
        if case .stopping = n.state { alreadyKilled = true }  // hung or cut off: SIGKILL is out
        nodes[id.index].incarnation = incoming.incarnation
        nodes[id.index].pid = pid
        nodes[id.index].startedAt = incoming.startedAt
        nodes[id.index].readyAt = now
        nodes[id.index].lastHeartbeat = now
        nodes[id.index].state = .running
        nodes[id.index].lastReason = "handoff by \(n.handoffBy) (overlap)"
        nodes[id.index].overlap = .leaving(outgoing, .replaced)
        if let watchdog = n.worker?.watchdog {
            timers.schedule(.watchdog(id, incarnation: incoming.incarnation), at: now + watchdog)
        }
        let took = now.duration(since: incoming.startedAt ?? now)
        emit(.ready, id, detail: "after \(formatMilliseconds(took))")
        settleForecasts(ready: id)
        emit(.handoff, id, detail: "incarnation \(incoming.incarnation) is READY and takes over; stopping outgoing incarnation \(outgoing.incarnation) (pid \(outgoing.pid.map(String.init) ?? "?"))\(alreadyKilled ? ", already being killed" : "")")
        if !alreadyKilled { signalTermination(id, process: outgoing) }
    }

    /// The outgoing died (crashed, hung, cut off) while the incoming was still starting: the
    /// incoming becomes the child, as if it were a restart already under way. Called from
    /// `exited` once the outgoing's exit is journaled.
    mutating func outgoingDiedDuringHandoff(_ id: NodeID, _ status: ProcessExit) {
        guard case .incoming(let incoming) = nodes[id.index].overlap else { return }
        let old = nodes[id.index].incarnation
        nodes[id.index].overlap = nil
        nodes[id.index].incarnation = incoming.incarnation
        nodes[id.index].pid = incoming.pid
        nodes[id.index].startedAt = incoming.startedAt
        nodes[id.index].readyAt = nil
        // Its ready timeout was scheduled when it was spawned, for this incarnation.
        nodes[id.index].state = incoming.pid == nil ? .spawning : .starting
        nodes[id.index].lastReason = "incarnation \(old) died during its handoff (\(status)); incarnation \(incoming.incarnation) took over"
        emit(.handoff, id, detail: "outgoing incarnation \(old) died during the overlap (\(status)); incoming incarnation \(incoming.incarnation) becomes the child (not READY yet); nothing is restarted or counted")
        dirty.append(nodes[id.index].parent!)
    }

    /// The node itself is being terminated: an incoming that has not taken over is stopped
    /// too. An outgoing already being stopped needs nothing more.
    mutating func abandonHandoff(_ id: NodeID, because why: String) {
        guard case .incoming(let p) = nodes[id.index].overlap else { return }
        nodes[id.index].overlap = .leaving(p, .aborted(why))
        emit(.handoff, id, process: p, detail: "abandoned (\(why)): stopping incoming incarnation \(p.incarnation) with incarnation \(nodes[id.index].incarnation)")
        signalTermination(id, process: p)  // nothing yet if its spawn is in flight: when it reports
    }

    /// A ready or shutdown deadline of a side process. Returns false for every other timer.
    mutating func sideTimerFired(_ due: TimerPurpose) -> Bool {
        switch due {
        case .readyTimeout(let id, let inc):
            guard case .incoming(let p) = nodes[id.index].overlap, p.incarnation == inc, p.pid != nil else { return false }
            let limit = nodes[id.index].worker?.readyTimeout.topologyText ?? "?"
            emit(.readyTimeout, id, process: p, detail: "no READY within \(limit); the handoff fails and incarnation \(nodes[id.index].incarnation) stays")
            nodes[id.index].overlap = .leaving(p, .failed("sent no READY within \(limit)"))
            signalTermination(id, process: p)
            return true
        case .shutdownTimeout(let id, let inc):
            guard case .leaving(let p, _) = nodes[id.index].overlap, p.incarnation == inc, let pid = p.pid else { return false }
            emit(.kill, id, process: p, detail: "still running after its shutdown timeout; SIGKILL to its group")
            effects.append(.signal(id, pid: pid, signal: SignalName.kill))
            return true
        default:
            return false
        }
    }

    /// A second SIGINT: SIGKILL to every side process too.
    mutating func killSideProcesses() {
        for n in nodes {
            if let pid = n.overlap?.process.pid { effects.append(.signal(n.id, pid: pid, signal: SignalName.kill)) }
        }
    }
}
