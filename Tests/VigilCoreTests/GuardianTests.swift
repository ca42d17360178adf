import Testing
@testable import VigilCore

/// The guardian's veto, the fail-safe and safe mode, as pure state-machine tests.
@Suite("Guardian veto and safe mode")
struct GuardianTests {
    /// guardian, gateway (guarded), runner pool (guarded), cache (safe_mode: stop).
    static func tree(timeout: Duration = .seconds(2)) -> Harness {
        let guardian = ChildSpec.worker(WorkerSpec(name: "guardian", argv: ["/bin/true"], role: .guardian))
        let gateway = ChildSpec.worker(WorkerSpec(name: "gw", argv: ["/bin/true"], backoff: BackoffPolicy(jitter: 0),
                                                  role: .gateway, guarded: true))
        let runner = ChildSpec.worker(WorkerSpec(name: "runner", argv: ["/bin/true"], backoff: BackoffPolicy(jitter: 0),
                                                 instances: 2, guarded: true))
        let cache = ChildSpec.worker(WorkerSpec(name: "cache", argv: ["/bin/true"], safeMode: .stop))
        return Harness(Topology(root: supervisor("root", max: 100, [guardian, cache, gateway, runner]),
                                settings: TreeSettings(guardianTimeout: timeout)))
    }

    func questions(_ h: Harness) -> [GuardianQuestion] {
        h.log.compactMap { if case .askGuardian(_, let q) = $0 { q } else { nil } }
    }

    func broadcasts(_ h: Harness) -> [String] {
        h.log.compactMap { if case .broadcast(let k, let v) = $0 { "\(k)=\(v)" } else { nil } }
    }

    @Test func aGuardedChildIsRestartedOnlyAfterAllow() {
        var h = Self.tree()
        h.start()
        h.clearLogs()
        h.exit("runner.1")
        #expect(h.spawnOrder.isEmpty)
        #expect(h.state("runner.1") == "awaiting guardian")
        let q = questions(h)
        #expect(q.count == 1 && q[0].child == "runner.1" && q[0].reason == "signal SIGKILL")
        h.send(.verdict(id: q[0].id, .allow))
        #expect(h.spawnOrder == ["runner.1"])
        #expect(h.records(.verdict).count == 1)
    }

    @Test func denyKeepsItDownUntilAnOperatorStartsIt() {
        var h = Self.tree()
        h.start()
        h.exit("gw")
        h.send(.verdict(id: questions(h)[0].id, .deny("crashing too often")))
        h.advance(.seconds(60))
        #expect(h.state("gw") == "stopped (denied)")
        h.clearLogs()
        #expect(h.command(.start("gw")) == nil)
        #expect(h.spawnOrder == ["gw"])
    }

    @Test func delayRestartsAfterTheGivenTime() {
        var h = Self.tree()
        h.start()
        h.clearLogs()
        h.exit("runner.2")
        h.send(.verdict(id: questions(h)[0].id, .delay(.seconds(3), "cool down")))
        h.advance(.milliseconds(2999))
        #expect(h.spawnOrder.isEmpty)
        h.advance(.milliseconds(1))
        #expect(h.spawnOrder == ["runner.2"])
    }

    @Test func safeModeVerdictKeepsItDownStopsWhatSafeModeStopsAndTellsEveryone() {
        var h = Self.tree()
        h.start()
        h.clearLogs()
        h.exit("gw")
        h.send(.verdict(id: questions(h)[0].id, .safeMode("exposure over limit")))
        #expect(h.tree.safeMode?.reason == "exposure over limit")
        #expect(broadcasts(h) == ["safe_mode=on"])
        #expect(h.signals.map(\.0) == ["cache"])
        h.exitSignalled()
        #expect(h.state("cache") == "stopped (safe mode)")
        #expect(h.state("gw") == "stopped (safe mode)")
        // Guarded restarts are refused while in safe mode, without asking.
        h.exit("runner.1")
        #expect(questions(h).count == 1)
        #expect(h.state("runner.1") == "stopped (safe mode)")
        #expect(h.command(.start("runner.1"))?.message.contains("safe mode") == true)
        // Leaving safe mode starts everything it kept down.
        h.clearLogs()
        let left = h.tree.setSafeMode(false, reason: "checked", by: "operator uid 0", at: h.now)
        if case .success(let effects) = left { h.apply(effects) } else { Issue.record("\(left)") }
        #expect(Set(h.spawnOrder) == ["cache", "gw", "runner.1"])
        #expect(broadcasts(h) == ["safe_mode=off"])
        #expect(h.tree.safeMode == nil)
    }

