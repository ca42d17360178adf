import Testing
@testable import VigilCore

@Suite("Stopping the tree")
struct ShutdownTests {
    @Test func stopsInReverseStartOrderOneAtATime() {
        var h = Harness(root: supervisor("root", [
            .supervisor(supervisor("data", .restForOne, [worker("db"), worker("cache")])),
            worker("guardian"),
            .supervisor(supervisor("markets", [worker("gw"), worker("runner", instances: 2)])),
        ]))
        h.start()
        h.clearLogs()
        h.send(.shutdown)
        #expect(Set(h.signals.map(\.0)) == ["runner.1", "runner.2"])
        var order: [[String]] = []
        while !h.signals.isEmpty {
            order.append(h.signals.map(\.0))
            let batch = h.signals
            h.signals.removeAll()
            for (name, sig) in batch { h.exit(name, .signaled(sig)) }
        }
        #expect(order.map { Set($0) } == [["runner.1", "runner.2"], ["gw"], ["guardian"], ["cache"], ["db"]])
        #expect(h.finished == .stopped)
        #expect(h.spawnOrder.isEmpty)
    }

    @Test func shutdownTimeoutEscalatesToSIGKILL() {
        var h = Harness(root: supervisor("root", [worker("stubborn", shutdown: .timeout(.seconds(2)))]))
        h.start()
        h.clearLogs()
        h.send(.shutdown)
        #expect(h.signals.map(\.1) == [SignalName.term])
        h.advance(.milliseconds(1999))
        #expect(h.signals.count == 1)
        h.advance(.milliseconds(1))
        #expect(h.signals.map(\.1) == [SignalName.term, SignalName.kill])
        #expect(h.records(.kill).count == 1)
        h.exit("stubborn", .signaled(9))
        #expect(h.finished == .stopped)
    }

    @Test func brutalKillSendsSIGKILLAtOnce() {
        var h = Harness(root: supervisor("root", [worker("b", shutdown: .brutalKill)]))
        h.start()
        h.clearLogs()
        h.send(.shutdown)
        #expect(h.signals.map(\.1) == [SignalName.kill])
    }

    @Test func nothingRestartsWhileStopping() {
        var h = Harness(root: supervisor("root", [worker("a"), worker("b")]))
        h.start()
        h.clearLogs()
        h.send(.shutdown)
        h.exit("a", .exited(1))   // dies on its own while b is being stopped
        h.exitSignalled()
        #expect(h.spawnOrder.isEmpty)
        #expect(h.finished == .stopped)
    }

    @Test func forceShutdownKillsEverythingAlive() {
        var h = Harness(root: supervisor("root", [worker("a"), worker("b")]))
        h.start()
        h.clearLogs()
        h.send(.shutdown)
        h.send(.forceShutdown)
        #expect(Set(h.signals.filter { $0.1 == SignalName.kill }.map(\.0)) == ["a", "b"])
    }

    @Test func shutdownDuringACascadeStillStopsEverything() {
        var h = Harness(root: supervisor("root", .oneForAll, [worker("a"), worker("b"), worker("c")]))
        h.start()
        h.exit("a")          // cascade: terminating c
        h.send(.shutdown)
        h.exitSignalled()
        #expect(h.finished == .stopped)
        #expect(h.tree.status().allSatisfy { $0.pid == nil })
    }
}

@Suite("Operator commands")
struct CommandTests {
    @Test func stopHoldsAChildDownAndStartBringsItBack() {
        var h = Harness(root: supervisor("root", .oneForAll, [worker("a"), worker("b")]))
        h.start()
        #expect(h.command(.stop("b")) == nil)
        h.exitSignalled()
        #expect(h.state("b") == "stopped (operator)")
        h.clearLogs()
        h.exit("a")           // a cascade does not bring back a held child
        h.exitSignalled()
        #expect(h.spawnOrder == ["a"])
        #expect(h.command(.start("b")) == nil)
        #expect(h.spawnOrder == ["a", "b"])
        #expect(h.tree.restarts(of: h.id("b")) == 0)
    }

    @Test func restartDoesNotCountAgainstIntensity() {
        var h = Harness(root: supervisor("root", max: 0, [worker("a")]))
        h.start()
        for _ in 0..<3 {
            #expect(h.command(.restart("a")) == nil)
            h.exitSignalled()
        }
        #expect(h.spawnOrder.count == 4)
        #expect(h.finished == nil)
    }

    @Test func killSendsTheSignalAndTheDeathIsACrash() {
        var h = Harness(root: supervisor("root", [worker("a")]))
        h.start()
        #expect(h.command(.kill("a", signal: 9)) == nil)
        #expect(h.signals.map(\.1) == [9])
        h.exit("a", .signaled(9))
        #expect(h.tree.restarts(of: h.id("a")) == 1)
    }

    @Test func commandsOnAPoolApplyToEveryInstance() {
        var h = Harness(root: supervisor("root", [worker("p", instances: 3)]))
        h.start()
        #expect(h.command(.stop("p")) == nil)
        #expect(h.signals.count == 3)
    }

    @Test func stoppingASupervisorStopsItsSubtree() {
        var h = Harness(root: supervisor("root", [worker("x"), .supervisor(supervisor("s", [worker("a"), worker("b")]))]))
        h.start()
        h.clearLogs()
        #expect(h.command(.stop("s")) == nil)
        #expect(h.signals.map(\.0) == ["b"])
        h.exitSignalled()
        #expect(h.state("s") == "stopped (operator)")
        #expect(h.command(.start("s")) == nil)
        #expect(h.spawnOrder == ["a", "b"])
    }

    @Test func unknownNamesAndBadStatesAreRefusedClearly() {
        var h = Harness(root: supervisor("root", [worker("a")]))
        h.start()
        #expect(h.command(.stop("root"))?.message.contains("is the root supervisor") == true)
        #expect(h.command(.restart("root"))?.message.contains("Ctrl-C or SIGTERM") == true)
        #expect(h.finished == nil)
        #expect(h.command(.stop("nope"))?.message.contains("no child named 'nope'") == true)
        #expect(h.command(.start("a"))?.message.contains("is not stopped") == true)
    }

    /// Found by the deterministic simulation (vigil-sim): `vigil restart S` while S was
    /// escalating used to mark S idle with its plan still running, so S started again at
    /// once and set its still-running children idle: their exits were then ignored (the
    /// core kept a dead pid) or they were spawned a second time beside themselves.
    @Test func aSupervisorStoppingItsChildrenRefusesStopAndRestart() {
        var h = Harness(root: supervisor("root", max: 100, [
            .supervisor(supervisor("data", max: 0, [worker("a"), worker("b")])),
        ]))
        h.start()
        h.exit("b", .signaled(9))   // data exceeds its intensity and terminates a first
        #expect(h.state("a") == "stopping")
        #expect(h.command(.restart("data"))?.message.contains("is stopping its children") == true)
        #expect(h.command(.stop("data"))?.message.contains("is stopping its children") == true)
        h.exitSignalled()           // a is gone: data fails to root, which restarts it
        #expect(h.pids(of: "a").count == 1)
        #expect(h.pid("a") == h.pids(of: "a").first)
        #expect(h.records(.escalate).map(\.node) == ["data"])
    }
}
