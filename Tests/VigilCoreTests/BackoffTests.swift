import Testing
@testable import VigilCore

@Suite("Backoff")
struct BackoffTests {
    @Test func growsExponentiallyToTheCap() {
        let p = BackoffPolicy(initial: .milliseconds(100), multiplier: 2, max: .seconds(1), jitter: 0)
        let delays = (1...8).map { p.delay(afterFailure: $0, random: 0.5).milliseconds }
        #expect(delays == [0, 100, 200, 400, 800, 1000, 1000, 1000])
    }

    @Test func jitterOnlyShortensAndStaysWithinItsFraction() {
        let p = BackoffPolicy(initial: .seconds(1), multiplier: 2, max: .seconds(4), jitter: 0.25)
        for r in stride(from: 0.0, to: 1.0, by: 0.05) {
            let d = p.delay(afterFailure: 10, random: r).milliseconds
            #expect(d <= 4000 && d >= 3000)
        }
    }

    @Test func childBacksOffAndResetsAfterStableUptime() {
        let backoff = BackoffPolicy(initial: .milliseconds(100), multiplier: 2, max: .seconds(10), jitter: 0,
                                    resetAfter: .seconds(30))
        var h = Harness(root: supervisor("root", max: 100, [worker("a", backoff: backoff)]))
        h.start()
        h.clearLogs()
        h.exit("a")
        #expect(h.spawnOrder.count == 1)  // first failure: immediate
        h.exit("a")
        #expect(h.spawnOrder.count == 1)
        #expect(h.state("a").hasPrefix("backoff"))
        h.advance(.milliseconds(99))
        #expect(h.spawnOrder.count == 1)
        h.advance(.milliseconds(1))
        #expect(h.spawnOrder.count == 2)
        h.exit("a")
        h.advance(.milliseconds(199))
        #expect(h.spawnOrder.count == 2)
        h.advance(.milliseconds(1))
        #expect(h.spawnOrder.count == 3)
        // A stable run of resetAfter: the next failure restarts at once again.
        h.advance(.seconds(30))
        h.exit("a")
        #expect(h.spawnOrder.count == 4)
    }

    @Test func cascadeWaitsForTheFailedChildsBackoff() {
        var h = Harness(root: supervisor("root", .oneForAll, max: 100, [worker("a"), worker("b")]))
        h.start()
        h.exit("a"); h.exitSignalled()
        h.clearLogs()
        h.exit("a"); h.exitSignalled()
        #expect(h.spawnOrder.isEmpty)
        h.advance(.milliseconds(100))
        #expect(h.spawnOrder == ["a", "b"])
    }
}

@Suite("Restart window")
struct RestartWindowTests {
    @Test func admitsUpToMaxWithinPeriod() {
        var w = RestartWindow()
        let i = Intensity(maxRestarts: 3, period: .seconds(5))
        let t = Instant(nanoseconds: 0)
        do { let ok = w.admit(at: t, within: i); #expect(ok) }
        do { let ok = w.admit(at: t + .seconds(1), within: i); #expect(ok) }
        do { let ok = w.admit(at: t + .seconds(2), within: i); #expect(ok) }
        do { let ok = w.admit(at: t + .seconds(3), within: i); #expect(!ok) }
    }

    @Test func zeroMaxRestartsFailsOnTheFirst() {
        var w = RestartWindow()
        do { let ok = w.admit(at: .zero, within: Intensity(maxRestarts: 0, period: .seconds(5))); #expect(!ok) }
    }

    @Test func dropsRestartsOlderThanThePeriod() {
        var w = RestartWindow()
        let i = Intensity(maxRestarts: 1, period: .seconds(5))
        do { let ok = w.admit(at: .zero, within: i); #expect(ok) }
        do { let ok = w.admit(at: .zero + .seconds(5), within: i); #expect(ok) }
        do { let ok = w.admit(at: .zero + .seconds(6), within: i); #expect(!ok) }
    }
}

@Suite("Durations")
struct DurationTextTests {
    @Test func parsesTopologyDurations() {
        #expect(Duration(topologyText: "500ms") == .milliseconds(500))
        #expect(Duration(topologyText: "5s") == .seconds(5))
        #expect(Duration(topologyText: "2m") == .seconds(120))
        #expect(Duration(topologyText: "1m30s") == .seconds(90))
        #expect(Duration(topologyText: "1.5s") == .milliseconds(1500))
        #expect(Duration(topologyText: "1h") == .seconds(3600))
        #expect(Duration(topologyText: "5") == nil)
        #expect(Duration(topologyText: "fast") == nil)
        #expect(Duration(topologyText: "") == nil)
        #expect(Duration(topologyText: "5 s") == nil)
        #expect(Duration.milliseconds(1500).topologyText == "1500ms")
        #expect(Duration.seconds(120).topologyText == "2m")
    }
}
