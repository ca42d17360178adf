import CShim
import Glibc
import VigilCore

/// `vigil reload` and SIGHUP: the topology file is read again; a file with problems is
/// refused whole (the running tree is untouched); otherwise the core restarts only what
/// changed (see SupervisionTree+Reload), and systemd hears RELOADING=1 then READY=1.
extension TreeHost {
    /// Starts a reload. Returns (ok, what to tell the operator).
    func reload(requestedBy who: String) -> (Bool, String) {
        guard let load = configuration.reloadTopology else { return (false, "this vigil cannot reload its topology") }
        let file = configuration.topology.file
        let new: Topology
        switch load() {
        case .failure(let refused):
            let n = refused.diagnostics.count
            apply([.record(Record(.command, node: tree.name(of: tree.root),
                                  detail: "reload of \(file) refused (\(who)): \(n) problem\(n == 1 ? "" : "s"); the running tree is untouched"))])
            return (false, "reload refused: \(file): \(n) problem\(n == 1 ? "" : "s"); nothing was changed\n"
                           + refused.diagnostics.joined(separator: "\n"))
        case .success(let t):
            new = t
        }
        _ = try? notifier.reloading(monotonicMicros: UInt64(now / 1000))
        switch tree.reload(to: new, at: Instant(nanoseconds: now)) {
        case .failure(let e):
            _ = try? notifier.ready(status: tree.summary())
            return (false, e.message)
        case .success(let (plan, effects)):
            pendingTopology = new
            lastReloadPlan = plan
            apply(effects)
            if plan.isEmpty { return (true, "reload: no child changed\n") }
            var lines: [String] = []
            if !plan.changed.isEmpty { lines.append("restarting (spec changed): " + plan.changed.joined(separator: ", ")) }
            if !plan.added.isEmpty { lines.append("starting (added): " + plan.added.joined(separator: ", ")) }
            if !plan.removed.isEmpty { lines.append("stopping (removed): " + plan.removed.joined(separator: ", ")) }
            let touched = plan.changed.count + plan.added.count
            let others = tree.nodeIDs.filter { tree.workerSpec(of: $0) != nil }.count - touched
            return (true, "reload: " + lines.joined(separator: "; ") + (others > 0 ? "; every other child keeps running" : "") + "\n")
        }
    }

    /// The core's new tree numbers its nodes anew: every table keyed by node follows.
    func renumber(_ mapping: [NodeID: NodeID]) {
        func move<V>(_ table: [NodeID: V], _ renumbered: (V, NodeID) -> V = { v, _ in v }) -> [NodeID: V] {
            var out: [NodeID: V] = [:]
            for (k, v) in table { if let n = mapping[k] { out[n] = renumbered(v, n) } }
            return out
        }
        let renumberChild: (LiveChild, NodeID) -> LiveChild = { c, n in var c = c; c.node = n; return c }
        for (id, gone) in live where mapping[id] == nil {
            // Stopped for the reload and already reaped: nothing should be left here.
            log.note("reload: \(gone.pid) had no place in the new tree")
        }
        live = move(live, renumberChild)
        overlapping = move(overlapping, renumberChild)
        nodeByPID = nodeByPID.compactMapValues { mapping[$0] }
        nodeByChannel = nodeByChannel.compactMapValues { mapping[$0] }
        nodeByOutput = nodeByOutput.compactMapValues { mapping[$0] }
        nodeByNotify = nodeByNotify.compactMapValues { mapping[$0] }
        toldAboutNotifyReadiness = Set(toldAboutNotifyReadiness.compactMap { mapping[$0] })
        handoffs.overlaps = move(handoffs.overlaps)
        for i in handoffs.pending.indices {
            handoffs.pending[i].nodes = Set(handoffs.pending[i].nodes.compactMap { mapping[$0] })
            handoffs.pending[i].waiting = Set(handoffs.pending[i].waiting.compactMap { mapping[$0] })
        }
        for i in pendingCommands.indices {
            pendingCommands[i].nodes = pendingCommands[i].nodes.compactMap { mapping[$0] }
            pendingCommands[i].previous = move(pendingCommands[i].previous)
        }
        if let t = pendingTopology {
            configuration.topology = t
            // Settings the shell uses itself: the SDK heartbeat of new spawns, and sampling
            // for a predictor the reload added.
            spawner.heartbeat = t.settings.heartbeatInterval
            spawner.adoptWindow = t.settings.adoptWindow
            if needsSampling && nextSample == nil { nextSample = now + t.settings.sampleInterval.nanoseconds }
        }
        pendingTopology = nil
        _ = try? notifier.ready(status: tree.summary())
    }
}
