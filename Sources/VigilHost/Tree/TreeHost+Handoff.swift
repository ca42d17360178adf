import CShim
import Glibc
import VigilCore
import VigilWire

/// Planned handoffs (`vigil restart --handoff NAME`), the shell's part: the running instance
/// is asked for a fresh checkpoint, and once it has arrived (or after 3 s, with the last one)
/// the core is told `.handoff`, which replaces each worker as its `handoff:` says. With
/// `stop_first` that is an operator restart; with `overlap` the incoming process starts
/// beside the running one, from the fresh checkpoint, and the outgoing is stopped once the
/// incoming is READY. The command answers when the work is done, or fails with the reason.
///
/// **Checkpoints during an overlap.** The store holds the state of the process that *is*
/// the child, and of nothing else, so whoever starts next starts from what the child had:
/// - Until the incoming takes over, the outgoing is the child: its checkpoints are stored as
///   always (should the handoff fail, it carries on, and a later restart needs its latest).
///   The incoming's checkpoints are held back in memory, not stored: should it fail, they
///   are nobody's.
/// - When the incoming takes over (it is READY, or the outgoing died), the store is set to
///   the incoming's own latest checkpoint; if it sent none, back to the one it was greeted
///   with. What the outgoing checkpointed after that greeting is state the incoming never
///   had: a successor of the incoming must not restore it. Dropping it is journaled.
/// - After the takeover the outgoing's checkpoints (late frames, what it sends while shutting
///   down, what is read from its channel after it died) are refused and journaled, however
///   late they are read. An incoming that did not take over is refused the same way.
///
/// So an `overlap` worker should stop changing its state once it has answered the
/// checkpoint request: whatever it does after that, the incoming does not know.
struct Handoffs {
    /// A request waiting for the fresh checkpoints it asked for.
    struct Pending {
        var nodes: Set<NodeID>
        var waiting: Set<NodeID>
        var name: String
        /// Who asked: an operator's command (answered when done), or nil for a handoff the
        /// predictor's advice set in motion (`reason` says why).
        var connection: ControlConnection?
        var prediction: String? = nil
        var noBlock: Bool
        var since: Int64
        var deadline: Int64
    }

    /// What the shell knows about one worker's overlap, for the checkpoint rule.
    struct Overlap {
        /// The checkpoint the incoming was greeted with (nil: it started from nothing).
        var greeted: (state: [UInt8], incarnation: UInt64)?
        /// The incoming's latest checkpoint, held until it becomes the child.
        var held: [UInt8]?
        /// The outgoing stored a checkpoint after the incoming was greeted.
        var outgoingMovedOn = false
    }

    var pending: [Pending] = []
    var overlaps: [NodeID: Overlap] = [:]

    mutating func checkpointArrived(from id: NodeID) {
        for i in pending.indices { pending[i].waiting.remove(id) }
        overlaps[id]?.outgoingMovedOn = true
    }

    mutating func greeted(_ id: NodeID, with checkpoint: (state: [UInt8], incarnation: UInt64)?) {
        overlaps[id] = Overlap(greeted: checkpoint)
    }

    /// Handoffs whose checkpoints are in, or whose time is up.
    mutating func due(at now: Int64) -> [Pending] {
        let ready = pending.filter { $0.waiting.isEmpty || $0.deadline <= now }
        pending.removeAll { $0.waiting.isEmpty || $0.deadline <= now }
        return ready
    }

    var earliestDeadline: Int64? { pending.map(\.deadline).min() }
}

extension TreeHost {
    // MARK: The command

