import Testing
@testable import VigilCore

@Suite("Start order and dependencies")
struct StartOrderTests {
    @Test func startsInDeclarationOrderDepthFirst() {
        var h = Harness(root: supervisor("root", [
            .supervisor(supervisor("data", .restForOne, [worker("db"), worker("cache")])),
            worker("guardian"),
            .supervisor(supervisor("markets", [worker("gateway"), worker("runner", instances: 3)])),
        ]))
        h.start()
        #expect(h.spawnOrder == ["db", "cache", "guardian", "gateway", "runner.1", "runner.2", "runner.3"])
        #expect(h.records(.treeReady).count == 1)
    }

    @Test func dependentWaitsForReady() {
        var h = Harness(root: supervisor("root", [worker("db"), worker("cache", dependsOn: ["db"])]))
        h.start(ready: false)
        #expect(h.spawnOrder == ["db"])
        #expect(h.state("cache") == "waiting for db")
        h.ready("db")
        #expect(h.spawnOrder == ["db", "cache"])
        #expect(h.records(.treeReady).isEmpty)
        h.ready("cache")
        #expect(h.records(.treeReady).count == 1)
    }

    @Test func dependencyOnPoolWaitsForEveryInstance() {
        var h = Harness(root: supervisor("root", [worker("p", instances: 2), worker("after", dependsOn: ["p"])]))
        h.start(ready: false)
        h.ready("p.1")
        #expect(!h.spawnOrder.contains("after"))
        h.ready("p.2")
        #expect(h.spawnOrder.last == "after")
    }

    @Test func dependencyAcrossSupervisors() {
        var h = Harness(root: supervisor("root", [
            .supervisor(supervisor("data", [worker("db")])),
            .supervisor(supervisor("markets", [worker("gw", dependsOn: ["data"])])),
        ]))
        h.start(ready: false)
        #expect(h.spawnOrder == ["db"])
        h.ready("db")
        #expect(h.spawnOrder == ["db", "gw"])
    }

    @Test func readyTimeoutIsAFailedStartThatCounts() {
        var h = Harness(root: supervisor("root", max: 1, [worker("slow", readyTimeout: .seconds(2))]))
        h.start(ready: false)
        h.advance(.seconds(2))
        #expect(h.records(.readyTimeout).count == 1)
        #expect(h.signals.map(\.1) == [SignalName.term])
        h.exitSignalled()
        #expect(h.spawnOrder == ["slow", "slow"])
        h.advance(.seconds(2))
        h.exitSignalled()
        #expect(h.finished == .failed(h.records(.escalate)[0].detail))
    }

    @Test func spawnFailureCountsAsRestart() {
        var h = Harness(root: supervisor("root", max: 2, [worker("missing")]))
        h.failSpawns = ["missing"]
        h.start()
        // One start plus two restarts are allowed; the intensity is exceeded at the third.
        for _ in 0..<5 { h.advance(.seconds(1)) }
        #expect(h.records(.spawnFailed).count == 3)
        if case .failed = h.finished {} else { Issue.record("tree should fail, got \(String(describing: h.finished))") }
    }

    @Test func staleEventsAreIgnored() {
        var h = Harness(root: supervisor("root", [worker("a")]))
        h.start()
        let old = h.tree.incarnation(of: h.id("a"))
        h.exit("a")
        h.send(.exited(h.id("a"), incarnation: old, .signaled(9)))
        h.send(.ready(h.id("a"), incarnation: old))
        #expect(h.spawnOrder == ["a", "a"])
        #expect(h.tree.restarts(of: h.id("a")) == 1)
    }
}

@Suite("OTP restart strategies")
struct RestartStrategyTests {
    @Test func oneForOneRestartsOnlyTheFailedChild() {
        var h = Harness(root: supervisor("root", [worker("a"), worker("b"), worker("c")]))
        h.start()
        h.clearLogs()
        let pidA = h.pid("a"), pidC = h.pid("c")
        h.exit("b")
        #expect(h.spawnOrder == ["b"])
        #expect(h.signals.isEmpty)
        #expect(h.pid("a") == pidA && h.pid("c") == pidC)
    }

    @Test func restForOneTerminatesLaterChildrenLastFirstThenRestartsInOrder() {
        var h = Harness(root: supervisor("root", .restForOne, [worker("a"), worker("b"), worker("c"), worker("d")]))
        h.start()
        h.clearLogs()
        let pidA = h.pid("a")
        h.exit("b")
        // d is terminated first; c only once d is gone.
        #expect(h.signals.map(\.0) == ["d"])
        #expect(h.spawnOrder.isEmpty)
        h.exit("d", .signaled(15))
        #expect(h.signals.map(\.0) == ["d", "c"])
        h.exit("c", .signaled(15))
        #expect(h.spawnOrder == ["b", "c", "d"])
        #expect(h.pid("a") == pidA)
    }

