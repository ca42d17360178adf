import Testing
@testable import VigilCore

/// Re-adoption after vigil itself restarted, as pure state-machine tests: adopted children
/// keep their process and incarnation, the rest start, and a death nobody saw gets its
/// supervisor's strategy without counting against intensity.
@Suite("Adoption")
struct AdoptionTests {
    typealias Candidate = SupervisionTree.AdoptionCandidate

    /// Starts `h` taking back `adopted` (name -> candidate); the adopted pids become the
    /// harness's live fake processes.
    func start(_ h: inout Harness, adopting adopted: [String: Candidate], ready: Bool = true) {
        h.readyOnSpawn = ready
        var byID: [NodeID: Candidate] = [:]
        for (name, c) in adopted {
            byID[h.id(name)] = c
            h.processes[c.pid] = (h.id(name), c.incarnation)
        }
        h.apply(h.tree.start(adopting: byID, at: h.now))
    }

    @Test func adoptedChildrenKeepTheirPidAndIncarnationAndTheOthersStart() {
        var h = Harness(root: supervisor("root", [worker("a"), worker("b", dependsOn: ["a"]), worker("c")]))
        h.tree.continueIncarnations(from: ["a": 3, "b": 5, "c": 2])
        start(&h, adopting: ["a": Candidate(incarnation: 3, pid: 4001, wasReady: true),
                             "b": Candidate(incarnation: 5, pid: 4002, wasReady: true)])
        #expect(h.spawnOrder == ["c"], "only the child that was not running is spawned")
        #expect(h.pid("a") == 4001 && h.tree.incarnation(of: h.id("a")) == 3)
        #expect(h.pid("b") == 4002 && h.tree.incarnation(of: h.id("b")) == 5)
        #expect(h.tree.incarnation(of: h.id("c")) == 3, "a spawned child continues its numbering")
        #expect(h.state("a") == "ready" && h.state("b") == "ready")
        #expect(h.records(.adopted).map(\.node).sorted() == ["a", "b"])
        #expect(h.records(.restart).isEmpty)
        #expect(h.finished == nil && h.tree.isReady(h.tree.root))
        #expect(h.tree.unclaimedAdoptions.isEmpty)
    }

    @Test func anAdoptedChildsUptimeCountsFromItsOwnSpawn() {
        var h = Harness(root: supervisor("root", [worker("a")]))
        start(&h, adopting: ["a": Candidate(incarnation: 1, pid: 4001, wasReady: true, startedAgo: .seconds(60), readyAgo: .seconds(59))])
        let a = h.tree.status()[h.id("a").index]
        #expect(a.startedAt == h.now - .seconds(60) && a.readyAt == h.now - .seconds(59))
    }

    @Test func anAdoptedChildThatDiesIsRestartedNormally() {
        var h = Harness(root: supervisor("root", [worker("a"), worker("b")]))
        h.tree.continueIncarnations(from: ["a": 1, "b": 1])
        start(&h, adopting: ["a": Candidate(incarnation: 1, pid: 4001, wasReady: true),
                             "b": Candidate(incarnation: 1, pid: 4002, wasReady: true)])
        h.clearLogs()
        h.exit("a", .unknown)
        #expect(h.spawnOrder == ["a"])
        #expect(h.tree.incarnation(of: h.id("a")) == 2)
        #expect(h.pid("b") == 4002, "one_for_one: the sibling keeps its process")
        #expect(h.records(.exited).first?.detail.hasPrefix("exit status unknown") == true)
    }

    @Test func anAdoptedChildNotYetReadyGetsAFullReadyTimeout() {
        var h = Harness(root: supervisor("root", [worker("a", readyTimeout: .seconds(5)), worker("b", dependsOn: ["a"])]))
        start(&h, adopting: ["a": Candidate(incarnation: 1, pid: 4001, wasReady: false)], ready: false)
        #expect(h.state("a") == "starting")
        #expect(h.spawnOrder.isEmpty, "b waits for a's READY, as at any start")
        h.ready("a")
        #expect(h.spawnOrder == ["b"])
        var late = Harness(root: supervisor("root", [worker("a", readyTimeout: .seconds(5))]))
        start(&late, adopting: ["a": Candidate(incarnation: 1, pid: 4001, wasReady: false)], ready: false)
        late.advance(.seconds(4))
        #expect(late.records(.readyTimeout).isEmpty)
        late.advance(.seconds(2))
        #expect(late.records(.readyTimeout).count == 1)
        #expect(late.signals.map(\.1) == [SignalName.term])
    }

