extension BackoffPolicy {
    /// The wait before restarting a child after its `failure`-th consecutive failure
    /// (1-based). The first failure after a stable run restarts at once: resurrection speed
    /// matters more than anything when a process dies once. From the second on the delay
    /// grows as `initial * multiplier^(failure-2)`, capped at `max`, then shortened by up to
    /// `jitter` of itself (`random` in [0, 1)), so the cap is never exceeded and a pool that
    /// failed together spreads its restarts.
    public func delay(afterFailure failure: Int, random: Double) -> Duration {
        guard failure >= 2 else { return .zero }
        let cap = Double(max.nanoseconds)
        var base = Double(initial.nanoseconds)
        var step = 2
        while step < failure && base < cap {
            base *= multiplier
            step += 1
        }
        base = Swift.min(base, cap)
        let shortened = base * (1 - jitter * Swift.max(0, Swift.min(random, 1)))
        return .nanoseconds(Int64(shortened))
    }
}