    @Test func oneForAllTerminatesAllInReverseThenRestartsAll() {
        var h = Harness(root: supervisor("root", .oneForAll, [worker("a"), worker("b"), worker("c")]))
        h.start()
        h.clearLogs()
        h.exit("b")
        #expect(h.signals.map(\.0) == ["c"])
        h.exitSignalled()
        #expect(h.spawnOrder == ["a", "b", "c"])
        let terminated = h.records(.terminate).map(\.node)
        #expect(terminated == ["c", "a"])
    }

    @Test func cascadeCountsAsOneRestart() {
        var h = Harness(root: supervisor("root", .oneForAll, max: 1, [worker("a"), worker("b"), worker("c")]))
        h.start()
        h.exit("a")
        h.exitSignalled()
        #expect(h.finished == nil)
        #expect(h.records(.escalate).isEmpty)
        h.exit("c")
        h.exitSignalled()
        #expect(h.records(.escalate).count == 1)
    }

    @Test func poolInstancesAreTerminatedTogether() {
        var h = Harness(root: supervisor("root", .oneForAll, [worker("gw"), worker("p", instances: 3)]))
        h.start()
        h.clearLogs()
        h.exit("gw")
        #expect(Set(h.signals.map(\.0)) == ["p.1", "p.2", "p.3"])
        h.exitSignalled()
        #expect(h.spawnOrder == ["gw", "p.1", "p.2", "p.3"])
    }

    @Test func temporaryChildIsNeverRestartedAndRemovedByCascade() {
        var h = Harness(root: supervisor("root", .oneForAll, [worker("a"), worker("t", restart: .temporary)]))
        h.start()
        h.clearLogs()
        h.exit("a")
        h.exitSignalled()
        #expect(h.spawnOrder == ["a"])
        #expect(h.state("t") == "exited (temporary)")

        var h2 = Harness(root: supervisor("root", [worker("t", restart: .temporary)]))
        h2.start()
        h2.clearLogs()
        h2.exit("t", .exited(1))
        #expect(h2.spawnOrder.isEmpty)
        #expect(h2.records(.notRestarted).count == 1)
    }

    @Test func transientRestartsOnlyAfterAbnormalExit() {
        var h = Harness(root: supervisor("root", [worker("t", restart: .transient)]))
        h.start()
        h.clearLogs()
        h.exit("t", .exited(3))
        #expect(h.spawnOrder == ["t"])
        h.exit("t", .signaled(15))  // a SIGTERM vigil did not send is abnormal
        h.advance(.milliseconds(100))  // second failure in a row: backoff
        #expect(h.spawnOrder == ["t", "t"])
        h.advance(.seconds(1))
        h.exit("t", .exited(0))
        #expect(h.spawnOrder.count == 2)
        #expect(h.state("t") == "completed")
    }

    @Test func nestedSupervisorEscalatesToItsParent() {
        var h = Harness(root: supervisor("root", max: 5, [
            worker("top"),
            .supervisor(supervisor("inner", max: 1, [worker("x"), worker("y")])),
        ]))
        h.start()
        h.clearLogs()
        let top = h.pid("top")
        h.exit("x")
        h.exit("x")  // second restart within the period: inner exceeds max_restarts 1
        #expect(h.records(.escalate).map(\.node) == ["inner"])
        #expect(h.signals.map(\.0) == ["y"])
        h.exitSignalled()
        // inner is restarted by root (one_for_one) with fresh children; top is untouched.
        #expect(h.spawnOrder.suffix(2) == ["x", "y"])
        #expect(h.pid("top") == top)
        #expect(h.tree.restarts(of: h.id("inner")) == 1)
        #expect(h.finished == nil)
    }

