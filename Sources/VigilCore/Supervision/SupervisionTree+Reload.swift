/// Reloading the topology without disruption (`vigil reload`, SIGHUP): only what changed
/// is touched. Workers are matched by name (and parent): a worker whose spec is the same
/// keeps running, pid, incarnation, counters and all; one whose spec changed is stopped
/// and started again with the new spec; a removed one is stopped; an added one is started.
/// Supervisors keep running (their strategy and intensity take the new values). Start and
/// stop order follow the new and the old tree, as ever.
///
/// Two steps, because the tree's node numbering is that of the topology: first every
/// changed or removed worker is stopped (in parallel, like an operator stop: not a
/// failure, nothing else restarts); then, once they are down and no restart decision is
/// half-way (no plan, no guardian question, no handoff), the new tree takes over the
/// running state and `Effect.reloaded` tells the shell how node numbers moved.
extension SupervisionTree {
    struct PendingReload: Sendable {
        var topology: Topology
        /// Names of the workers stopped for the reload (changed or removed).
        var stopping: Set<String>
        var changed: [String]
        var added: [String]
        var removed: [String]
        /// Workers an operator had stopped before the reload: they stay down.
        var held: Set<String>
    }

    /// What a reload will do, by child name (also the answer to the operator).
    public struct ReloadPlan: Hashable, Sendable {
        public var changed: [String]
        public var added: [String]
        public var removed: [String]
        public var isEmpty: Bool { changed.isEmpty && added.isEmpty && removed.isEmpty }
    }

    /// True while a reload waits for the workers it stops.
    public var isReloading: Bool { pendingReload != nil }

    /// A node's identity across a reload: its name, its kind and its parent's name.
    private func identity(_ n: Node, in nodes: NodeStore) -> String {
        (n.isSupervisor ? "s:" : "w:") + n.name + "<" + (n.parent.map { nodes[$0.index].name } ?? "")
    }

    /// Starts a reload to `new`. Refused while the tree is starting or stopping, or while
    /// another reload is under way.
    public mutating func reload(to new: Topology, at now: Instant) -> Result<(ReloadPlan, [Effect]), CommandError> {
        begin(at: now)
        guard isStarted, !isShuttingDown, outcome == nil else { return .failure(CommandError("the tree is not running")) }
        guard pendingReload == nil else { return .failure(CommandError("a reload is already under way; wait for it (vigil events shows its progress)")) }
        let fresh = SupervisionTree(topology: new)
        var old: [String: Node] = [:]
        for n in nodes { old[identity(n, in: nodes)] = n }
        var kept: Set<String> = []
        var changed: [String] = [], added: [String] = []
        for n in fresh.nodes {
            let key = identity(n, in: fresh.nodes)
            guard let o = old[key] else { if !n.isSupervisor { added.append(n.name) }; continue }
            kept.insert(key)
            if let w = n.worker, let ow = o.worker, !w.runsTheSame(as: ow) { changed.append(n.name) }
        }
        let removedNodes = nodes.filter { !kept.contains(identity($0, in: nodes)) }
        let removed = removedNodes.filter { !$0.isSupervisor }.map(\.name)
        let plan = ReloadPlan(changed: changed, added: added, removed: removed)
        var stopping: Set<String> = Set(changed)
        stopping.formUnion(removed)
        let held = Set(nodes.filter { $0.held && !$0.downForSafeMode && !$0.isSupervisor }.map(\.name))
        pendingReload = PendingReload(topology: new, stopping: stopping, changed: changed, added: added, removed: removed, held: held)
        emit(.command, root, detail: "reload of \(new.file): "
             + (plan.isEmpty ? "no child changed" : [changed.isEmpty ? nil : "restarting \(changed.joined(separator: ", ")) (spec changed)",
                                                     added.isEmpty ? nil : "starting \(added.joined(separator: ", "))",
                                                     removed.isEmpty ? nil : "stopping \(removed.joined(separator: ", ")) (removed)"]
                                                    .compactMap { $0 }.joined(separator: "; ")))
        // Stop the changed and removed workers, last started first, all at once.
        for id in nodes.map(\.id).reversed() where stopping.contains(nodes[id.index].name) {
            nodes[id.index].held = true
            takeDown(id, reason: "stopped by a reload", handoff: "a reload stops it")
        }
        return .success((plan, finish()))
    }

    /// Whether the tree can take the new topology now: the workers stopped for it are
    /// down, and no decision is half-way (so nothing refers to old node numbers).
    private var reloadCanComplete: Bool {
        guard let r = pendingReload else { return false }
        for n in nodes {
            if r.stopping.contains(n.name) && (n.pid != nil || n.state != .stopped) { return false }
            if n.plan != nil || n.overlap != nil { return false }
            switch n.state {
            case .awaitingGuardian, .spawning: return false
            default: break
            }
        }
        return pendingQuestions.isEmpty
    }