    @Test func aGatewayThatDiesDuringALiquidationIsRestartedToFinishIt() {
        var h = Self.tree()
        h.start()
        h.exit("runner.1")
        h.send(.verdict(id: questions(h)[0].id, .liquidate("drawdown over limit")))
        h.clearLogs()
        h.exit("gw")
        #expect(questions(h).isEmpty, "the guardian is not asked: the liquidation needs its gateway")
        #expect(h.spawnOrder == ["gw"])
        #expect(h.records(.verdict).last?.detail.contains("carries out the liquidation") == true)
        // Other guarded children stay down, and a gateway outside a liquidation too.
        h.clearLogs()
        h.exit("runner.2")
        #expect(h.spawnOrder.isEmpty && h.state("runner.2") == "stopped (safe mode)")
    }

    @Test func inSafeModeWithoutALiquidationAGatewayStaysDown() {
        var h = Self.tree()
        h.start()
        if case .success(let fx) = h.tree.setSafeMode(true, reason: "op", by: "op", at: h.now) { h.apply(fx) } else { Issue.record("refused") }
        h.clearLogs()
        h.exit("gw")
        #expect(h.spawnOrder.isEmpty && h.state("gw") == "stopped (safe mode)")
    }

    @Test func liquidateVerdictEntersSafeModeAndOrdersLiquidation() {
        var h = Self.tree()
        h.start()
        h.exit("runner.1")
        h.send(.verdict(id: questions(h)[0].id, .liquidate("drawdown over limit")))
        #expect(h.tree.safeMode?.liquidating == true)
        #expect(broadcasts(h) == ["safe_mode=on", "liquidate=start"])
        #expect(h.records(.liquidation).count == 1)
    }

    @Test func aGatewayReportingItsLiquidationDoneEndsItButNotSafeMode() {
        var h = Self.tree()
        h.start()
        if case .success(let fx) = h.tree.liquidate(reason: "op", by: "op", at: h.now) { h.apply(fx) }
        #expect(h.tree.safeMode?.liquidating == true)
        h.apply(h.tree.liquidationFinished(reportedBy: h.id("cache"), detail: "not a gateway", at: h.now))
        #expect(h.tree.safeMode?.liquidating == true, "only a gateway can say so")
        h.apply(h.tree.liquidationFinished(reportedBy: h.id("gw"), detail: "every book flat", at: h.now))
        #expect(h.tree.safeMode != nil && h.tree.safeMode?.liquidating == false)
        #expect(h.records(.liquidation).last?.detail.contains("finished (reported by gw: every book flat)") == true)
        // A gateway that dies now is not restarted: the liquidation no longer needs it.
        h.clearLogs()
        h.exit("gw")
        #expect(h.spawnOrder.isEmpty && h.state("gw") == "stopped (safe mode)")
    }

    @Test func noAnswerInTimeIsTheFailSafe() {
        var h = Self.tree(timeout: .seconds(1))
        h.start()
        h.clearLogs()
        h.exit("gw")
        h.advance(.milliseconds(999))
        #expect(h.tree.safeMode == nil)
        h.advance(.milliseconds(1))
        #expect(h.tree.safeMode?.by == "vigil (fail-safe)")
        #expect(h.spawnOrder.isEmpty)
        // A late verdict changes nothing.
        h.send(.verdict(id: questions(h)[0].id, .allow))
        #expect(h.spawnOrder.isEmpty)
    }

    @Test func aRestartingGuardianIsRestartedFirstAndThenAsked() {
        var h = Self.tree()
        h.start()
        h.readyOnSpawn = false
        h.exit("guardian")   // not guarded itself: restarted at once, but not READY yet
        h.clearLogs()
        h.exit("runner.2")
        #expect(questions(h).isEmpty, "nobody to ask yet")
        #expect(h.tree.safeMode == nil)
        #expect(h.state("runner.2") == "awaiting guardian")
        #expect(h.records(.guardianAsked).last?.detail.contains("held until the restarting guardian is READY") == true)
        h.advance(.seconds(1))
        h.ready("guardian")
        let q = questions(h)
        #expect(q.map(\.child) == ["runner.2"])
        h.send(.verdict(id: q[0].id, .allow))
        #expect(h.spawnOrder.contains("runner.2"))
    }