    @Test func rootBreachStopsTheTreeAndFails() {
        var h = Harness(root: supervisor("root", max: 0, [worker("a"), worker("b")]))
        h.start()
        h.exit("b")
        #expect(h.signals.map(\.0) == ["a"])
        h.exitSignalled()
        #expect(h.records(.treeFailed).count == 1)
        if case .failed(let why) = h.finished { #expect(why.contains("root exceeded its restart intensity")) }
        else { Issue.record("tree should have failed") }
    }

    @Test func intensityWindowForgetsOldRestarts() {
        let noBackoff = BackoffPolicy(initial: .zero, jitter: 0)
        var h = Harness(root: supervisor("root", max: 2, period: .seconds(10), [worker("a", backoff: noBackoff)]))
        h.start()
        for _ in 0..<6 {
            h.exit("a")
            h.advance(.seconds(6))
        }
        #expect(h.finished == nil)
        h.exit("a"); h.advance(.milliseconds(500))
        h.exit("a"); h.advance(.milliseconds(500))
        h.exit("a")
        #expect(h.records(.escalate).count == 1)
    }

    @Test func intensityUsageCountsOnlyTheCurrentWindow() {
        let noBackoff = BackoffPolicy(initial: .zero, jitter: 0)
        var h = Harness(root: supervisor("root", max: 3, period: .seconds(10), [worker("a", backoff: noBackoff)]))
        h.start()
        #expect(h.tree.intensityUsage(of: h.tree.root, at: h.now) == IntensityUsage(used: 0, allowed: 3, period: .seconds(10)))
        h.exit("a"); h.advance(.seconds(4))
        h.exit("a"); h.advance(.seconds(4))
        #expect(h.tree.intensityUsage(of: h.tree.root, at: h.now)?.used == 2)
        h.advance(.seconds(3))  // the first restart is now 11 s old
        #expect(h.tree.intensityUsage(of: h.tree.root, at: h.now)?.used == 1)
        #expect(h.tree.intensityUsage(of: h.id("a"), at: h.now) == nil, "a worker has no intensity")
    }

    @Test func failureDuringACascadeIsHandledAfterIt() {
        var h = Harness(root: supervisor("root", .restForOne, [worker("a"), worker("b"), worker("c")]))
        h.start()
        h.clearLogs()
        h.exit("b")          // plan: terminate c, restart b, c
        h.exit("a")          // a is not in the plan: deferred
        #expect(h.spawnOrder.isEmpty)
        h.exitSignalled()    // c exits; plan completes; a's failure is handled: rest_for_one from a
        h.exitSignalled()
        #expect(h.spawnOrder == ["a", "b", "c"])
        #expect(h.tree.restarts(of: h.id("a")) == 1)
    }
}

@Suite("Incarnations")
struct IncarnationTests {
    @Test func continueFromAnEarlierRunOfVigil() {
        var h = Harness(root: supervisor("root", [worker("a"), worker("p", instances: 2)]))
        h.tree.continueIncarnations(from: ["a": 7, "p.2": 3])
        h.start()
        #expect(h.tree.incarnation(of: h.id("a")) == 8)
        #expect(h.tree.incarnation(of: h.id("p.1")) == 1)
        #expect(h.tree.incarnation(of: h.id("p.2")) == 4)
    }
}

@Suite("Readiness")
struct ReadinessTests {
    @Test func execReadinessIsReadyOnceRunning() {
        var h = Harness(root: supervisor("root", [
            .worker(WorkerSpec(name: "plain", argv: ["/bin/sleep"], readiness: .exec)),
            worker("after", dependsOn: ["plain"]),
        ]))
        h.start(ready: false)
        #expect(h.state("plain") == "ready")
        #expect(h.spawnOrder == ["plain", "after"])
        h.advance(.seconds(60))  // no ready timeout applies to it
        #expect(h.records(.readyTimeout).map(\.node) == ["after"])
    }
}

@Suite("Watchdog")
struct WatchdogTests {
    func tree() -> Harness {
        Harness(root: supervisor("root", [.worker(WorkerSpec(name: "w", argv: ["/bin/true"], watchdog: .seconds(2)))]))
    }

    @Test func heartbeatsKeepAWorkerAlive() {
        var h = tree()
        h.start()
        for _ in 0..<10 {
            h.now = h.now + .milliseconds(1500)
            h.tree.heartbeat(h.id("w"), incarnation: 1, at: h.now)
            h.send(.tick)
        }
        #expect(h.records(.watchdog).isEmpty)
        #expect(h.signals.isEmpty)
    }

    @Test func silenceBeyondTheWatchdogIsAHangThatIsKilledAndRestarted() {
        var h = tree()
        h.start()
        h.advance(.milliseconds(1999))
        #expect(h.signals.isEmpty)
        h.advance(.milliseconds(1))
        #expect(h.records(.watchdog).count == 1)
        #expect(h.signals.map(\.1) == [SignalName.abort], "SIGABRT first, so it dumps where it hung")
        h.signals.removeAll()
        h.advance(.milliseconds(999))
        #expect(h.signals.isEmpty)
        h.advance(.milliseconds(1))  // a second for a stack trace or core dump: then SIGKILL
        #expect(h.signals.map(\.1) == [SignalName.kill])
        h.exitSignalled()
        #expect(h.spawnOrder == ["w", "w"])
        #expect(h.tree.restarts(of: h.id("w")) == 1)
        #expect(h.tree.status()[h.id("w").index].lastReason?.contains("hung") == true)
    }

