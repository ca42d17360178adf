import Testing
@testable import VigilCore

/// Planned overlapping handoffs as pure state-machine tests: the incoming incarnation starts
/// beside the running one, takes over when READY, and the outgoing one is stopped; every
/// way it can go wrong leaves exactly one child and counts nothing.
@Suite("Overlapping handoff")
struct HandoffTests {
    static func keeper(_ name: String = "keeper", readyTimeout: Duration = .seconds(2), instances: Int = 1,
                       readiness: Readiness = .channel, guarded: Bool = false, safeMode: SafeModeAction = .keep,
                       dependsOn: [String] = []) -> ChildSpec {
        .worker(WorkerSpec(name: name, argv: ["/bin/true"], shutdown: .timeout(.seconds(5)),
                           dependsOn: dependsOn.map { Dependency($0) }, readyTimeout: readyTimeout,
                           backoff: BackoffPolicy(jitter: 0), instances: instances, readiness: readiness,
                           guarded: guarded, safeMode: safeMode, handoff: .overlap))
    }

    /// `keeper` (overlap) with a later sibling under rest_for_one, a dependent at the root and
    /// a stop_first gateway. Intensity 0: any counted restart would fail the tree.
    static func tree(max: Int = 0) -> Harness {
        let data = supervisor("data", .restForOne, max: max, [keeper(), worker("after")])
        let gw = ChildSpec.worker(WorkerSpec(name: "gw", argv: ["/bin/true"], role: .gateway))
        var h = Harness(root: supervisor("root", max: max, [.supervisor(data), worker("user", dependsOn: ["keeper"]), gw]))
        h.start()
        h.readyOnSpawn = false
        h.clearLogs()
        return h
    }

    func handoffs(_ h: Harness) -> [String] { h.records(.handoff).map(\.detail) }

    func phase(_ h: Harness, _ name: String = "keeper") -> SupervisionTree.HandoffPhase? {
        h.tree.handoffPhase(of: h.id(name))
    }

    /// Starts a handoff of `keeper` and returns (outgoing pid, incoming pid).
    func beginHandoff(_ h: inout Harness, _ name: String = "keeper") -> (Int32, Int32) {
        let old = h.pid(name)!
        #expect(h.command(.handoff(name)) == nil)
        let pids = h.pids(of: name)
        #expect(pids.count == 2 && pids[0] == old, "\(pids)")
        return (old, pids.last!)
    }

    // MARK: Success

    @Test func theIncomingStartsBesideTheRunningOneAndTakesOverWhenReady() {
        var h = Self.tree()
        let (old, new) = beginHandoff(&h)
        #expect(h.spawnOrder == ["keeper"])
        #expect(h.signals.isEmpty, "the outgoing keeps running until the incoming is READY")
        #expect(h.pid("keeper") == old && h.tree.incarnation(of: h.id("keeper")) == 1)
        #expect(h.state("keeper") == "handing off" && h.tree.isReady(h.id("keeper")))
        #expect(phase(h) == .starting(incoming: 2))

        h.ready(pid: new)
        #expect(h.signalledPIDs.map(\.pid) == [old] && h.signals.map(\.1) == [SignalName.term])
        #expect(h.pid("keeper") == new && h.tree.incarnation(of: h.id("keeper")) == 2)
        #expect(phase(h) == .stoppingOutgoing(outgoing: 1) && h.state("keeper") == "handing off")

        h.exitSignalled()
        #expect(phase(h) == nil && h.state("keeper") == "ready" && h.pids(of: "keeper") == [new])
        #expect(h.tree.restarts(of: h.id("keeper")) == 0 && h.finished == nil, "not a failure: intensity 0 holds")
        #expect(h.spawnOrder == ["keeper"], "neither the rest_for_one sibling nor the dependent is restarted")
        #expect(h.tree.status()[h.id("keeper").index].lastReason == "handoff by operator (overlap)")

        // Journal: every step, and each exit under its own incarnation.
        let steps = handoffs(h)
        #expect(steps.count == 3)
        #expect(steps[0].hasPrefix("starting incarnation 2 beside incarnation 1 (pid \(old))"))
        #expect(steps[1].hasPrefix("incarnation 2 is READY and takes over; stopping outgoing incarnation 1 (pid \(old))"))
        #expect(steps[2].hasPrefix("complete: outgoing incarnation 1 is gone; incarnation 2 (pid \(new)) is the child"))
        let records = h.log.compactMap { if case .record(let r) = $0, r.node == "keeper" { r } else { nil } }
        let ready = records.firstIndex { $0.kind == .ready && $0.incarnation == 2 }!
        let exited = records.firstIndex { $0.kind == .exited }!
        #expect(ready < exited, "the incoming is READY before the outgoing exits")
        #expect(records[exited].incarnation == 1 && records[exited].pid == old)
        #expect(records.first { $0.kind == .spawned }?.incarnation == 2)
        let terminate = records.first { $0.kind == .terminate }
        #expect(terminate?.pid == old && terminate?.incarnation == 1)
    }

