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
