/// Rolling baselines and anomaly scores for the failure predictor. Measurements (RSS, CPU
/// share, restart rate) are not money, so doubles are fine here.

/// An exponentially weighted mean and variance (West's EWMA form of Welford's update):
/// recent samples weigh more, so the baseline follows slow drift while a sudden jump
/// stands out. The z-score of a sample is taken against the baseline *before* the sample
/// is folded in.
public struct RollingBaseline: Hashable, Sendable {
    /// Weight of each new sample, in (0, 1].
    public let alpha: Double
    /// Samples needed before `score` returns anything.
    public let warmUp: Int
    /// Floors on the standard deviation, so a perfectly flat history does not turn the
    /// smallest wobble into an infinite score: max(absolute, relative * |mean|).
    public let absoluteFloor: Double
    public let relativeFloor: Double

    public private(set) var count = 0
    public private(set) var mean = 0.0
    public private(set) var variance = 0.0

    public enum ConfigurationError: Error, Hashable, Sendable { case alpha(Double), warmUp(Int), floor(Double) }

    public init(alpha: Double = 0.1, warmUp: Int = 10, absoluteFloor: Double = 1e-9,
                relativeFloor: Double = 0) throws(ConfigurationError) {
        guard alpha > 0, alpha <= 1 else { throw .alpha(alpha) }
        guard warmUp >= 1 else { throw .warmUp(warmUp) }
        guard absoluteFloor > 0, absoluteFloor.isFinite else { throw .floor(absoluteFloor) }
        guard relativeFloor >= 0, relativeFloor.isFinite else { throw .floor(relativeFloor) }
        self.alpha = alpha
        self.warmUp = warmUp
        self.absoluteFloor = absoluteFloor
        self.relativeFloor = relativeFloor
    }

    public var isWarm: Bool { count >= warmUp }

    /// The standard deviation used for scoring (with the floors applied).
    public var deviation: Double {
        max(variance.squareRoot(), absoluteFloor, relativeFloor * abs(mean))
    }

    /// (x - mean) / deviation, or nil while warming up or for a non-finite sample.
    public func score(_ x: Double) -> Double? {
        guard isWarm, x.isFinite else { return nil }
        return (x - mean) / deviation
    }

    /// Folds `x` into the baseline (non-finite samples are ignored). The first sample sets
    /// the mean; until `1/alpha` samples the weight is 1/count, so early samples are an
    /// exact running mean and variance instead of being biased toward the first.
    public mutating func observe(_ x: Double) {
        guard x.isFinite else { return }
        count += 1
        if count == 1 {
            mean = x
            variance = 0
            return
        }
        let a = max(alpha, 1.0 / Double(count))
        let diff = x - mean
        let increment = a * diff
        mean += increment
        variance = (1 - a) * (variance + diff * increment)
    }

    /// Scores `x` against the baseline, then folds it in.
    public mutating func scoreAndObserve(_ x: Double) -> Double? {
        let z = score(x)
        observe(x)
        return z
    }
}
