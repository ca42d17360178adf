/// How much of a supervisor's restart intensity is used right now, for metrics: the
/// restarts inside the current window against the most it allows before it fails.
public struct IntensityUsage: Hashable, Sendable {
    /// Restarts within the last `period` (the window `RestartWindow.admit` judges).
    public var used: Int
    /// `max_restarts`: one more restart than this within `period` fails the supervisor.
    public var allowed: Int
    public var period: Duration
}

extension RestartWindow {
    /// Restarts after `now - period`: what the next `admit` would keep.
    public func count(at now: Instant, within period: Duration) -> Int {
        let horizon = now - period
        return restarts.filter { $0 > horizon }.count
    }
}

extension SupervisionTree {
    /// The intensity usage of supervisor `id` at `now`; nil for a worker.
    public func intensityUsage(of id: NodeID, at now: Instant) -> IntensityUsage? {
        let n = nodes[id.index]
        guard case .supervisor(let spec) = n.kind else { return nil }
        return IntensityUsage(used: n.window.count(at: now, within: spec.intensity.period),
                              allowed: spec.intensity.maxRestarts, period: spec.intensity.period)
    }
}