    @Test func aBrutalKillWorkerIsSIGKILLedAtOnce() {
        var h = Harness(root: supervisor("root", [.worker(WorkerSpec(name: "w", argv: ["/bin/true"], shutdown: .brutalKill, watchdog: .seconds(2)))]))
        h.start()
        h.advance(.seconds(2))
        #expect(h.signals.map(\.1) == [SignalName.kill])
    }

    @Test func aLateCheckByAStoppedVigilGetsOneGracePeriodNotAKill() {
        var h = tree()
        h.start()
        // vigil was stopped for 30 s: the check due at 2 s runs at 30 s.
        h.advance(.seconds(30))
        #expect(h.signals.isEmpty)
        #expect(h.records(.watchdog).last?.detail.contains("late (vigil was not running on time): grace of 2s") == true)
        // Its heartbeats, read now, keep it alive.
        h.tree.heartbeat(h.id("w"), incarnation: 1, at: h.now)
        h.advance(.milliseconds(1900))
        #expect(h.signals.isEmpty)
        // Silent for a whole period after that heartbeat: hung after all.
        h.advance(.milliseconds(100))
        #expect(h.signals.map(\.1) == [SignalName.abort])
    }

    @Test func aWorkerThatStaysSilentAfterTheGraceIsKilled() {
        var h = tree()
        h.start()
        h.advance(.seconds(30))
        #expect(h.signals.isEmpty)
        h.advance(.seconds(2))
        #expect(h.signals.map(\.1) == [SignalName.abort], "one grace only")
    }

    @Test func aChildSetsItsOwnWatchdogForThisIncarnationOnly() {
        var h = tree()
        h.start()
        h.apply(h.tree.setWatchdog(h.id("w"), incarnation: 1, to: .seconds(10), at: h.now))
        h.advance(.seconds(9))
        #expect(h.signals.isEmpty)
        h.advance(.seconds(1))
        #expect(h.signals.map(\.1) == [SignalName.abort])
        h.exitSignalled()
        h.clearLogs()
        // The replacement is back on the spec's 2 s.
        h.advance(.seconds(2))
        #expect(h.signals.map(\.1) == [SignalName.abort])
    }

    @Test func watchdogTriggerIsAHangNow() {
        var h = tree()
        h.start()
        h.apply(h.tree.triggerWatchdog(h.id("w"), incarnation: 1, at: h.now))
        #expect(h.signals.map(\.1) == [SignalName.abort])
        #expect(h.records(.watchdog).last?.detail.contains("WATCHDOG=trigger") == true)
    }

    @Test func extendTimeoutMovesTheReadyAndShutdownDeadlinesButNeverEarlier() {
        var h = Harness(root: supervisor("root", [.worker(WorkerSpec(name: "w", argv: ["/bin/true"], readyTimeout: .seconds(1)))]))
        h.start(ready: false)
        h.advance(.milliseconds(500))
        h.apply(h.tree.extendTimeout(h.id("w"), incarnation: 1, by: .seconds(5), at: h.now))
        h.apply(h.tree.extendTimeout(h.id("w"), incarnation: 1, by: .milliseconds(10), at: h.now))  // earlier: ignored
        h.advance(.seconds(1))
        #expect(h.records(.readyTimeout).isEmpty)
        h.advance(.seconds(4))
        #expect(h.records(.readyTimeout).count == 1, "5.5 s after the start")
        // Stopping: SIGTERM, then the child asks for more time before SIGKILL.
        #expect(h.signals.map(\.1) == [SignalName.term])
        h.signals.removeAll()
        h.advance(.seconds(1))
        h.apply(h.tree.extendTimeout(h.id("w"), incarnation: 1, by: .seconds(10), at: h.now))
        h.advance(.seconds(5))
        #expect(h.signals.isEmpty, "the 5 s shutdown time was extended")
        h.advance(.seconds(5))
        #expect(h.signals.map(\.1) == [SignalName.kill])
    }

    @Test func aStaleHeartbeatFromAnOldIncarnationDoesNotCount() {
        var h = tree()
        h.start()
        h.exit("w")
        h.now = h.now + .milliseconds(1500)
        h.tree.heartbeat(h.id("w"), incarnation: 1, at: h.now)
        h.advance(.milliseconds(600))
        #expect(h.records(.watchdog).count == 1)
    }
}
