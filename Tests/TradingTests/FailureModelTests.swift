import Testing
@testable import Trading

/// Seeded noise for synthetic series, on the suite's SplitMix (RunnerStateTests).
struct Noise {
    var mix: SplitMix
    init(state: UInt64) { mix = SplitMix(seed: state) }
    /// Roughly Gaussian noise (the sum of 12 uniforms), mean 0, standard deviation `sd`.
    mutating func gaussian(_ sd: Double) -> Double {
        (0..<12).reduce(0.0) { acc, _ in acc + Double(mix.next() >> 11) / Double(1 << 53) } * sd - 6 * sd
    }
}

@Suite("Theil-Sen and Mann-Kendall")
struct TheilSenTests {
    @Test("an exact line is recovered, with no spread")
    func exactLine() throws {
        let t = (0..<20).map(Double.init)
        let fit = try #require(TheilSen.fit(times: t, values: t.map { 100 + 2.5 * $0 }))
        #expect(abs(fit.slope - 2.5) < 1e-12)
        #expect(abs(fit.intercept - 100) < 1e-9)
        #expect(fit.residualDeviation < 1e-9)
        #expect(fit.count == 20 && fit.span == 19)
        // Every pair rises: S = n(n-1)/2.
        let s = 19.0 * 20 / 2 - 1, variance = 20.0 * 19 * 45 / 18
        #expect(abs(fit.trendScore - s / variance.squareRoot()) < 1e-9)
        #expect(abs(fit.value(at: 10) - 125) < 1e-9)
    }

    @Test("outliers barely move the slope (a least-squares line would follow them)")
    func robust() throws {
        let t = (0..<30).map(Double.init)
        var y = t.map { 1000 + 10 * $0 }
        y[5] += 50_000
        y[17] -= 40_000
        y[25] += 90_000
        let fit = try #require(TheilSen.fit(times: t, values: y))
        #expect(abs(fit.slope - 10) < 0.5)
        #expect(fit.trendScore > 5)
    }

    @Test("a falling series scores negative; a constant one scores zero")
    func signs() throws {
        let t = (0..<15).map(Double.init)
        #expect(try #require(TheilSen.fit(times: t, values: t.map { 50 - $0 })).trendScore < -4)
        let flat = try #require(TheilSen.fit(times: t, values: t.map { _ in 7 }))
        #expect(flat.trendScore == 0 && flat.slope == 0)
    }

    @Test("too few points, mismatched lengths, one time only or non-finite values: no fit")
    func degenerate() {
        #expect(TheilSen.fit(times: [0, 1], values: [1, 2]) == nil)
        #expect(TheilSen.fit(times: [0, 1, 2], values: [1, 2]) == nil)
        #expect(TheilSen.fit(times: [3, 3, 3], values: [1, 2, 3]) == nil)
        #expect(TheilSen.fit(times: [0, 1, 2], values: [1, .nan, 3]) == nil)
    }

    @Test("median of odd and even counts")
    func median() {
        var odd: [Double] = [5, 1, 3]
        var even: [Double] = [4, 1, 3, 2]
        #expect(TheilSen.median(&odd) == 3)
        #expect(TheilSen.median(&even) == 2.5)
    }
}

@Suite("Leak detector: trend gates and time to limit")
struct LeakDetectorTests {
    /// Feeds `n` samples, one every `dt` s, of `f(t)`; returns the assessments.
    func run(_ d: inout LeakDetector, n: Int, dt: Double = 0.2, from t0: Double = 0, limit: Double?,
             _ f: (Double) -> Double) -> [LeakDetector.Assessment] {
        (0..<n).map { i in
            let t = t0 + Double(i) * dt
            return d.observe(time: t, value: f(t), limit: limit)
        }
    }

    func firstLeak(_ a: [LeakDetector.Assessment]) -> (index: Int, eta: Double?)? {
        for (i, x) in a.enumerated() { if case .leaking(_, let eta) = x { return (i, eta) } }
        return nil
    }

    @Test("a steady leak is forecast long before the limit, and the forecast is about right")
    func steadyLeak() throws {
        var rng = Noise(state: 1)
        var d = LeakDetector()
        // 20 MiB baseline, +2 MiB/s, ±300 KiB of noise, a 120 MiB limit: reached at t = 50 s.
        let a = run(&d, n: 250, limit: 120 * 1024) { 20 * 1024 + 2048 * $0 + rng.gaussian(300) }
        let first = try #require(firstLeak(a))
        let t = Double(first.index) * 0.2
        #expect(t < 10, "detected at \(t)s")
        let eta = try #require(first.eta)
        #expect(abs((t + eta) - 50) < 8, "forecast the limit at \(t + eta)s, truth 50s")
        // With a full window the forecast closes in on the truth.
        guard case .leaking(_, let later?) = a[150] else { Issue.record("no leak at t = 30 s: \(a[150])"); return }
        #expect(abs((30 + later) - 50) < 2.5, "forecast the limit at \(30 + later)s, truth 50s")
    }

