import Testing
@testable import Trading

@Suite("Rolling baseline and z-scores")
struct BaselineTests {
    @Test func configuration() {
        #expect(throws: RollingBaseline.ConfigurationError.alpha(0)) { try RollingBaseline(alpha: 0) }
        #expect(throws: RollingBaseline.ConfigurationError.alpha(1.5)) { try RollingBaseline(alpha: 1.5) }
        #expect(throws: RollingBaseline.ConfigurationError.warmUp(0)) { try RollingBaseline(warmUp: 0) }
        #expect(throws: RollingBaseline.ConfigurationError.floor(0)) { try RollingBaseline(absoluteFloor: 0) }
        #expect(throws: RollingBaseline.ConfigurationError.floor(-1)) { try RollingBaseline(relativeFloor: -1) }
    }

    @Test("early samples give the exact running mean and population variance")
    func exactEarly() throws {
        var b = try RollingBaseline(alpha: 0.01, warmUp: 1)
        let xs: [Double] = [4, 8, 15, 16, 23, 42]
        for x in xs { b.observe(x) }
        let mean = xs.reduce(0, +) / Double(xs.count)
        let variance = xs.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(xs.count)
        #expect(abs(b.mean - mean) < 1e-9)
        #expect(abs(b.variance - variance) < 1e-9)
    }

    @Test("no score during warm-up; scores against the baseline before the sample")
    func warmUp() throws {
        var b = try RollingBaseline(alpha: 0.1, warmUp: 3, absoluteFloor: 1)
        #expect(b.scoreAndObserve(10) == nil)
        #expect(b.scoreAndObserve(10) == nil)
        #expect(b.scoreAndObserve(10) == nil)
        #expect(b.isWarm)
        #expect(b.score(10) == 0)
        #expect(b.score(15) == 5)  // flat history: the floor (1) is the deviation
        #expect(b.scoreAndObserve(15) == 5)
        #expect(b.mean > 10)
    }

    @Test("floors: absolute and relative to the mean")
    func floors() throws {
        var b = try RollingBaseline(alpha: 0.1, warmUp: 1, absoluteFloor: 0.5, relativeFloor: 0.02)
        b.observe(1000)
        #expect(b.deviation == 20)
        #expect(b.score(1100) == 5)
    }

    @Test("noise stays under the threshold, a spike does not; drift is absorbed")
    func detection() throws {
        var rng = SplitMix64(seed: 77)
        var b = try RollingBaseline(alpha: 0.05, warmUp: 20, absoluteFloor: 1e-6)
        var falseAlarms = 0
        for _ in 0..<2000 {
            let x = 100 + Double(Int.random(in: -10...10, using: &rng))
            if let z = b.scoreAndObserve(x), abs(z) > 4 { falseAlarms += 1 }
        }
        #expect(falseAlarms == 0)
        #expect(abs(b.mean - 100) < 3)
        #expect((b.score(200) ?? 0) > 10)
        // A persistent level shift stops being anomalous.
        for _ in 0..<200 { b.observe(150 + Double(Int.random(in: -10...10, using: &rng))) }
        #expect(abs(b.score(150) ?? 99) < 1)
    }

    @Test func nonFiniteIgnored() throws {
        var b = try RollingBaseline(alpha: 0.5, warmUp: 1)
        b.observe(.nan)
        b.observe(.infinity)
        #expect(b.count == 0)
        b.observe(3)
        #expect(b.score(.nan) == nil)
        #expect(b.mean == 3)
    }
}