    @Test func aQuestionPutToAGuardianThatThenDiesIsPutToItsReplacement() {
        var h = Self.tree()
        h.start()
        h.readyOnSpawn = false
        h.clearLogs()
        h.exit("runner.1")
        let first = questions(h)
        #expect(first.count == 1)
        h.exit("guardian")    // dies before answering
        h.clearLogs()
        h.advance(.milliseconds(100))
        h.ready("guardian")
        #expect(questions(h) == first, "the same question, to the new guardian")
        h.send(.verdict(id: first[0].id, .allow))
        #expect(h.spawnOrder.contains("runner.1"))
        #expect(h.tree.safeMode == nil)
    }

    @Test func aGuardianThatIsNotBackInTimeIsTheFailSafe() {
        var h = Self.tree(timeout: .seconds(2))
        h.start()
        h.readyOnSpawn = false
        h.exit("guardian")
        h.exit("runner.2")
        h.advance(.seconds(2))
        #expect(h.tree.safeMode?.reason.contains("did not answer about runner.2 within 2s") == true)
        #expect(h.state("runner.2") == "stopped (safe mode)")
        // Late READY of the guardian: the question is gone, nothing is asked.
        h.clearLogs()
        h.ready("guardian")
        #expect(questions(h).isEmpty)
    }

    @Test func aGuardianHeldDownByAnOperatorIsNoGuardian() {
        var h = Self.tree()
        h.start()
        #expect(h.command(.stop("guardian")) == nil)
        h.exit("guardian", .signaled(15))
        h.clearLogs()
        h.exit("runner.2")
        #expect(questions(h).isEmpty)
        #expect(h.tree.safeMode?.reason.contains("no live guardian") == true)
        #expect(h.state("runner.2") == "stopped (safe mode)")
    }

    @Test func theGuardianItselfIsRestartedWithoutAsking() {
        var h = Self.tree()
        h.start()
        h.clearLogs()
        h.exit("guardian")
        #expect(h.spawnOrder == ["guardian"])
        #expect(questions(h).isEmpty)
    }

    @Test func guardianOrdersAreObeyedOnlyFromTheGuardian() {
        var h = Self.tree()
        h.start()
        h.send(.guardianOrder(from: h.id("cache"), .safeModeOn("I say so")))
        #expect(h.tree.safeMode == nil)
        #expect(h.records(.protocolViolation).count == 1)
        h.send(.guardianOrder(from: h.id("guardian"), .safeModeOn("exposure")))
        #expect(h.tree.safeMode?.by == "guardian")
        h.send(.guardianOrder(from: h.id("guardian"), .safeModeOff("back within limits")))
        #expect(h.tree.safeMode == nil)
        h.send(.guardianOrder(from: h.id("guardian"), .liquidate("drawdown")))
        #expect(h.tree.safeMode?.liquidating == true)
    }

    @Test func operatorSafeModeAndLiquidationAreRefusedWhenPointless() {
        var h = Self.tree()
        h.start()
        if case .failure(let e) = h.tree.setSafeMode(false, reason: "", by: "op", at: h.now) {
            #expect(e.message.contains("not in safe mode"))
        } else { Issue.record("leaving safe mode that is not on must fail") }
        if case .success(let fx) = h.tree.liquidate(reason: "op", by: "op", at: h.now) { h.apply(fx) }
        #expect(h.tree.safeMode?.liquidating == true)
        if case .failure(let e) = h.tree.setSafeMode(true, reason: "", by: "op", at: h.now) {
            #expect(e.message.contains("already in safe mode"))
        } else { Issue.record("entering safe mode twice must fail") }
    }

    @Test func aCascadeThatRestartsAGuardedChildAsksFirst() {
        let guardian = ChildSpec.worker(WorkerSpec(name: "guardian", argv: ["/bin/true"], role: .guardian))
        let db = ChildSpec.worker(WorkerSpec(name: "db", argv: ["/bin/true"]))
        let gw = ChildSpec.worker(WorkerSpec(name: "gw", argv: ["/bin/true"], guarded: true))
        var h = Harness(root: supervisor("root", [guardian, .supervisor(supervisor("data", .restForOne, [db, gw]))]))
        h.start()
        h.clearLogs()
        h.exit("db")
        #expect(h.signals.isEmpty, "nothing is terminated before the guardian agrees")
        h.send(.verdict(id: questions(h)[0].id, .allow))
        #expect(h.signals.map(\.0) == ["gw"])
        h.exitSignalled()
        #expect(h.spawnOrder == ["db", "gw"])
    }

    @Test func rootIntensityBreachIsRecordedAsSafeMode() {
        var h = Harness(root: supervisor("root", max: 0, [worker("a")]))
        h.start()
        h.exit("a")
        #expect(h.records(.safeMode).count == 1)
        if case .failed = h.finished {} else { Issue.record("the tree should fail") }
    }
}
