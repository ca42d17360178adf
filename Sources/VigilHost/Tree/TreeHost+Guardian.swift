import VigilCore
import VigilWire

extension GuardianVerdict {
    /// The core's view of a verdict off the wire.
    init(_ v: Verdict) {
        switch v {
        case .allow: self = .allow
        case .deny(let r): self = .deny(r)
        case .delay(let ms, let r): self = .delay(.milliseconds(Int64(ms)), r)
        case .safeMode(let r): self = .safeMode(r)
        case .liquidate(let r): self = .liquidate(r)
        }
    }
}

extension GuardianOrderKind {
    init(_ o: GuardianOrder) {
        switch o {
        case .safeModeOn(let r): self = .safeModeOn(r)
        case .safeModeOff(let r): self = .safeModeOff(r)
        case .liquidate(let r): self = .liquidate(r)
        }
    }
}

extension RestartRequest {
    init(_ q: GuardianQuestion) {
        self.init(id: q.id, child: q.child, reason: q.reason, recentRestarts: UInt32(clamping: q.recentRestarts),
                  incarnation: q.incarnation)
    }
}

/// Planned handoffs (`vigil restart --handoff NAME`): the running instance is asked for a
/// fresh checkpoint; the restart happens once it has arrived (or after `deadline`), so the
/// replacement starts from it. (Overlapping old and new instance is not done yet: the old
/// one is stopped first, which is what a gateway holding an exchange session needs.)
struct Handoffs {
    struct Pending {
        var nodes: Set<NodeID>
        var waiting: Set<NodeID>
        var name: String
        var connection: ControlConnection
        var request: ControlRequest
        var deadline: Int64
    }

    var pending: [Pending] = []

    mutating func checkpointArrived(from id: NodeID) {
        for i in pending.indices { pending[i].waiting.remove(id) }
    }

    /// Handoffs whose checkpoints are in, or whose time is up.
    mutating func due(at now: Int64) -> [Pending] {
        let ready = pending.filter { $0.waiting.isEmpty || $0.deadline <= now }
        pending.removeAll { $0.waiting.isEmpty || $0.deadline <= now }
        return ready
    }

    var earliestDeadline: Int64? { pending.map(\.deadline).min() }
}
