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
}
