/// Memory-leak detection and time-to-limit forecasting for one incarnation of a worker,
/// from its resident set size over time: a Theil-Sen line over a sliding window, trusted
/// only when the rise is both *consistent* (Mann-Kendall score: most pairs of samples go
/// up) and *large against this worker's own noise* (the rise across the window is several
/// times the residual spread around the line). Both gates are relative to the series
/// itself, so a quiet worker's small steady leak is caught and a noisy worker's wobble is
/// not, with no threshold in KiB anywhere.
public struct LeakDetector: Hashable, Sendable {
    /// Priors, not tuning for one machine: each is a statistical confidence, a count of
    /// samples, or a page-size floor.
    public struct Configuration: Hashable, Sendable {
        /// Samples in the sliding window (the most recent ones of this incarnation).
        public var window: Int
        /// Samples ignored after a process starts: a Swift runtime, a heap and caches
        /// grow steeply for a moment after exec, which is start-up, not a leak.
        public var settle: Int
        /// Samples needed in the window before any judgement.
        public var minimumPoints: Int
        /// Mann-Kendall score needed to call the trend real (3: about one chance in 750
        /// that a flat series scores this high on one test).
        public var trendThreshold: Double
        /// The rise over the window must exceed this many residual deviations.
        public var riseDeviations: Double
        /// Consecutive samples that must agree before a leak is reported.
        public var confirmations: Int
        /// Smallest deviation believed, in the series' unit (KiB: four 4 KiB pages), so a
        /// perfectly flat series does not make any one-page change significant.
        public var deviationFloor: Double

        public init(window: Int = 50, settle: Int = 5, minimumPoints: Int = 10, trendThreshold: Double = 3,
                    riseDeviations: Double = 4, confirmations: Int = 2, deviationFloor: Double = 16) {
            self.window = window
            self.settle = settle
            self.minimumPoints = minimumPoints
            self.trendThreshold = trendThreshold
            self.riseDeviations = riseDeviations
            self.confirmations = confirmations
            self.deviationFloor = deviationFloor
        }
    }

    public enum Assessment: Hashable, Sendable {
        /// Not enough samples of this incarnation yet.
        case warming
        /// No leak: the fit, when there is one.
        case steady(TrendFit?)
        /// A leak: the fit, and when the line reaches `limit` (seconds from the last
        /// sample; 0 if it is there already; nil without a limit).
        case leaking(TrendFit, secondsToLimit: Double?)
    }

    public let configuration: Configuration
    public private(set) var times: [Double] = []
    public private(set) var values: [Double] = []
    private var seen = 0
    private var streak = 0

    public init(_ configuration: Configuration = Configuration()) {
        self.configuration = configuration
    }

    /// Forgets the series: a new process (restart, handoff) starts from its own baseline.
    public mutating func reset() {
        times = []
        values = []
        seen = 0
        streak = 0
    }

    /// Takes one sample (time in seconds, value in KiB) and judges the window; `limit` is
    /// the worker's memory limit in the same unit, if it has one.
    public mutating func observe(time: Double, value: Double, limit: Double?) -> Assessment {
        seen += 1
        guard seen > configuration.settle, time.isFinite, value.isFinite else { return .warming }
        times.append(time)
        values.append(value)
        if times.count > configuration.window {
            times.removeFirst(times.count - configuration.window)
            values.removeFirst(values.count - configuration.window)
        }
        guard times.count >= configuration.minimumPoints, let fit = TheilSen.fit(times: times, values: values) else {
            return .warming
        }
        let deviation = max(fit.residualDeviation, configuration.deviationFloor)
        let rises = fit.slope > 0 && fit.trendScore >= configuration.trendThreshold
            && fit.slope * fit.span >= configuration.riseDeviations * deviation
        streak = rises ? streak + 1 : 0
        guard streak >= configuration.confirmations else { return .steady(fit) }
        return .leaking(fit, secondsToLimit: limit.map { Self.secondsToLimit(fit, limit: $0, now: time) })
    }

    /// When the fitted line reaches `limit`, from `now`: 0 if it is at or above it already.
    public static func secondsToLimit(_ fit: TrendFit, limit: Double, now: Double) -> Double {
        let level = fit.value(at: now)
        guard level < limit else { return 0 }
        guard fit.slope > 0 else { return .infinity }
        return (limit - level) / fit.slope
    }
}