    @Test func anAdoptedChildWhoseDependencyDiedIsAdoptedWhileTheDependencyStarts() {
        var h = Harness(root: supervisor("root", [worker("a"), worker("b", dependsOn: ["a"])]))
        start(&h, adopting: ["b": Candidate(incarnation: 1, pid: 4002, wasReady: true)], ready: false)
        #expect(h.pid("b") == 4002, "depends_on gates starts; b is not starting, it runs")
        #expect(h.spawnOrder == ["a"])
    }

    @Test func restForOneStopsTheChildrenAfterOneThatDiedUnseen() {
        let tree = SupervisionTree(topology: Topology(root: supervisor("root", [
            .supervisor(supervisor("data", .restForOne, [worker("db"), worker("cache"), worker("index")])),
            worker("gateway"),
        ])))
        let id = { (n: String) in tree.resolve(n)[0] }
        let c = Candidate(incarnation: 1, pid: 1, wasReady: true)
        let plan = tree.planAdoption(alive: [id("cache"): c, id("index"): c, id("gateway"): c], died: [id("db")])
        #expect(Set(plan.stop.keys) == [id("cache"), id("index")])
        #expect(plan.stop[id("cache")]?.contains("rest_for_one supervisor data: db died while no vigil was running") == true)
        #expect(Set(plan.adopt.keys) == [id("gateway")])
        let middle = tree.planAdoption(alive: [id("db"): c, id("index"): c], died: [id("cache")])
        #expect(Set(middle.adopt.keys) == [id("db")], "children before the dead one are kept")
        #expect(Set(middle.stop.keys) == [id("index")])
    }

    @Test func oneForAllStopsEverySiblingIncludingNestedOnes() {
        let tree = SupervisionTree(topology: Topology(root: supervisor("root", [
            .supervisor(supervisor("pair", .oneForAll, [worker("x"), .supervisor(supervisor("inner", [worker("y")])), worker("z")])),
            worker("other"),
        ])))
        let id = { (n: String) in tree.resolve(n)[0] }
        let c = Candidate(incarnation: 1, pid: 1, wasReady: true)
        let plan = tree.planAdoption(alive: [id("x"): c, id("y"): c, id("other"): c], died: [id("z")])
        #expect(Set(plan.stop.keys) == [id("x"), id("y")])
        #expect(Set(plan.adopt.keys) == [id("other")])
    }

    @Test func oneForOneAdoptsEveryOtherSurvivor() {
        let tree = SupervisionTree(topology: Topology(root: supervisor("root", [worker("a"), worker("b"), worker("c")])))
        let id = { (n: String) in tree.resolve(n)[0] }
        let c = Candidate(incarnation: 1, pid: 1, wasReady: true)
        let plan = tree.planAdoption(alive: [id("a"): c, id("c"): c], died: [id("b")])
        #expect(plan.stop.isEmpty && Set(plan.adopt.keys) == [id("a"), id("c")])
    }

    @Test func theRestartsThePreviousVigilDecidedStillCountAgainstIntensity() {
        // max 2 in 10 s; the previous vigil restarted a twice in the last 3 s.
        var h = Harness(root: supervisor("root", max: 2, period: .seconds(10), [worker("a"), worker("b")]))
        h.readyOnSpawn = true
        h.apply(h.tree.start(adopting: [h.id("a"): Candidate(incarnation: 3, pid: 4001, wasReady: true),
                                        h.id("b"): Candidate(incarnation: 1, pid: 4002, wasReady: true)],
                             restartHistory: [h.id("a"): [.seconds(3), .seconds(1), .seconds(30)]], at: h.now))
        h.processes[4001] = (h.id("a"), 3)
        h.processes[4002] = (h.id("b"), 1)
        h.exit("b")
        #expect(h.records(.escalate).count == 1, "the third restart within 10 s exceeds max_restarts 2")
        // Without the history the same crash is within intensity.
        var fresh = Harness(root: supervisor("root", max: 2, period: .seconds(10), [worker("a"), worker("b")]))
        fresh.readyOnSpawn = true
        fresh.apply(fresh.tree.start(adopting: [fresh.id("b"): Candidate(incarnation: 1, pid: 4002, wasReady: true)], at: fresh.now))
        fresh.processes[4002] = (fresh.id("b"), 1)
        fresh.exit("b")
        #expect(fresh.records(.escalate).isEmpty)
    }