    /// `restart --handoff [--no-block] NAME`: refuse at once what cannot be done, else ask
    /// the running instances for a fresh checkpoint; `carryOut` follows once it is stored.
    func startHandoff(_ request: ControlRequest, on connection: ControlConnection) {
        let words = request.words.filter { $0 != "--handoff" && $0 != "--no-block" }
        guard words.count == 2 else {
            follow(connection, connection.respond(ok: false, body: "usage: restart --handoff [--no-block] NAME"))
            return
        }
        let name = words[1]
        let ids = tree.resolve(name)
        guard !ids.isEmpty else {
            follow(connection, connection.respond(ok: false, body: "no child named '\(name)'; `vigil status` lists them"))
            return
        }
        if let refusal = handoffRefusal(name, ids) {
            follow(connection, connection.respond(ok: false, body: refusal))
            return
        }
        let running = ids.filter { tree.isReady($0) && tree.workerSpec(of: $0) != nil }
        for id in running { send(.checkpointRequest, to: id) }
        let modes = Set(ids.compactMap { tree.workerSpec(of: $0)?.handoff.rawValue }).sorted().joined(separator: ", ")
        let record = Record(.command, node: name, detail: "\(request.words.joined(separator: " ")) from uid \(request.peerUID) pid \(request.peerPID): asked \(running.count) instance(s) for a fresh checkpoint (handoff: \(modes))")
        apply([.record(record)])
        handoffs.pending.append(Handoffs.Pending(nodes: Set(ids), waiting: Set(running), name: name, connection: connection,
                                                 noBlock: request.arguments.contains("--no-block"),
                                                 since: now, deadline: now + 3_000_000_000))
    }

    /// Why a handoff of `name` cannot start now, before a checkpoint is asked for.
    private func handoffRefusal(_ name: String, _ ids: [NodeID]) -> String? {
        if !tree.isStarted || tree.isShuttingDown || tree.outcome != nil {
            return "the tree is stopping; commands are refused"
        }
        if handoffs.pending.contains(where: { !$0.nodes.isDisjoint(with: ids) }) {
            return "\(name) is already handing off: vigil is waiting for its fresh checkpoint"
        }
        return tree.handoffRefusal(ids, name: name)?.message
    }

    /// The checkpoints are in (or the time is up): the core replaces each worker.
    func carryOut(_ h: Handoffs.Pending) {
        guard let connection = h.connection else { return carryOutPlannedHandoff(h) }
        if !h.waiting.isEmpty {
            let late = h.waiting.map { tree.name(of: $0) }.sorted().joined(separator: ", ")
            apply([.record(Record(.command, node: h.name, detail: "no fresh checkpoint from \(late) within 3s; handing off with the last stored one"))])
        }
        let ids = tree.resolve(h.name)
        let previous = Dictionary(uniqueKeysWithValues: ids.map { ($0, tree.incarnation(of: $0)) })
        switch tree.handle(.handoff(h.name), at: Instant(nanoseconds: now)) {
        case .failure(let error):
            follow(connection, connection.respond(ok: false, body: error.message))
        case .success(let effects):
            apply(effects)
            if h.noBlock {
                let targets = ids.map { tree.name(of: $0) }.joined(separator: ", ")
                follow(connection, connection.respond(ok: true, body: "handoff \(targets): requested; `vigil status` shows the progress\n"))
            } else {
                pendingCommands.append(PendingCommand(connection: connection, verb: "handoff", name: h.name, nodes: ids,
                                                      previous: previous, since: h.since,
                                                      deadline: now + budget("handoff", ids).nanoseconds))
            }
        }
    }

    enum HandoffProgress {
        case inProgress
        /// Every worker runs as its new incarnation, READY, and the old one is gone.
        case done
        /// An overlapping handoff did not take over (the old incarnation runs on): why.
        case failed(String)
    }

    /// Where a `restart --handoff` command is: overlap workers are done once the handoff is
    /// over (the outgoing gone too) with a new incarnation READY; stop_first ones once they
    /// are READY again, as for `restart`.
    func handoffProgress(_ p: PendingCommand, _ states: [NodeStatus]) -> HandoffProgress {
        var failures: [String] = []
        for n in p.nodes {
            if tree.handoffPhase(of: n) != nil { return .inProgress }
            if tree.incarnation(of: n) > p.previous[n]! {
                if !tree.isReady(n) { return .inProgress }
            } else if tree.workerSpec(of: n)?.handoff == .overlap {
                let s = states[n.index]
                failures.append("\(s.name): \(s.lastReason ?? "the incoming instance did not take over"); it is \(s.state)\(s.pid.map { " as pid \($0)" } ?? "")")
            } else {
                return .inProgress
            }
        }
        return failures.isEmpty ? .done : .failed(failures.joined(separator: "; "))
    }

