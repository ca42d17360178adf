/// vigil asks the guardian before restarting a child marked `guarded`.
public struct RestartRequest: Hashable, Sendable {
    /// Echoed in the verdict, so a late answer to an old question is recognised.
    public var id: UInt64
    /// The child's name (`strategy-runner.2`).
    public var child: String
    /// Why it went down, as vigil journaled it (`signal SIGKILL`, `exit 1 before READY`).
    public var reason: String
    /// Restarts of this child within its supervisor's intensity period.
    public var recentRestarts: UInt32
    /// The incarnation that went down.
    public var incarnation: UInt64

    public init(id: UInt64, child: String, reason: String, recentRestarts: UInt32, incarnation: UInt64) {
        self.id = id
        self.child = child
        self.reason = reason
        self.recentRestarts = recentRestarts
        self.incarnation = incarnation
    }
}

/// The guardian's answer to a restart request.
public enum Verdict: Hashable, Sendable {
    /// Restart it (after its normal backoff).
    case allow
    /// Keep it down until an operator starts it.
    case deny(reason: String)
    /// Restart it after this many milliseconds.
    case delay(milliseconds: UInt32, reason: String)
    /// Keep it down and put the tree in safe mode.
    case safeMode(reason: String)
    /// Keep it down, put the tree in safe mode and flatten every position.
    case liquidate(reason: String)

    func write(to w: inout FrameWriter) throws(FrameError) {
        switch self {
        case .allow: w.byte(1); try w.string("")
        case .deny(let r): w.byte(2); try w.string(r)
        case .delay(let ms, let r): w.byte(3); w.integer(ms); try w.string(r)
        case .safeMode(let r): w.byte(4); try w.string(r)
        case .liquidate(let r): w.byte(5); try w.string(r)
        }
    }

    static func read(from r: inout FrameReader, kind: UInt8) throws(FrameError) -> Verdict {
        guard let tag = r.byte() else { throw .truncated(kind: kind) }
        switch tag {
        case 1:
            // `.allow` is written with an empty reason. A non-empty one is refused, so a
            // verdict has one spelling (decode then encode gives back the same bytes).
            guard let length: UInt16 = r.integer() else { throw .truncated(kind: kind) }
            guard length == 0 else {
                throw Int(length) > r.remaining ? .truncated(kind: kind) : .trailingBytes(kind: kind, count: r.remaining)
            }
            return .allow
        case 2: return .deny(reason: try r.string(kind: kind))
        case 3:
            guard let ms: UInt32 = r.integer() else { throw .truncated(kind: kind) }
            return .delay(milliseconds: ms, reason: try r.string(kind: kind))
        case 4: return .safeMode(reason: try r.string(kind: kind))
        case 5: return .liquidate(reason: try r.string(kind: kind))
        default: throw .unknownKind(tag)
        }
    }
}

/// What the guardian may order on its own, without being asked.
public enum GuardianOrder: Hashable, Sendable {
    case safeModeOn(reason: String)
    /// The all-clear: leave safe mode.
    case safeModeOff(reason: String)
    case liquidate(reason: String)

    func write(to w: inout FrameWriter) throws(FrameError) {
        switch self {
        case .safeModeOn(let r): w.byte(1); try w.string(r)
        case .safeModeOff(let r): w.byte(2); try w.string(r)
        case .liquidate(let r): w.byte(3); try w.string(r)
        }
    }

    static func read(from r: inout FrameReader, kind: UInt8) throws(FrameError) -> GuardianOrder {
        guard let tag = r.byte() else { throw .truncated(kind: kind) }
        switch tag {
        case 1: return .safeModeOn(reason: try r.string(kind: kind))
        case 2: return .safeModeOff(reason: try r.string(kind: kind))
        case 3: return .liquidate(reason: try r.string(kind: kind))
        default: throw .unknownKind(tag)
        }
    }
}

/// Notice keys and values vigil sends to every worker (`Frame.notice`).
public enum Notice {
    /// `on` when the tree enters safe mode (gateways go cancel-only and cancel open
    /// orders; strategies stop sending), `off` when it leaves.
    public static let safeMode = "safe_mode"
    /// `start`: flatten every position with market orders (gateways act on it).
    public static let liquidate = "liquidate"
    /// The report key (`Frame.report`) a gateway sends when its liquidation is done and
    /// every position is flat: vigil ends the liquidation (safe mode stays until lifted).
    public static let liquidationDone = "liquidation_done"
}

extension Verdict {
    /// The same verdict with its reason transformed (e.g. cut to fit a frame).
    public func mapReason(_ f: (String) -> String) -> Verdict {
        switch self {
        case .allow: .allow
        case .deny(let r): .deny(reason: f(r))
        case .delay(let ms, let r): .delay(milliseconds: ms, reason: f(r))
        case .safeMode(let r): .safeMode(reason: f(r))
        case .liquidate(let r): .liquidate(reason: f(r))
        }
    }
}

extension GuardianOrder {
    /// The same order with its reason transformed (e.g. cut to fit a frame).
    public func mapReason(_ f: (String) -> String) -> GuardianOrder {
        switch self {
        case .safeModeOn(let r): .safeModeOn(reason: f(r))
        case .safeModeOff(let r): .safeModeOff(reason: f(r))
        case .liquidate(let r): .liquidate(reason: f(r))
        }
    }
}