    @Test func anOutgoingThatIgnoresSIGTERMIsKilledAfterItsShutdownAndOnlyIt() {
        var h = Self.tree()
        let (old, new) = beginHandoff(&h)
        h.ready(pid: new)
        h.advance(.seconds(5))
        #expect(h.signalledPIDs.map(\.pid) == [old, old] && h.signals.map(\.1) == [SignalName.term, SignalName.kill])
        #expect(h.records(.kill).first?.incarnation == 1)
        h.exit(pid: old)
        #expect(phase(h) == nil && h.pid("keeper") == new)
    }

    @Test func aReadinessExecWorkerTakesOverAsSoonAsItRuns() {
        var h = Harness(root: supervisor("root", max: 0, [Self.keeper(readiness: .exec)]))
        h.start()
        h.clearLogs()
        let (old, new) = beginHandoff(&h)
        #expect(h.pid("keeper") == new && h.signalledPIDs.map(\.pid) == [old])
        h.exitSignalled()
        #expect(phase(h) == nil && h.state("keeper") == "ready")
    }

    @Test func eachInstanceOfAPoolHandsOffOnItsOwn() {
        var h = Harness(root: supervisor("root", max: 0, [Self.keeper("p", instances: 3)]))
        h.start()
        h.readyOnSpawn = false
        h.clearLogs()
        #expect(h.command(.handoff("p")) == nil)
        #expect(h.spawnOrder == ["p.1", "p.2", "p.3"] && h.signals.isEmpty)
        for i in 1...3 { h.ready(pid: h.pids(of: "p.\(i)").last!) }
        h.exitSignalled()
        for i in 1...3 {
            #expect(h.tree.incarnation(of: h.id("p.\(i)")) == 2 && h.state("p.\(i)") == "ready")
        }
        #expect(h.finished == nil)
    }

    // MARK: The incoming fails: the outgoing stays, nothing is counted