    @Test("a noisy but flat RSS is never a leak over a long series")
    func noisyFlat() {
        for seed in UInt64(1)...4 {
            var rng = Noise(state: seed)
            var d = LeakDetector()
            // 30 MiB, ±4 MiB of noise (far more than the leak above), 1500 samples (5 min at 200 ms).
            let a = run(&d, n: 1500, limit: 64 * 1024) { _ in 30 * 1024 + rng.gaussian(4096) }
            #expect(firstLeak(a)?.index == nil, "seed \(seed)")
        }
    }

    @Test("a step (one big allocation kept) is not a leak once the window has passed it")
    func step() {
        var d = LeakDetector()
        let a = run(&d, n: 400, limit: 1_048_576) { $0 < 20 ? 10_000 : 30_000 }
        let late = a.suffix(100)
        #expect(late.allSatisfy { if case .leaking = $0 { false } else { true } })
    }

    @Test("the first samples after a start are ignored, and a reset starts over")
    func settleAndReset() {
        var d = LeakDetector(.init(settle: 5, minimumPoints: 10))
        let a = run(&d, n: 14, limit: nil) { 1000 * $0 }
        #expect(a.allSatisfy { $0 == .warming })
        let b = run(&d, n: 5, from: 100, limit: nil) { 1000 * $0 }
        #expect(b.contains { if case .leaking = $0 { true } else { false } })
        d.reset()
        #expect(d.times.isEmpty && d.observe(time: 200, value: 1, limit: nil) == .warming)
    }

    @Test("confirmations: a trend must hold for several samples in a row before it is a leak")
    func confirmations() {
        var d = LeakDetector(.init(settle: 0, minimumPoints: 3, confirmations: 3))
        // Mann-Kendall first reaches 3 with 7 rising points (index 6); three in a row: index 8.
        let a = run(&d, n: 11, dt: 1, limit: nil) { 100 * $0 }
        let leaking = a.map { if case .leaking = $0 { true } else { false } }
        #expect(leaking == Array(repeating: false, count: 8) + [true, true, true])
    }

    @Test("time to limit: from the fitted level, 0 at or above it, infinite when not rising")
    func secondsToLimit() {
        let fit = TrendFit(slope: 10, intercept: 0, residualDeviation: 0, trendScore: 5, count: 10, span: 9)
        #expect(LeakDetector.secondsToLimit(fit, limit: 200, now: 10) == 10)
        #expect(LeakDetector.secondsToLimit(fit, limit: 50, now: 10) == 0)
        var flat = fit
        flat.slope = 0
        flat.intercept = 5
        #expect(LeakDetector.secondsToLimit(flat, limit: 50, now: 10) == .infinity)
    }

    @Test("the noise gate adapts: the same slope is a leak on a quiet worker, not on a noisy one")
    func adaptive() {
        var rng = Noise(state: 7)
        var quiet = LeakDetector(), noisy = LeakDetector()
        // 50 KiB/s over a 10 s window is a 500 KiB rise: 25x a quiet worker's noise,
        // a tenth of a noisy one's.
        let q = run(&quiet, n: 100, limit: nil) { 10_000 + 50 * $0 + rng.gaussian(20) }
        let n = run(&noisy, n: 100, limit: nil) { 10_000 + 50 * $0 + rng.gaussian(5000) }
        #expect(firstLeak(q)?.index != nil)
        #expect(firstLeak(n)?.index == nil)
    }
}

@Suite("Restart rate")
struct RestartRateTests {
    @Test("a steady crash loop forecasts the next failure one interval after the last")
    func steady() throws {
        var r = RestartRate(window: 60, minimumRestarts: 3)
        #expect(r.observe(restarts: 0, at: 0) == 0)
        #expect(r.secondsToNextFailure(now: 0) == nil)
        #expect(r.observe(restarts: 1, at: 10) == 1)
        #expect(r.observe(restarts: 2, at: 20) == 1)
        #expect(r.meanInterval == nil)  // two restarts: not yet a pace
        r.observe(restarts: 3, at: 30)
        #expect(r.meanInterval == 10)
        #expect(r.secondsToNextFailure(now: 34) == 6)
        #expect(r.secondsToNextFailure(now: 45) == 0)
        #expect(abs(r.rate - 3.0 / 60) < 1e-12)
    }

    @Test("old restarts leave the window; a count that goes down is a new base")
    func windowAndReset() {
        var r = RestartRate(window: 30, minimumRestarts: 2)
        r.observe(restarts: 5, at: 0)
        r.observe(restarts: 7, at: 1)
        #expect(r.restartTimes == [1, 1])
        r.observe(restarts: 7, at: 40)
        #expect(r.restartTimes.isEmpty)
        #expect(r.observe(restarts: 2, at: 41) == 0)
        #expect(r.observe(restarts: 3, at: 42) == 1)
    }
}

