import VigilCore

/// The invariants, each checked as the effect that could break it goes by, in time that
/// does not grow with the tree (no check walks every node):
///
/// - single-instance: a spawn never targets a child that still has a live process, except
///   the incoming one of an overlapping handoff, beside exactly one; the core's pid for a
///   node is always a live process of that node and incarnation; signals only go to live
///   processes of the node they name; a finished tree leaves no process behind.
/// - intensity: within one activation of a supervisor, no more than `max_restarts` restart
///   decisions (`restart`, `backoff`, `guardian_asked` records about its children) fall in
///   any `period`; the (max+1)-th failure must escalate instead. Decisions that carry out
///   a verdict are not counted twice.
/// - start-order: a child is spawned only when every worker it depends on has a live
///   process of the incarnation that said READY (a handoff's incoming is exempt: the
///   operator replaces a child that is running anyway).
/// - stop-order: when a plan terminates a worker (a cascade, an escalation, a supervisor's
///   stop, the tree's shutdown), every sibling started after it (bar its own pool's
///   instances, stopped together) is already gone; during the shutdown the same holds at
///   every level above it, and nothing that depends on it is alive.
/// - shutdown: no restart is decided once the shutdown began, and it finishes (liveness).
extension Simulation {
    mutating func check(_ r: Record) throws(Violation) {
        guard let node = model.index[r.node] else {
            throw violation("records", "a record names '\(r.node)', which is no node of the tree")
        }
        switch r.kind {
        case .restart, .backoff:
            if shutdownDeadline != nil {
                throw violation("shutdown", "a restart of \(r.node) was decided after the shutdown began (\(r.kind.rawValue): \(r.detail))")
            }
            if !verdictNodes.contains(node) { try decision(about: node) }
        case .guardianAsked:
            stats.questions += 1
            try decision(about: node)
        case .verdict:
            verdictNodes.append(node)
            if r.detail.contains(": deny (") { heldDown.insert(node) }
        case .escalate:
            // The window that overflowed is gone; the supervisor may even be restarted
            // within this same event, so its activation number, read after the event,
            // already belongs to the next window.
            stats.escalations += 1
            decisions[node].removeAll()
            decisionActivation[node] = -1
        case .command:
            if let inc = r.incarnation { nonPlanIncarnation[node] = inc }
            if r.detail == "operator: stop" { heldDown.insert(node) } else if r.detail == "operator: start" { heldDown.remove(node) }
        case .readyTimeout:
            if let inc = r.incarnation, inc == tree.incarnation(of: NodeID(node)) { nonPlanIncarnation[node] = inc }
        case .safeMode:
            safeModeEntries += 1
            if r.detail.hasPrefix("entered") { stats.safeModeEntries += 1 }
        case .ready:
            readyIncarnation[node] = r.incarnation ?? 0
        case .terminate:
            try terminated(node, incarnation: r.incarnation)
        default:
            break
        }
    }

    /// A restart decision about `node`, counted in its supervisor's window.
    private mutating func decision(about node: Int) throws(Violation) {
        stats.restartDecisions += 1
        let s = model.parent[node]
        guard s >= 0, let intensity = model.intensity[s] else { return }
        let activation = tree.activations(of: NodeID(s))
        if decisionActivation[s] == -1 {
            decisionActivation[s] = activation
        } else if decisionActivation[s] != activation {
            decisionActivation[s] = activation
            decisions[s].removeAll()
        }
        let horizon = now - intensity.period
        decisions[s].removeAll { $0 <= horizon }
        decisions[s].append(now)
        if decisions[s].count > intensity.maxRestarts {
            throw violation("intensity", "\(model.names[s]) decided \(decisions[s].count) restarts within \(intensity.period) (max_restarts \(intensity.maxRestarts)); the last about \(model.names[node])")
        }
    }

    /// A `terminate` record: SIGTERM (or SIGKILL) to one process of `node`.
    private mutating func terminated(_ node: Int, incarnation: UInt64?) throws(Violation) {
        guard let inc = incarnation, inc == tree.incarnation(of: NodeID(node)) else { return }  // a handoff's side process
        if nonPlanIncarnation[node] == inc { return }  // an operator's stop, a ready timeout
        if model.worker[node]?.safeMode == .stop && safeModeEntriesAtSpawn[node] != safeModeEntries { return }  // safe mode's
        stats.planTerminationsChecked += 1
        try laterSiblingsGone(node)
        guard shutdownDeadline != nil else { return }
        var a = model.parent[node]
        while a > 0 && !terminatingAtShutdown.contains(a) {
            try laterSiblingsGone(a)
            a = model.parent[a]
        }
        // Below a cascade that was already going when the shutdown began, dependents
        // elsewhere may legitimately still run.
        guard a <= 0 else { return }
        for d in model.dependents[node] where !world.byNode[d].isEmpty {
            throw violation("stop-order", "\(model.names[node]) is stopped while \(model.names[d]), which depends on it, is still running")
        }
    }

    private func laterSiblingsGone(_ node: Int) throws(Violation) {
        let p = model.parent[node]
        guard p >= 0 else { return }
        let siblings = model.children[p]
        var i = model.position[node] + 1
        while i < siblings.count {
            let z = siblings[i]
            i += 1
            if model.pool[node] >= 0 && model.pool[z] == model.pool[node] { continue }
            if world.subtreeLive[z] > 0 {
                throw violation("stop-order", "\(model.names[node]) is terminated while \(model.names[z]), started after it under \(model.names[p]), still has \(world.subtreeLive[z]) process(es)")
            }
        }
    }

    /// A spawn: no second instance, and every dependency READY.
    mutating func checkSpawn(_ node: Int, _ inc: UInt64) throws(Violation) {
        let alive = world.byNode[node].count
        let isHandoff: Bool = if case .starting(incoming: inc)? = tree.handoffPhase(of: NodeID(node)) { true } else { false }
        if alive > (isHandoff ? 1 : 0) {
            throw violation("single-instance", "\(model.names[node]) incarnation \(inc) is spawned while it has \(alive) live process(es)\(isHandoff ? " (handoff)" : "")")
        }
        if isHandoff { return }
        for d in model.dependencies[node] {
            let r = readyIncarnation[d]
            if r == 0 || world.pid(of: d, incarnation: r) == nil {
                throw violation("start-order", "\(model.names[node]) is spawned while \(model.names[d]), which it depends on, is not READY")
            }
        }
    }

    /// After each event: the core's pid for the node it was about is a live process of it.
    func checkNode(_ node: Int) throws(Violation) {
        let id = NodeID(node)
        guard let pid = tree.pid(of: id) else { return }
        guard let p = world[pid], p.node == node, p.incarnation == tree.incarnation(of: id) else {
            throw violation("single-instance", "the core says \(model.names[node]) is pid \(pid) incarnation \(tree.incarnation(of: id)), which is not a live process of it")
        }
    }
}
