import CShim
import Glibc
import VigilCore
import VigilWire

/// The predictor's advice, the shell's part: the frame goes to the core (which checks that
/// the sender has role predictor, journals the forecast and decides), and a planned
/// handoff it decides on is carried out like `vigil restart --handoff`: the running worker
/// is asked for a fresh checkpoint first (3 s at most), then the core replaces it.
extension TreeHost {
    func adviceArrived(_ advice: Advice, from child: LiveChild, at t: Int64) {
        if tree.workerSpec(of: child.node)?.role == .predictor { predictorAdvisories += 1 }
        let a = PredictionAdvice(worker: advice.worker, pid: advice.pid, action: advice.action == .restart ? .restart : .watch,
                                 model: String(advice.model.prefix(64)),
                                 forecast: .milliseconds(Int64(clamping: advice.forecastMillis)),
                                 horizon: .milliseconds(Int64(clamping: min(advice.horizonMillis, 86_400_000))),
                                 reason: String(advice.reason.prefix(500)))
        apply(tree.handle(.advice(from: child.node, a), at: Instant(nanoseconds: t)))
    }

    /// The core decided to forestall a predicted failure of `id`: ask for a fresh checkpoint.
    func startPlannedHandoff(_ id: NodeID, reason: String) {
        guard !handoffs.pending.contains(where: { $0.nodes.contains(id) }) else { return }
        send(.checkpointRequest, to: id)
        handoffs.pending.append(Handoffs.Pending(nodes: [id], waiting: [id], name: tree.name(of: id), connection: nil,
                                                 prediction: reason, noBlock: true, since: now,
                                                 deadline: now + 3_000_000_000))
    }

    /// The fresh checkpoint is in (or the time is up): the core replaces the worker.
    func carryOutPlannedHandoff(_ h: Handoffs.Pending) {
        guard let id = h.nodes.first else { return }
        if !h.waiting.isEmpty {
            apply([.record(Record(.prediction, node: h.name, detail: "no fresh checkpoint from \(h.name) within 3s; handing off with the last stored one"))])
        }
        apply(tree.handoffByPrediction(id, reason: h.prediction ?? "predicted failure", at: Instant(nanoseconds: now)))
    }

    /// A heartbeat arrived at `t`: how far its gap strayed from the heartbeat interval.
    func noteHeartbeat(_ child: inout LiveChild, at t: Int64) {
        if let last = child.lastHeartbeatArrival {
            let stray = abs((t - last) - configuration.topology.settings.heartbeatInterval.nanoseconds)
            child.heartbeatJitter = max(child.heartbeatJitter, stray)
        }
        child.lastHeartbeatArrival = t
    }
}