@Suite("Failure forecaster")
struct FailureForecasterTests {
    func sample(_ worker: String, pid: Int32 = 100, t: Double, rss: Double, restarts: UInt32 = 0,
                limit: Double? = 64 * 1024) -> FailureForecaster.Sample {
        .init(worker: worker, pid: pid, time: t, rssKiB: rss, cpuShare: 0.01, restarts: restarts,
              memoryLimitKiB: limit, heartbeatJitterMs: 0.5)
    }

    func predictions(_ f: [FailureForecaster.Finding]) -> [FailureForecaster.Prediction] {
        f.compactMap { if case .prediction(let p) = $0 { p } else { nil } }
    }

    @Test("a leak toward the limit is advised once per process, within the horizon, then again for the next process")
    func leakAdvisedOncePerProcess() throws {
        var f = FailureForecaster(.init(horizon: 20))
        var rng = Noise(state: 3)
        var advised: [(Double, FailureForecaster.Prediction)] = []
        // 10 MiB + 1 MiB/s: the 64 MiB limit is 54 s away at first, so the advice waits
        // until it is within the 20 s horizon (t = 34 s).
        for i in 0..<300 {
            let t = Double(i) * 0.2
            for p in predictions(f.observe(sample("leaky", t: t, rss: 10_240 + 1024 * t + rng.gaussian(100)))) { advised.append((t, p)) }
        }
        let (t, p) = try #require(advised.first)
        #expect(advised.count == 1)
        #expect(p.model == "rss-theil-sen" && p.action == .restart && p.pid == 100)
        #expect(p.secondsToFailure <= 20 && t >= 32 && t <= 36, "advised at \(t)s, eta \(p.secondsToFailure)")
        #expect(p.reason.contains("memory_limit"))
        // A new process starts over, and leaks again: a second advice, for it.
        var again: [FailureForecaster.Prediction] = []
        for i in 0..<300 {
            let t = 60 + Double(i) * 0.2
            again += predictions(f.observe(sample("leaky", pid: 200, t: t, rss: 40_000 + 1024 * (t - 60))))
        }
        #expect(again.map(\.pid) == [200])
    }

    @Test("no limit, no leak advice; a noisy flat worker is never advised over a long series")
    func noFalsePositives() {
        var f = FailureForecaster(.init(horizon: 30))
        var rng = Noise(state: 11)
        var found: [FailureForecaster.Prediction] = []
        for i in 0..<1500 {
            let t = Double(i) * 0.2
            found += predictions(f.observe(sample("flat", t: t, rss: 40_000 + rng.gaussian(3000))))
            found += predictions(f.observe(sample("unlimited", t: t, rss: 10_000 + 500 * t, limit: nil)))
        }
        #expect(found.isEmpty)
        #expect(f.workerCount == 2)
    }

    @Test("a crash loop gives one watch forecast per horizon")
    func crashLoop() {
        var f = FailureForecaster(.init(horizon: 30))
        var found: [(Double, FailureForecaster.Prediction)] = []
        for i in 0..<600 {
            let t = Double(i) * 0.2
            let restarts = UInt32(t / 5)  // a failure every 5 s
            for p in predictions(f.observe(sample("loop", pid: Int32(100 + restarts), t: t, rss: 5000, restarts: restarts))) {
                found.append((t, p))
            }
        }
        #expect(found.allSatisfy { $0.1.model == "restart-rate" && $0.1.action == .watch })
        #expect(found.count == 4)  // 120 s of loop, one per 30 s after the pace is known
        #expect(found.allSatisfy { $0.1.secondsToFailure <= 5 })
    }

    @Test("a sudden RSS jump is an anomaly against the worker's own baseline")
    func anomaly() {
        var f = FailureForecaster()
        var anomalies: [FailureForecaster.Anomaly] = []
        for i in 0..<40 {
            let rss: Double = i == 30 ? 60_000 : 20_000
            for x in f.observe(sample("w", t: Double(i), rss: rss)) { if case .anomaly(let a) = x { anomalies.append(a) } }
        }
        #expect(anomalies.map(\.metric) == ["rss_kib"])
        #expect(anomalies.first.map { $0.z > 4 && $0.value == 60_000 } == true)
    }

    @Test("numbers are short and exact enough for a journal line")
    func short() {
        #expect(FailureForecaster.short(2.5) == "2.5")
        #expect(FailureForecaster.short(3) == "3")
        #expect(FailureForecaster.short(-0.25) == "-0.25")
        #expect(FailureForecaster.short(1.23456) == "1.235")
        #expect(FailureForecaster.short(.infinity) == "inf")
    }
}