    /// Expects the handoff to have failed with `why` and keeper to run on as incarnation 1.
    func expectFailed(_ h: Harness, old: Int32, _ why: String, sourceLocation: Testing.SourceLocation = #_sourceLocation) {
        #expect(phase(h) == nil, sourceLocation: sourceLocation)
        #expect(h.pid("keeper") == old && h.pids(of: "keeper") == [old], sourceLocation: sourceLocation)
        #expect(h.tree.incarnation(of: h.id("keeper")) == 1 && h.state("keeper") == "ready", sourceLocation: sourceLocation)
        #expect(h.tree.restarts(of: h.id("keeper")) == 0 && h.finished == nil, sourceLocation: sourceLocation)
        #expect(!h.signalledPIDs.contains { $0.pid == old }, "the outgoing is never signalled", sourceLocation: sourceLocation)
        let last = handoffs(h).last ?? ""
        #expect(last.hasPrefix("failed: incoming incarnation 2 \(why); incarnation 1 (pid \(old)) stays the child, and this is not counted as its failure"),
                "\(last)", sourceLocation: sourceLocation)
        #expect(h.tree.status()[h.id("keeper").index].lastReason?.hasPrefix("handoff to incarnation 2 failed") == true,
                sourceLocation: sourceLocation)
    }

    @Test func anIncomingThatExitsBeforeReadyLeavesTheOutgoingRunning() {
        var h = Self.tree()
        let (old, new) = beginHandoff(&h)
        h.exit(pid: new, .exited(1))
        expectFailed(h, old: old, "exited (exit 1) before READY")
        #expect(h.records(.exited).last?.incarnation == 2)
    }

    @Test func anIncomingWithoutReadyInTimeIsStoppedAndTheOutgoingStays() {
        var h = Self.tree()
        let (old, new) = beginHandoff(&h)
        h.advance(.milliseconds(1999))
        #expect(h.signals.isEmpty)
        h.advance(.milliseconds(1))
        #expect(h.signalledPIDs.map(\.pid) == [new] && h.signals.map(\.1) == [SignalName.term])
        #expect(h.records(.readyTimeout).last?.incarnation == 2)
        #expect(phase(h) == .abandoning(incoming: 2))
        // It ignores SIGTERM: SIGKILL after its shutdown, and a late READY changes nothing.
        h.ready(pid: new)
        #expect(h.pid("keeper") == old)
        h.advance(.seconds(5))
        #expect(h.signalledPIDs.map(\.pid) == [new, new] && h.signals.last?.1 == SignalName.kill)
        h.exit(pid: new, .signaled(9))
        expectFailed(h, old: old, "sent no READY within 2s")
    }

    @Test func anIncomingThatCannotBeSpawnedLeavesTheOutgoingRunning() {
        var h = Self.tree()
        let old = h.pid("keeper")!
        h.failSpawns = ["keeper"]
        #expect(h.command(.handoff("keeper")) == nil)
        #expect(h.records(.spawnFailed).last?.incarnation == 2)
        expectFailed(h, old: old, "could not be started (spawn failed: \(ErrnoName.describe(2)))")
    }

    @Test func anIncomingThatBreaksTheProtocolIsKilledAndTheOutgoingStays() {
        var h = Self.tree()
        let (old, new) = beginHandoff(&h)
        h.send(.protocolViolation(h.id("keeper"), incarnation: 2, "garbage"))
        #expect(h.signalledPIDs.map(\.pid) == [new] && h.signals.map(\.1) == [SignalName.kill])
        #expect(h.records(.protocolViolation).last?.incarnation == 2)
        h.exitSignalled()
        expectFailed(h, old: old, "protocol violation: garbage")
    }

    @Test func aFailedHandoffsIncarnationNumberIsNeverReused() {
        var h = Self.tree(max: 5)
        let (_, new) = beginHandoff(&h)
        h.exit(pid: new, .exited(1))
        h.readyOnSpawn = true
        h.exit("keeper")   // an ordinary crash afterwards (rest_for_one: 'after' too)
        h.exitSignalled()
        #expect(h.tree.incarnation(of: h.id("keeper")) == 3)
        #expect(h.tree.restarts(of: h.id("keeper")) == 1)
        // And a later handoff succeeds.
        h.readyOnSpawn = false
        let (_, next) = beginHandoff(&h)
        h.ready(pid: next)
        h.exitSignalled()
        #expect(h.tree.incarnation(of: h.id("keeper")) == 4 && phase(h) == nil)
    }

    // MARK: The outgoing dies during the overlap

    @Test func anOutgoingThatDiesDuringTheOverlapLeavesTheIncomingAsTheChild() {
        var h = Self.tree()
        let (old, new) = beginHandoff(&h)
        h.exit(pid: old, .signaled(9))
        #expect(phase(h) == nil && h.pid("keeper") == new && h.tree.incarnation(of: h.id("keeper")) == 2)
        #expect(h.state("keeper") == "starting" && !h.tree.isReady(h.id("keeper")))
        #expect(h.records(.exited).last?.pid == old && h.records(.exited).last?.incarnation == 1)
        #expect(handoffs(h).last?.hasPrefix("outgoing incarnation 1 died during the overlap (signal SIGKILL); incoming incarnation 2 becomes the child") == true)
        #expect(h.spawnOrder == ["keeper"] && h.signals.isEmpty, "nothing is restarted, nothing cascades")
        #expect(h.tree.restarts(of: h.id("keeper")) == 0 && h.finished == nil)
        h.ready(pid: new)
        #expect(h.state("keeper") == "ready" && h.signals.isEmpty)
    }

    @Test func ifTheIncomingThenFailsToStartThatIsAnOrdinaryFailedStart() {
        var h = Self.tree(max: 5)
        let (old, new) = beginHandoff(&h)
        h.exit(pid: old, .signaled(9))
        h.advance(.seconds(2))   // no READY within 2s: now the child's own ready timeout
        #expect(h.signalledPIDs.map(\.pid) == [new])
        h.exitSignalled()
        #expect(h.tree.restarts(of: h.id("keeper")) == 1)
        #expect(h.spawnOrder == ["keeper", "keeper", "after"], "a failure of keeper: rest_for_one restarts it and 'after'")
    }

    @Test func anOutgoingThatDiesWhileTheIncomingsSpawnIsInFlight() {
        var h = Self.tree()
        let id = h.id("keeper")
        let old = h.pid("keeper")!
        // The command's effects are held back: the incoming's spawn is still in flight.
        guard case .success = h.tree.handle(.handoff("keeper"), at: h.now) else { Issue.record("refused"); return }
        h.send(.exited(id, incarnation: 1, .exited(1)))
        #expect(h.state("keeper") == "spawning" && h.pid("keeper") == nil)
        h.send(.spawned(id, incarnation: 2, pid: 555))
        h.send(.ready(id, incarnation: 2))
        #expect(h.state("keeper") == "ready" && h.pid("keeper") == 555)
        #expect(h.tree.restarts(of: id) == 0 && !h.signalledPIDs.contains { $0.pid == old })
    }

    @Test func aHungOutgoingIsReplacedByTheIncomingWithoutASecondSignal() {
        let w = WorkerSpec(name: "keeper", argv: ["/bin/true"], watchdog: .seconds(3), handoff: .overlap)
        var h = Harness(root: supervisor("root", max: 0, [.worker(w)]))
        h.start()
        h.readyOnSpawn = false
        h.clearLogs()
        let (old, new) = beginHandoff(&h)
        h.advance(.seconds(3))   // the outgoing sent no heartbeat: hung, SIGABRT (SIGKILL to follow)
        #expect(h.signalledPIDs.map(\.pid) == [old] && h.signals.map(\.1) == [SignalName.abort])
        h.ready(pid: new)
        #expect(h.signalledPIDs.count == 1, "it is already being killed")
        #expect(handoffs(h).last?.hasSuffix("already being killed") == true)
        h.exitSignalled()
        #expect(phase(h) == nil && h.state("keeper") == "ready" && h.finished == nil)
        // The new incarnation has its own watchdog.
        h.advance(.seconds(3))
        #expect(h.records(.watchdog).last?.incarnation == 2)
    }

    // MARK: Terminating the node during the overlap

    @Test func vigilShuttingDownDuringTheOverlapStopsBoth() {
        var h = Self.tree()
        let (old, new) = beginHandoff(&h)
        h.send(.shutdown)
        // Reverse start order: gw, user, after, then keeper with its incoming.
        var rounds = 0
        while h.finished == nil && !h.signalledPIDs.isEmpty && rounds < 10 {
            let batch = h.signalledPIDs
            h.signalledPIDs.removeAll()
            for s in batch where h.processes[s.pid] != nil {
                if s.pid == old || s.pid == new {
                    #expect(Set(batch.map(\.pid)).isSuperset(of: [old, new]), "both are stopped together")
                    // The outgoing goes first; the tree waits for the incoming too.
                    h.exit(pid: old, .signaled(15))
                    #expect(h.finished == nil && h.state("keeper") == "stopping")
                    h.exit(pid: new, .signaled(15))
                    break
                }
                h.exit(pid: s.pid, .signaled(s.signal))
            }
            rounds += 1
        }
        #expect(h.finished == .stopped && h.processes.isEmpty)
        #expect(handoffs(h).contains { $0.hasPrefix("abandoned (data is terminating its children): stopping incoming incarnation 2") })
        #expect(h.spawnOrder == ["keeper"])
    }

    @Test func vigilShuttingDownWhileTheOutgoingIsBeingStoppedWaitsForIt() {
        var h = Harness(root: supervisor("root", max: 0, [Self.keeper()]))
        h.start()
        h.readyOnSpawn = false
        let (old, new) = beginHandoff(&h)
        h.ready(pid: new)
        h.send(.shutdown)
        #expect(h.signalledPIDs.map(\.pid) == [old, new])
        h.exit(pid: new, .signaled(15))
        #expect(h.finished == nil, "the outgoing is still there")
        h.exit(pid: old, .signaled(15))
        #expect(h.finished == .stopped)
    }

    @Test func aSecondSIGINTKillsBothProcesses() {
        var h = Self.tree()
        let (old, new) = beginHandoff(&h)
        h.send(.shutdown)
        h.send(.forceShutdown)
        let killed = Set(h.signalledPIDs.filter { $0.signal == SignalName.kill }.map(\.pid))
        #expect(killed.isSuperset(of: [old, new]))
    }

    @Test func stopDuringTheOverlapStopsBothAndReportsStoppedOnlyWhenBothAreGone() {
        var h = Self.tree()
        let (old, new) = beginHandoff(&h)
        #expect(h.command(.stop("keeper")) == nil)
        #expect(Set(h.signalledPIDs.map(\.pid)) == [old, new])
        h.exit(pid: old, .signaled(15))
        #expect(h.state("keeper") == "stopping")
        h.exit(pid: new, .signaled(15))
        #expect(h.state("keeper") == "stopped (operator)" && h.processes.values.allSatisfy { $0.id != h.id("keeper") })
        #expect(handoffs(h).last?.hasPrefix("abandoned (an operator stopped it): incoming incarnation 2 is stopped") == true)
        #expect(h.command(.start("keeper")) == nil)
        #expect(h.tree.incarnation(of: h.id("keeper")) == 3)
    }

    @Test func aCascadeDuringTheOverlapTerminatesBothAndRestartsOnceBothAreGone() {
        var h = Harness(root: supervisor("root", .oneForAll, max: 5, [Self.keeper(), worker("other")]))
        h.start()
        h.readyOnSpawn = false
        let (old, new) = beginHandoff(&h)
        h.clearLogs()
        h.exit("other")   // one_for_all: keeper (both of its processes) is terminated
        #expect(Set(h.signalledPIDs.map(\.pid)) == [old, new])
        h.exit(pid: old, .signaled(15))
        #expect(h.spawnOrder.isEmpty, "no restart while the incoming is still going away")
        h.exit(pid: new, .signaled(15))
        #expect(h.spawnOrder == ["keeper", "other"])
        #expect(h.tree.incarnation(of: h.id("keeper")) == 3 && h.pids(of: "keeper").count == 1)
    }

    @Test func safeModeThatStopsTheWorkerAbandonsItsHandoff() {
        var h = Harness(root: supervisor("root", max: 0, [Self.keeper(safeMode: .stop)]))
        h.start()
        h.readyOnSpawn = false
        let (old, new) = beginHandoff(&h)
        if case .success(let fx) = h.tree.setSafeMode(true, reason: "op", by: "op", at: h.now) { h.apply(fx) }
        #expect(Set(h.signalledPIDs.map(\.pid)) == [old, new])
        h.exitSignalled()
        #expect(h.state("keeper") == "stopped (safe mode)" && h.processes.isEmpty)
    }

    @Test func aNewIncarnationThatCrashesWhileTheOutgoingIsBeingStoppedRestartsOnceItIsGone() {
        var h = Harness(root: supervisor("root", max: 5, [Self.keeper()]))
        h.start()
        h.readyOnSpawn = false
        let (old, new) = beginHandoff(&h)
        h.ready(pid: new)
        h.clearLogs()
        h.exit(pid: new, .exited(1))   // the new child fails: a real failure of keeper
        #expect(h.tree.restarts(of: h.id("keeper")) == 1)
        #expect(h.spawnOrder.isEmpty, "a worker never has more than two processes: wait for the outgoing")
        h.exit(pid: old, .signaled(15))
        #expect(h.spawnOrder.first == "keeper" && h.pids(of: "keeper").count == 1)
    }

    // MARK: Refusals

    @Test func aSecondHandoffOrARestartDuringOneIsRefusedClearly() {
        var h = Self.tree()
        let (_, new) = beginHandoff(&h)
        let again = h.command(.handoff("keeper"))
        #expect(again?.message == "keeper is in the middle of a handoff (incarnation 2 is starting beside incarnation 1); wait for it to finish (vigil events keeper), or stop it")
        #expect(h.command(.restart("keeper"))?.message.contains("in the middle of a handoff") == true)
        h.ready(pid: new)
        #expect(h.command(.handoff("keeper"))?.message.contains("incarnation 1 is being stopped after incarnation 2 took over") == true)
        #expect(h.spawnOrder == ["keeper"], "nothing was started by the refused commands")
        h.exitSignalled()
        #expect(h.command(.handoff("keeper")) == nil)
    }

    @Test func handoffsThatCannotBeDoneAreRefusedBeforeAnythingHappens() {
        let guardian = ChildSpec.worker(WorkerSpec(name: "guardian", argv: ["/bin/true"], role: .guardian))
        var h = Harness(root: supervisor("root", max: 5, [
            guardian, Self.keeper("runner", guarded: true), Self.keeper("idle"),
            .supervisor(supervisor("sub", [worker("x")])),
        ]))
        h.start()
        #expect(h.command(.stop("idle")) == nil)
        h.exitSignalled()
        h.clearLogs()
        #expect(h.command(.handoff("idle"))?.message == "idle is stopped (operator), not running: an overlapping handoff needs a READY instance to hand off from; use vigil restart idle")
        #expect(h.command(.handoff("sub"))?.message.hasPrefix("sub is a supervisor") == true)
        #expect(h.command(.handoff("nope"))?.message.contains("no child named 'nope'") == true)
        if case .success(let fx) = h.tree.setSafeMode(true, reason: "op", by: "op", at: h.now) { h.apply(fx) }
        #expect(h.command(.handoff("runner"))?.message.contains("guarded and the tree is in safe mode") == true)
        #expect(h.spawnOrder.isEmpty && h.records(.handoff).isEmpty)
    }

    // MARK: stop_first

    @Test func aStopFirstWorkerIsStoppedThenStartedAgainAsAnOperatorRestart() {
        var h = Self.tree()
        let old = h.pid("gw")!
        #expect(h.command(.handoff("gw")) == nil)
        #expect(h.spawnOrder.isEmpty && h.signalledPIDs.map(\.pid) == [old])
        #expect(h.records(.command).last?.detail == "operator: handoff (stop first)")
        h.exitSignalled()
        #expect(h.spawnOrder == ["gw"] && h.tree.restarts(of: h.id("gw")) == 0 && h.finished == nil)
        #expect(h.records(.handoff).isEmpty && phase(h, "gw") == nil)
    }
}