    /// Called as every step finishes: once it can, the new tree takes over.
    mutating func completeReloadIfReady() {
        guard reloadCanComplete, let r = pendingReload else { return }
        pendingReload = nil
        var fresh = SupervisionTree(topology: r.topology, random: random)
        fresh.isStarted = true
        fresh.readyAnnounced = readyAnnounced
        fresh.safeModeState = safeModeState
        fresh.nextQuestion = nextQuestion
        fresh.now = now
        var old: [String: Node] = [:]
        for n in nodes { old[identity(n, in: nodes)] = n }
        var mapping: [NodeID: NodeID] = [:]
        let changed = Set(r.changed)
        for i in fresh.nodes.indices {
            let key = identity(fresh.nodes[i], in: fresh.nodes)
            guard let o = old[key] else { continue }  // added: starts like any new child
            fresh.nodes[i].incarnation = o.incarnation
            fresh.nodes[i].lastIncarnation = o.lastIncarnation
            fresh.nodes[i].restarts = o.restarts
            fresh.nodes[i].lastExit = o.lastExit
            fresh.nodes[i].lastExitAt = o.lastExitAt
            fresh.nodes[i].lastReason = o.lastReason
            if changed.contains(o.name) {
                fresh.nodes[i].lastReason = "restarted by a reload (spec changed)"
                if r.held.contains(o.name) {  // an operator's stop outlives a reload
                    fresh.nodes[i].held = true
                    fresh.nodes[i].state = .stopped
                    fresh.nodes[i].lastReason = o.lastReason
                }
                continue  // idle: started again with the new spec
            }
            mapping[o.id] = fresh.nodes[i].id
            fresh.nodes[i].state = o.state
            fresh.nodes[i].pid = o.pid
            fresh.nodes[i].startedAt = o.startedAt
            fresh.nodes[i].readyAt = o.readyAt
            fresh.nodes[i].lastHeartbeat = o.lastHeartbeat
            fresh.nodes[i].watchdogLimit = o.watchdogLimit
            fresh.nodes[i].watchdogGraceUsed = o.watchdogGraceUsed
            fresh.nodes[i].readyDeadline = o.readyDeadline
            fresh.nodes[i].stopDeadline = o.stopDeadline
            fresh.nodes[i].consecutiveFailures = o.consecutiveFailures
            fresh.nodes[i].held = o.held
            fresh.nodes[i].finished = o.finished
            fresh.nodes[i].downForSafeMode = o.downForSafeMode
            fresh.nodes[i].window = o.window
            fresh.nodes[i].activations = o.activations
            fresh.rescheduleTimers(of: fresh.nodes[i].id)
        }
        // Safe mode holds for the new specs too: what it stops is not started.
        if fresh.safeModeState != nil {
            for i in fresh.nodes.indices where fresh.nodes[i].worker?.safeMode == .stop && fresh.nodes[i].state == .idle {
                fresh.nodes[i].state = .stopped
                fresh.nodes[i].downForSafeMode = true
                fresh.nodes[i].lastReason = "stopped by safe mode"
            }
        }
        let summary = "reload complete: \(r.changed.count) restarted, \(r.added.count) added, \(r.removed.count) removed; every other child kept running"
        let pendingEffects = effects
        self = fresh
        effects = pendingEffects
        effects.append(.reloaded(mapping))
        emit(.command, root, detail: summary)
    }

    /// The deadlines a running node carries into the new tree, from its state.
    private mutating func rescheduleTimers(of id: NodeID) {
        let n = nodes[id.index]
        switch n.state {
        case .starting:
            timers.schedule(.readyTimeout(id, incarnation: n.incarnation), at: n.readyDeadline ?? now)
        case .running:
            if let limit = n.watchdogLimit {
                timers.schedule(.watchdog(id, incarnation: n.incarnation), at: (n.lastHeartbeat ?? now) + limit)
            }
        case .backoff(let until):
            timers.schedule(.backoff(id), at: until)
        case .stopping:
            if let d = n.stopDeadline { timers.schedule(.shutdownTimeout(id, incarnation: n.incarnation), at: d) }
        default:
            break
        }
    }
}

extension WorkerSpec {
    /// Whether a process started from `other` is what this spec would start: every field
    /// but where they were written in the file.
    func runsTheSame(as other: WorkerSpec) -> Bool {
        func plain(_ w: WorkerSpec) -> WorkerSpec {
            var w = w
            w.location = .none
            w.instances = 1  // a pool growing or shrinking leaves the other instances alone
            w.dependsOn = w.dependsOn.map { Dependency($0.name) }
            return w
        }
        return plain(self) == plain(other)
    }
}
