/// A robust straight-line fit for the failure predictor's trend models: the Theil-Sen
/// estimator (the median of the slopes between every pair of points) and the Mann-Kendall
/// trend statistic over the same pairs. Both ignore up to about 29% of wild points, so a
/// garbage collection, a one-off allocation burst or a page-cache wobble moves them far less
/// than it would move a least-squares line: what a leak detector needs, since one spike must
/// not look like a leak and one drop must not hide one.
public struct TrendFit: Hashable, Sendable {
    /// Change of the value per unit of time (the median pairwise slope).
    public var slope: Double
    /// The fitted value at time zero (the median of value - slope * time).
    public var intercept: Double
    /// The robust spread of the points around the line: 1.4826 x the median absolute
    /// residual (equal to the standard deviation for Gaussian noise).
    public var residualDeviation: Double
    /// Mann-Kendall's normalised S: how many pairs rise minus how many fall, in standard
    /// deviations of that count under "no trend". About N(0, 1) for a flat noisy series;
    /// large and positive for a steady rise, whatever the noise level.
    public var trendScore: Double
    /// Points fitted.
    public var count: Int
    /// Time from the first point to the last.
    public var span: Double

    /// The line's value at `time`.
    public func value(at time: Double) -> Double { intercept + slope * time }
}

public enum TheilSen {
    /// Fits `values` against `times` (same length, at least 3 points, at least two distinct
    /// times); nil otherwise. O(n^2) in time and memory: meant for windows of tens of points.
    public static func fit(times: [Double], values: [Double]) -> TrendFit? {
        let n = times.count
        guard n >= 3, values.count == n, times.allSatisfy(\.isFinite), values.allSatisfy(\.isFinite) else { return nil }
        var slopes: [Double] = []
        slopes.reserveCapacity(n * (n - 1) / 2)
        var s = 0
        for i in 0..<n - 1 {
            for j in i + 1..<n {
                let dy = values[j] - values[i]
                let dt = times[j] - times[i]
                // Mann-Kendall orders pairs by time; equal times are no pair.
                if dt != 0 {
                    slopes.append(dy / dt)
                    let rising = (dy > 0) == (dt > 0)
                    if dy != 0 { s += rising ? 1 : -1 }
                }
            }
        }
        guard !slopes.isEmpty else { return nil }
        let slope = median(&slopes)
        var offsets = (0..<n).map { values[$0] - slope * times[$0] }
        let intercept = median(&offsets)
        var residuals = (0..<n).map { abs(values[$0] - (intercept + slope * times[$0])) }
        let deviation = 1.4826 * median(&residuals)
        // Var(S) without the ties correction: ties (RSS in whole pages) make the true
        // variance smaller, so this understates the score, the safe direction for alarms.
        let nd = Double(n)
        let variance = nd * (nd - 1) * (2 * nd + 5) / 18
        let corrected = s > 0 ? Double(s - 1) : s < 0 ? Double(s + 1) : 0
        let span = (times.max() ?? 0) - (times.min() ?? 0)
        return TrendFit(slope: slope, intercept: intercept, residualDeviation: deviation,
                        trendScore: corrected / variance.squareRoot(), count: n, span: span)
    }

    /// The median (the mean of the middle two for an even count); reorders `xs`.
    static func median(_ xs: inout [Double]) -> Double {
        xs.sort()
        let m = xs.count / 2
        return xs.count % 2 == 1 ? xs[m] : (xs[m - 1] + xs[m]) / 2
    }
}
