import Testing
@testable import VigilCore

/// Reloading the topology, as pure state-machine tests: only what changed is touched.
@Suite("Reload")
struct ReloadTests {
    func w(_ name: String, env: [String: String] = [:], deps: [String] = []) -> ChildSpec {
        .worker(WorkerSpec(name: name, argv: ["/bin/true"], env: env, dependsOn: deps.map { Dependency($0) }))
    }

    func topology(_ children: [ChildSpec]) -> Topology {
        Topology(root: supervisor("root", max: 5, children))
    }

    func reloaded(_ h: inout Harness, _ t: Topology) -> SupervisionTree.ReloadPlan? {
        guard case .success(let (plan, effects)) = h.tree.reload(to: t, at: h.now) else { return nil }
        h.apply(effects)
        return plan
    }

    @Test func anUnchangedTreeIsLeftAlone() {
        let t = topology([w("a"), w("b", deps: ["a"])])
        var h = Harness(t)
        h.start()
        let pids = (h.pid("a"), h.pid("b"))
        h.clearLogs()
        let plan = reloaded(&h, t)
        #expect(plan?.isEmpty == true)
        #expect(h.signals.isEmpty && h.spawnOrder.isEmpty)
        #expect((h.pid("a"), h.pid("b")) == pids)
        #expect(h.records(.command).last?.detail.contains("reload complete: 0 restarted, 0 added, 0 removed") == true)
    }

    @Test func changedRestartAddedStartRemovedStopAndTheRestKeepTheirProcesses() {
        var h = Harness(topology([w("a"), w("b", deps: ["a"]), w("c")]))
        h.start()
        let a = h.pid("a"), restartsBefore = h.tree.restarts(of: h.id("a"))
        h.clearLogs()
        let plan = reloaded(&h, topology([w("a"), w("b", env: ["X": "1"], deps: ["a"]), w("d")]))
        #expect(plan == SupervisionTree.ReloadPlan(changed: ["b"], added: ["d"], removed: ["c"]))
        // Phase one: b and c are stopped (last started first), nothing else.
        #expect(h.signals.map(\.0) == ["c", "b"])
        #expect(h.spawnOrder.isEmpty)
        h.exitSignalled()
        // Phase two: the new tree: b again (its new spec), then d, in start order.
        #expect(h.spawnOrder == ["b", "d"])
        #expect(h.tree.resolve("c").isEmpty, "c is gone from the tree")
        #expect(h.pid("a") == a && h.tree.restarts(of: h.id("a")) == restartsBefore)
        #expect(h.tree.restarts(of: h.id("b")) == 0, "a reload is not a failure")
        #expect(h.tree.incarnation(of: h.id("b")) == 2, "incarnations go on")
        #expect(h.tree.workerSpec(of: h.id("b"))?.env == ["X": "1"])
        // And the tree supervises as before.
        h.clearLogs()
        h.exit("a")
        #expect(h.spawnOrder == ["a"])
    }

    @Test func whereAWorkerWasWrittenIsNoChange() {
        var h = Harness(topology([w("a")]))
        h.start()
        h.clearLogs()
        var moved = WorkerSpec(name: "a", argv: ["/bin/true"])
        moved.location = SourceLocation(file: "t.yaml", line: 40, column: 3)
        let plan = reloaded(&h, topology([.worker(moved)]))
        #expect(plan?.isEmpty == true && h.signals.isEmpty)
    }

    @Test func aReloadWaitsForAGuardianQuestionBeforeTakingOver() {
        let guardian = ChildSpec.worker(WorkerSpec(name: "guardian", argv: ["/bin/true"], role: .guardian))
        let runner = ChildSpec.worker(WorkerSpec(name: "runner", argv: ["/bin/true"], backoff: BackoffPolicy(jitter: 0), guarded: true))
        var h = Harness(topology([guardian, runner, w("c")]))
        h.start()
        h.exit("runner")
        let q = h.log.compactMap { if case .askGuardian(_, let q) = $0 { q } else { nil } }
        #expect(q.count == 1)
        h.clearLogs()
        _ = reloaded(&h, topology([guardian, runner, w("c", env: ["Y": "2"])]))
        h.exitSignalled()
        #expect(h.spawnOrder.isEmpty, "c waits: a restart decision is half-way")
        h.send(.verdict(id: q[0].id, .allow))
        #expect(Set(h.spawnOrder) == ["runner", "c"])
    }

    @Test func aSecondReloadWhileOneIsUnderWayIsRefused() {
        var h = Harness(topology([w("a")]))
        h.start()
        _ = reloaded(&h, topology([w("a", env: ["Z": "1"])]))
        guard case .failure(let e) = h.tree.reload(to: topology([w("a")]), at: h.now) else { Issue.record("accepted"); return }
        #expect(e.message.contains("already under way"))
    }

    @Test func safeModeAndAnOperatorsStopHoldThroughAReload() {
        let stopper = WorkerSpec(name: "s", argv: ["/bin/true"], safeMode: .stop)
        var changedStopper = stopper
        changedStopper.env = ["V": "2"]
        var h = Harness(topology([.worker(stopper), w("op")]))
        h.start()
        #expect(h.command(.stop("op")) == nil)
        h.exitSignalled()
        if case .success(let fx) = h.tree.setSafeMode(true, reason: "t", by: "t", at: h.now) { h.apply(fx) }
        h.exitSignalled()
        h.clearLogs()
        _ = reloaded(&h, topology([.worker(changedStopper), w("op", env: ["W": "1"]), .worker(WorkerSpec(name: "new", argv: ["/bin/true"], safeMode: .stop))]))
        h.exitSignalled()
        #expect(h.spawnOrder.isEmpty, "nothing safe mode or an operator keeps down is started")
        #expect(h.state("s") == "stopped (safe mode)", "\(h.state("s"))")
        #expect(h.state("new") == "stopped (safe mode)", "\(h.state("new"))")
        #expect(h.state("op") == "stopped (operator)", "\(h.state("op"))")
        if case .success(let fx) = h.tree.setSafeMode(false, reason: "t", by: "t", at: h.now) { h.apply(fx) }
        #expect(Set(h.spawnOrder) == ["s", "new"])
    }

    @Test func aPoolThatGrowsOrShrinksLeavesTheOtherInstancesAlone() {
        let pool = { (n: Int) in ChildSpec.worker(WorkerSpec(name: "p", argv: ["/bin/true"], instances: n)) }
        var h = Harness(topology([pool(2)]))
        h.start()
        let p1 = h.pid("p.1"), p2 = h.pid("p.2")
        h.clearLogs()
        #expect(reloaded(&h, topology([pool(3)])) == SupervisionTree.ReloadPlan(changed: [], added: ["p.3"], removed: []))
        #expect(h.spawnOrder == ["p.3"] && h.pid("p.1") == p1 && h.pid("p.2") == p2)
        h.clearLogs()
        #expect(reloaded(&h, topology([pool(2)])) == SupervisionTree.ReloadPlan(changed: [], added: [], removed: ["p.3"]))
        h.exitSignalled()
        #expect(h.pid("p.1") == p1 && h.pid("p.2") == p2 && h.tree.resolve("p.3").isEmpty)
    }
}
