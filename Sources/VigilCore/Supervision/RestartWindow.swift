/// One supervisor's restart intensity window, shared by all of its children (OTP
/// `add_restart`): on each restart drop the timestamps older than `now - period`, add `now`,
/// and if more than `maxRestarts` remain the supervisor has reached its intensity.
public struct RestartWindow: Hashable, Sendable {
    public private(set) var restarts: [Instant] = []

    public init() {}

    /// Records a restart at `now`. Returns false when the intensity is exceeded.
    public mutating func admit(at now: Instant, within intensity: Intensity) -> Bool {
        let horizon = now - intensity.period
        restarts.removeAll(where: { $0 <= horizon })
        restarts.append(now)
        return restarts.count <= intensity.maxRestarts
    }

    public mutating func reset() { restarts.removeAll() }

    /// Restarts decided before this window existed (by the vigil this one took over from).
    public mutating func carry(_ earlier: [Instant]) {
        restarts = (restarts + earlier).sorted()
    }
}