    // MARK: Two processes for one worker

    /// The process of `id` with this pid: its own, or a handoff's second one.
    func liveChild(_ id: NodeID, pid: Int32) -> LiveChild? {
        if let c = live[id], c.pid == pid { return c }
        if let c = overlapping[id], c.pid == pid { return c }
        return nil
    }

    /// The process of `id` reading this channel.
    func liveChild(_ id: NodeID, channel fd: Int32) -> LiveChild? {
        if let c = live[id], c.channel == fd { return c }
        if let c = overlapping[id], c.channel == fd { return c }
        return nil
    }

    /// Writes back a process's bookkeeping to wherever it is kept.
    func store(_ child: LiveChild) {
        if live[child.node]?.pid == child.pid {
            live[child.node] = child
        } else if overlapping[child.node]?.pid == child.pid {
            overlapping[child.node] = child
        }
    }

    /// Forgets a process whose group is gone.
    func removeLiveChild(_ id: NodeID, pid: Int32) -> LiveChild? {
        if live[id]?.pid == pid { return live.removeValue(forKey: id) }
        guard overlapping[id]?.pid == pid else { return nil }
        handoffs.overlaps[id] = nil
        return overlapping.removeValue(forKey: id)
    }

    /// Keeps `live` on the process of each worker's current incarnation: when the core has
    /// made a handoff's incoming process the child, it moves there, the outgoing one (if
    /// still running) moves beside it, and the checkpoint store follows the new child.
    func followHandoffs() {
        guard !overlapping.isEmpty else { return }
        for (id, incoming) in overlapping where incoming.incarnation == tree.incarnation(of: id) {
            let outgoing = live[id]
            live[id] = incoming
            overlapping[id] = outgoing
            tookOver(id, incoming)
        }
    }

    /// The checkpoint rule at the takeover (see `Handoffs`).
    private func tookOver(_ id: NodeID, _ incoming: LiveChild) {
        guard let o = handoffs.overlaps.removeValue(forKey: id) else { return }
        let name = tree.name(of: id)
        let wall = vigil_realtime_ns()
        do {
            if let held = o.held {
                try checkpoints.save(node: name, incarnation: incoming.incarnation, state: held, at: wall)
            } else if o.outgoingMovedOn {
                if let g = o.greeted {
                    try checkpoints.save(node: name, incarnation: g.incarnation, state: g.state, at: wall)
                } else {
                    try checkpoints.remove(node: name)
                }
            }
        } catch {
            log.note("checkpoint of \(name) after its handoff could not be stored: \(error)", .error)
        }
        if o.outgoingMovedOn {
            apply([.record(Record(.handoff, node: name, pid: incoming.pid, incarnation: incoming.incarnation,
                                  detail: "checkpoints the outgoing incarnation sent after the one incarnation \(incoming.incarnation) started from are dropped: it never had that state"))])
        }
    }

    /// A checkpoint from the process beside the child: the incoming's is held until it
    /// takes over; anyone else's is refused.
    func keepCheckpointBeside(_ state: [UInt8], from child: LiveChild) {
        let id = child.node
        if tree.handoffPhase(of: id) == .starting(incoming: child.incarnation) {
            handoffs.overlaps[id, default: Handoffs.Overlap()].held = state
            return
        }
        let current = tree.incarnation(of: id)
        refuseCheckpoint(from: child, child.incarnation < current
            ? "checkpoint from outgoing incarnation \(child.incarnation) is not kept: incarnation \(current) has taken over and did not start from it"
            : "checkpoint from incarnation \(child.incarnation) is not kept: it did not take over from incarnation \(current)")
    }
}
