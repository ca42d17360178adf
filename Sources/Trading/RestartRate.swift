/// How often one worker fails, from the cumulative restart count vigil sends with every
/// sample. A worker that has failed again and again at a steady pace will most likely fail
/// again about one interval after its last failure: that is the forecast, checked by vigil's
/// journal like any other. A restart does not cure a crash loop, so this model only warns.
public struct RestartRate: Hashable, Sendable {
    /// Only restarts within this many seconds count.
    public let window: Double
    /// Restarts within the window before a forecast is made (two intervals at least).
    public let minimumRestarts: Int
    /// When each restart in the window was first seen.
    public private(set) var restartTimes: [Double] = []
    private var lastCount: UInt32?

    public init(window: Double = 120, minimumRestarts: Int = 3) {
        self.window = window
        self.minimumRestarts = max(2, minimumRestarts)
    }

    /// Takes the cumulative count at `time`; returns how many new restarts it shows. A
    /// count that went down (vigil restarted) is a new base, not restarts.
    @discardableResult
    public mutating func observe(restarts: UInt32, at time: Double) -> Int {
        defer { restartTimes.removeAll { $0 < time - window } }
        guard let last = lastCount else {
            lastCount = restarts
            return 0
        }
        lastCount = restarts
        guard restarts > last else { return 0 }
        let new = Int(restarts - last)
        restartTimes.append(contentsOf: repeatElement(time, count: new))
        return new
    }

    /// Restarts per second over the window.
    public var rate: Double { Double(restartTimes.count) / window }

    /// Mean time between the restarts in the window, once there are enough of them.
    public var meanInterval: Double? {
        guard restartTimes.count >= minimumRestarts, let first = restartTimes.first, let last = restartTimes.last,
              last > first else { return nil }
        return (last - first) / Double(restartTimes.count - 1)
    }

    /// Seconds from `now` to the next failure at the current pace (0 if overdue), or nil
    /// without a pace.
    public func secondsToNextFailure(now: Double) -> Double? {
        guard let interval = meanInterval, let last = restartTimes.last else { return nil }
        return max(0, last + interval - now)
    }
}