    @Test func unseenDeathsDoNotCountAgainstIntensity() {
        // max 1 restart: three deaths while vigil was away must not fail the tree.
        var h = Harness(root: supervisor("root", max: 1, period: .seconds(10), [worker("a"), worker("b"), worker("c"), worker("d")]))
        start(&h, adopting: ["d": Candidate(incarnation: 1, pid: 4004, wasReady: true)])
        #expect(h.spawnOrder == ["a", "b", "c"])
        #expect(h.finished == nil && h.records(.escalate).isEmpty)
        h.exit("a")
        #expect(h.finished == nil, "the first real crash is within intensity")
    }

    @Test func aChildSafeModeKeepsDownIsStoppedNotAdopted() {
        let spec = WorkerSpec(name: "runner", argv: ["/bin/true"], guarded: true, safeMode: .stop)
        var h = Harness(root: supervisor("root", [.worker(WorkerSpec(name: "gw", argv: ["/bin/true"])), .worker(spec)]))
        h.apply(h.tree.resumeSafeMode(SafeModeState(reason: "exposure", by: "risk-guardian", since: h.now, liquidating: false), at: h.now))
        let c = Candidate(incarnation: 1, pid: 4002, wasReady: true)
        let plan = h.tree.planAdoption(alive: [h.id("runner"): c, h.id("gw"): c], died: [])
        #expect(plan.stop[h.id("runner")]?.contains("safe mode") == true)
        #expect(Set(plan.adopt.keys) == [h.id("gw")])
        // Handed one anyway, the tree leaves it unclaimed for the shell to stop.
        start(&h, adopting: ["runner": c])
        #expect(h.tree.unclaimedAdoptions.keys.map { h.tree.name(of: $0) } == ["runner"])
        #expect(h.pid("runner") == nil)
    }

    /// guardian, a guarded gateway, an unguarded cache: the gateway died while no vigil ran.
    func guardedTree() -> (Harness, [NodeID: String]) {
        let guardian = ChildSpec.worker(WorkerSpec(name: "guardian", argv: ["/bin/true"], role: .guardian))
        let gateway = ChildSpec.worker(WorkerSpec(name: "gw", argv: ["/bin/true"], role: .gateway, guarded: true))
        let cache = ChildSpec.worker(WorkerSpec(name: "cache", argv: ["/bin/true"]))
        let h = Harness(root: supervisor("root", max: 100, [guardian, gateway, cache]))
        return (h, [h.id("gw"): "it ended while no vigil was running", h.id("cache"): "it ended while no vigil was running"])
    }

    @Test func aGuardedChildThatDiedUnseenIsRestartedOnlyWhenTheGuardianAllows() {
        let (base, restarting) = guardedTree()
        var h = base
        h.readyOnSpawn = true
        h.apply(h.tree.start(adopting: [h.id("guardian"): Candidate(incarnation: 1, pid: 4000, wasReady: true)],
                             restarting: restarting, at: h.now))
        #expect(h.spawnOrder == ["cache"], "unguarded: started; guarded: asked first")
        #expect(h.state("gw") == "awaiting guardian")
        let q = h.log.compactMap { if case .askGuardian(_, let q) = $0 { q } else { nil } }
        #expect(q.count == 1 && q.first?.child == "gw" && q.first?.reason == "it ended while no vigil was running")
        h.send(.verdict(id: q[0].id, .allow))
        #expect(h.spawnOrder == ["cache", "gw"])
        #expect(h.tree.restarts(of: h.id("gw")) == 0, "not counted as a crash of this vigil's watch")
    }

    @Test func inSafeModeAGuardedChildThatDiedUnseenStaysDown() {
        let (base, restarting) = guardedTree()
        var h = base
        h.readyOnSpawn = true
        h.apply(h.tree.resumeSafeMode(SafeModeState(reason: "exposure", by: "risk-guardian", since: h.now, liquidating: false), at: h.now))
        h.apply(h.tree.start(adopting: [:], restarting: restarting, at: h.now))
        #expect(!h.spawnOrder.contains("gw"))
        #expect(h.state("gw") == "stopped (safe mode)")
        #expect(h.records(.verdict).contains { $0.detail.contains("safe mode: not restarted") })
        #expect(h.spawnOrder.contains("guardian") && h.spawnOrder.contains("cache"))
    }
}
