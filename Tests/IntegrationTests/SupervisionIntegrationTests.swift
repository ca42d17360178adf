import Foundation
import Testing

/// vigil with real processes, real signals and real sockets.
@Suite("vigil up with real workers", .serialized)
struct SupervisionIntegrationTests {
    @Test func dependentStartsOnlyAfterItsDependencyIsReady() throws {
        let v = try VigilUnderTest("""
        name: t
        children:
          - worker: db
            argv: [WORKER]
            env: {TW_READY_DELAY_MS: "400"}
          - worker: cache
            argv: [WORKER]
            depends_on: [db]
        """)
        v.waitFor("both ready", v.allReady(["db", "cache"]))
        let lines = v.events()
        let dbReady = lines.firstIndex { $0.contains(" ready ") && $0.contains(" db ") }
        let cacheSpawned = lines.firstIndex { $0.contains(" spawned ") && $0.contains(" cache ") }
        #expect(dbReady != nil && cacheSpawned != nil && dbReady! < cacheSpawned!, "\(lines.joined(separator: "\n"))")
        #expect(v.interrupt() == 0)
    }

    @Test func killNineGivesANewPidAndTheRestForOneCascade() throws {
        let v = try VigilUnderTest("""
        name: t
        children:
          - supervisor: data
            strategy: rest_for_one
            children:
              - worker: db
                argv: [WORKER]
              - worker: cache
                argv: [WORKER]
                depends_on: [db]
          - worker: other
            argv: [WORKER]
        """)
        let before = v.waitFor("tree ready", v.allReady(["db", "cache", "other"]))
        let db = before["db"]!.pid!, cache = before["cache"]!.pid!, other = before["other"]!.pid!
        kill(db, SIGKILL)
        let after = v.waitFor("db and cache replaced") { s in
            s["db"]?.state == "ready" && s["cache"]?.state == "ready" && s["db"]?.pid != db && s["cache"]?.pid != cache
        }
        #expect(after["other"]?.pid == other)
        #expect(after["db"]?.restarts == 1)
        #expect(after["db"]?.lastExit == "signal SIGKILL")
        #expect(after["cache"]?.lastExit == "signal SIGTERM")
        #expect(!processAlive(db) && !processAlive(cache))
        #expect(v.interrupt() == 0)
    }

    @Test func oneForOneRestartsOnlyTheKilledWorker() throws {
        let v = try VigilUnderTest("""
        name: t
        children:
          - worker: a
            argv: [WORKER]
          - worker: b
            argv: [WORKER]
          - worker: pool
            argv: [WORKER]
            instances: 2
        """)
        let before = v.waitFor("ready", v.allReady(["a", "b", "pool.1", "pool.2"]))
        kill(before["pool.2"]!.pid!, SIGKILL)
        let after = v.waitFor("pool.2 replaced") { s in s["pool.2"]?.state == "ready" && s["pool.2"]?.pid != before["pool.2"]!.pid }
        #expect(after["a"]?.pid == before["a"]?.pid)
        #expect(after["pool.1"]?.pid == before["pool.1"]?.pid)
        #expect(v.interrupt() == 0)
    }

    @Test func workerIgnoringSIGTERMIsKilledAfterItsShutdownTimeout() throws {
        let v = try VigilUnderTest("""
        name: t
        children:
          - worker: stubborn
            argv: [WORKER]
            env: {TW_IGNORE_TERM: "1"}
            shutdown: 700ms
        """)
        let s = v.waitFor("ready", v.allReady(["stubborn"]))
        let pid = s["stubborn"]!.pid!
        let started = Date()
        #expect(v.interrupt() == 0)
        let took = Date().timeIntervalSince(started)
        #expect(took >= 0.6, "stopped after \(took)s, before its shutdown timeout")
        #expect(!processAlive(pid))
        #expect(v.events().contains { $0.contains(" kill ") && $0.contains("stubborn") })
    }

    @Test func aForkedChildOfAWorkerIsGoneAfterStop() throws {
        let v = try VigilUnderTest("""
        name: t
        children:
          - worker: forker
            argv: [WORKER]
            env: {TW_FORK: "1"}
            shutdown: 2s
        """)
        let s = v.waitFor("ready", v.allReady(["forker"]))
        let pgid = s["forker"]!.pid!
        #expect(members(ofGroup: pgid).count == 2, "the worker and its child")
        #expect(v.interrupt() == 0)
        #expect(members(ofGroup: pgid).isEmpty)
        #expect(!groupAlive(pgid))
    }

    @Test func aStoppingGroupKeepsItsShutdownTimeAfterTheLeaderExits() throws {
        let v = try VigilUnderTest("""
        name: t
        children:
          - worker: wrapper
            argv: [WORKER]
            env: {TW_GRACEFUL_CHILD: "MARKER"}
            shutdown: 5s
        """.replacingOccurrences(of: "MARKER", with: NSTemporaryDirectory() + "vigil-graceful-\(getpid())"))
        let marker = NSTemporaryDirectory() + "vigil-graceful-\(getpid())"
        defer { unlink(marker) }
        let s = v.waitFor("ready", v.allReady(["wrapper"]))
        let stopped = try v.control(["stop", "wrapper"])
        #expect(stopped.ok, "\(stopped)")
        // The leader exits at SIGTERM at once; its child needed 300 ms and got them.
        #expect(FileManager.default.fileExists(atPath: marker), "the child was killed before it finished")
        #expect(members(ofGroup: s["wrapper"]!.pid!).isEmpty)
        #expect(!v.events().contains { $0.contains(" kill ") })
        #expect(v.interrupt() == 0)
    }

    @Test func aStoppedProcessIsWokenToShutDownInsteadOfWaitingForSIGKILL() throws {
        let v = try VigilUnderTest("""
        name: t
        children:
          - worker: paused
            argv: [WORKER]
            shutdown: 10s
        """)
        let pid = v.waitFor("ready", v.allReady(["paused"]))["paused"]!.pid!
        kill(pid, SIGSTOP)
        let started = Date()
        #expect(try v.control(["stop", "paused"]).ok)
        #expect(Date().timeIntervalSince(started) < 5, "SIGCONT after SIGTERM lets it exit at once")
        #expect(!processAlive(pid))
        #expect(v.interrupt() == 0)
    }

    @Test func aKilledWorkersOwnChildIsKilledBeforeTheReplacementStarts() throws {
        let v = try VigilUnderTest("""
        name: t
        children:
          - worker: forker
            argv: [WORKER]
            env: {TW_FORK: "1"}
        """)
        let s = v.waitFor("ready", v.allReady(["forker"]))
        let pgid = s["forker"]!.pid!
        kill(pgid, SIGKILL)
        v.waitFor("replaced") { $0["forker"]?.state == "ready" && $0["forker"]?.pid != pgid }
        #expect(members(ofGroup: pgid).isEmpty)
        #expect(v.interrupt() == 0)
    }

    @Test func intensityBreachAtTheRootStopsTheTreeAndExitsThree() throws {
        let v = try VigilUnderTest("""
        name: t
        max_restarts: 2
        period: 30s
        children:
          - worker: steady
            argv: [WORKER]
          - worker: crasher
            argv: [WORKER]
            env: {TW_EXIT_AFTER_MS: "50"}
            backoff: {initial: 10ms, max: 20ms}
        """)
        #expect(v.waitForExit() == 3)
        #expect(v.log.contains("exceeded its restart intensity"))
        let lines = v.events()
        #expect(lines.contains { $0.contains("escalate") })
        #expect(lines.contains { $0.contains("tree_failed") })
    }

    @Test func nestedSupervisorBreachEscalatesToItsParent() throws {
        let v = try VigilUnderTest("""
        name: t
        max_restarts: 10
        period: 1m
        children:
          - worker: steady
            argv: [WORKER]
          - supervisor: inner
            max_restarts: 1
            period: 1m
            children:
              - worker: crasher
                argv: [WORKER]
                env: {TW_EXIT_AFTER_MS: "300"}
                backoff: {initial: 10ms, max: 20ms}
        """)
        let s = v.waitFor("inner restarted by the root") { ($0["inner"]?.restarts ?? 0) >= 1 }
        #expect(s["steady"]?.restarts == 0)
        #expect(v.events().contains { $0.contains("escalate") && $0.contains(" inner ") })
        #expect(v.interrupt() == 0)
    }

    @Test func noReadyWithinTheTimeoutIsAFailedStart() throws {
        let v = try VigilUnderTest("""
        name: t
        children:
          - worker: mute
            argv: [WORKER]
            env: {TW_NO_READY: "1"}
            ready_timeout: 300ms
            shutdown: brutal_kill
        """)
        v.waitFor("restarted after a ready timeout") { ($0["mute"]?.restarts ?? 0) >= 1 }
        #expect(v.events().contains { $0.contains("ready_timeout") })
        #expect(v.interrupt() == 0)
    }

    @Test func garbageAndFloodsAreCutOffAndRestartedAndVigilSurvives() throws {
        let v = try VigilUnderTest("""
        name: t
        max_restarts: 100
        children:
          - worker: garbage
            argv: [WORKER]
            env: {TW_GARBAGE: "1"}
          - worker: flood
            argv: [WORKER]
            env: {TW_FLOOD: "1"}
        """)
        v.waitFor("both cut off and restarted") { ($0["garbage"]?.restarts ?? 0) >= 1 && ($0["flood"]?.restarts ?? 0) >= 1 }
        let lines = v.events()
        #expect(lines.contains { $0.contains("protocol_violation") && $0.contains("malformed") })
        #expect(lines.contains { $0.contains("protocol_violation") && $0.contains("flooding") })
        #expect(v.interrupt() == 0)
    }

    @Test func workersExitByThemselvesWhenVigilIsKilled() throws {
        let v = try VigilUnderTest("""
        name: t
        children:
          - worker: a
            argv: [WORKER]
          - worker: b
            argv: [WORKER]
        """)
        let s = v.waitFor("ready", v.allReady(["a", "b"]))
        kill(v.process.processIdentifier, SIGKILL)
        v.process.waitUntilExit()
        let pids = [s["a"]!.pid!, s["b"]!.pid!]
        let deadline = Date().addingTimeInterval(5)
        while pids.contains(where: processAlive) && Date() < deadline { usleep(10_000) }
        #expect(!pids.contains(where: processAlive))
    }

    @Test func aStoppedWorkerIsCaughtByItsWatchdogAndReplaced() throws {
        let v = try VigilUnderTest("""
        name: t
        heartbeat_interval: 100ms
        children:
          - worker: frozen
            argv: [WORKER]
            watchdog: 500ms
        """)
        let s = v.waitFor("ready", v.allReady(["frozen"]))
        let pid = s["frozen"]!.pid!
        kill(pid, SIGSTOP)
        let after = v.waitFor("replaced after its watchdog") { $0["frozen"]?.state == "ready" && $0["frozen"]?.pid != pid }
        #expect(after["frozen"]?.restarts == 1)
        #expect(v.events().contains { $0.contains(" watchdog ") && $0.contains("hung") })
        #expect(!processAlive(pid))
        #expect(v.interrupt() == 0)
    }

    @Test func anUnmodifiedProgramWithExecReadinessIsSupervised() throws {
        let v = try VigilUnderTest("""
        name: t
        children:
          - worker: sleeper
            argv: [sleep, "1000"]
            readiness: exec
            shutdown: 1s
        """)
        let s = v.waitFor("ready", v.allReady(["sleeper"]))
        kill(s["sleeper"]!.pid!, SIGKILL)
        v.waitFor("replaced") { $0["sleeper"]?.state == "ready" && $0["sleeper"]?.pid != s["sleeper"]!.pid }
        #expect(v.interrupt() == 0)
    }

    @Test func aProcessThatLeftItsGroupIsKilledWhenTheTreeStops() throws {
        let v = try VigilUnderTest("""
        name: t
        children:
          - worker: escaper
            argv: [WORKER]
            env: {TW_ESCAPE: "1"}
        """)
        let pid = v.waitFor("ready", v.allReady(["escaper"]))["escaper"]!.pid!
        let deadline = Date().addingTimeInterval(5)
        var escaped: [Int32] = []
        while escaped.isEmpty && Date() < deadline {
            escaped = childrenOf(pid)
            usleep(10_000)
        }
        #expect(escaped.count == 1)
        #expect(v.interrupt() == 0)
        #expect(!escaped.contains(where: processAlive))
        #expect(v.log.contains("had left their worker's process group"))
    }

    @Test func operatorStopStartRestartAndKill() throws {
        let v = try VigilUnderTest("""
        name: t
        max_restarts: 0
        children:
          - worker: a
            argv: [WORKER]
        """)
        let s0 = v.waitFor("ready", v.allReady(["a"]))
        // stop, start and restart answer once the work is done.
        let stopped = try v.control(["stop", "a"])
        #expect(stopped.ok && stopped.body.contains("a: stopped (operator)"), "\(stopped)")
        #expect(v.status()?["a"]?.state == "stopped (operator)")
        #expect(!processAlive(s0["a"]!.pid!))
        let started = try v.control(["start", "a"])
        #expect(started.ok && started.body.contains("a: ready"), "\(started)")
        let s1 = v.status()!
        #expect(s1["a"]?.state == "ready")
        let restarted = try v.control(["restart", "a"])
        #expect(restarted.ok, "\(restarted)")
        let s2 = v.status()!
        #expect(s2["a"]?.state == "ready" && s2["a"]?.pid != s1["a"]!.pid)
        let noBlock = try v.control(["stop", "a", "--no-block"])
        #expect(noBlock.ok && noBlock.body.contains("requested"))
        v.waitFor("stopped") { $0["a"]?.state == "stopped (operator)" }
        #expect(try v.control(["start", "a"]).ok)
        #expect(s2["a"]?.restarts == 0, "operator restarts are not failures")
        let missing = try v.control(["stop", "nope"])
        #expect(!missing.ok && missing.message.contains("no child named 'nope'"))
        // A refused command is carried out (and journaled) once, not retried.
        let running = try v.control(["start", "a"])
        #expect(!running.ok && running.message.contains("is not stopped"), "\(running)")
        let journaled = v.events()
        #expect(journaled.filter { $0.contains("stop nope from uid") }.count == 1, "\(journaled)")
        #expect(journaled.filter { $0.contains(" start a from uid") }.count == 3, "two that worked, one refused: \(journaled)")
        // max_restarts 0: a kill is a crash, and the root gives up at once.
        #expect(try v.control(["kill", "a", "KILL"]).ok)
        #expect(v.waitForExit() == 3)
    }
}

@Suite("vigil check and bad input")
struct CommandLineTests {
    func run(_ args: [String], env: [String: String] = [:]) -> (Int32, String) { runVigil(args, env: env) }

    @Test func badTopologyExitsTwoWithFileLineColumnAndStartsNothing() throws {
        let v = try VigilUnderTest("""
        name: t
        children:
          - worker: a
            argv: [/nonexistent/program]
          - worker: b
            argv: [WORKER]
            depends_on: [zzz]
            shutdown: soon
        """, start: false)
        let (code, out) = run(["up", v.topologyPath], env: ["VIGIL_RUNTIME_DIR": v.runtimeDirectory, "VIGIL_STATE_DIR": v.stateDirectory])
        #expect(code == 2)
        #expect(out.contains("\(v.topologyPath):4:"), "\(out)")
        #expect(out.contains("\(v.topologyPath):7:"), "\(out)")
        #expect(out.contains("\(v.topologyPath):8:"), "\(out)")
        #expect(out.contains("nothing was started"))
        #expect(!FileManager.default.fileExists(atPath: v.controlSocket))
        let (checkCode, _) = run(["check", v.topologyPath])
        #expect(checkCode == 2)
    }

    @Test func twoTreesCannotShareAStateDirectory() throws {
        let v = try VigilUnderTest("""
        name: t
        children:
          - worker: a
            argv: [WORKER]
        """)
        v.waitFor("ready", v.allReady(["a"]))
        let (code, out) = run(["up", v.topologyPath], env: ["VIGIL_RUNTIME_DIR": v.directory + "/other-run", "VIGIL_STATE_DIR": v.stateDirectory])
        #expect(code == 1)
        #expect(out.contains("uses the state directory"), "\(out)")
        #expect(v.interrupt() == 0)
    }

    @Test func helpAndUnknownCommands() {
        let (code, out) = run(["--help"])
        #expect(code == 0 && out.contains("usage: vigil"))
        let (bad, msg) = run(["frobnicate"])
        #expect(bad == 2 && msg.contains("unknown command 'frobnicate'"))
    }

    @Test func statusWithoutVigilSaysHowToStartIt() {
        let (code, out) = run(["status"], env: ["VIGIL_RUNTIME_DIR": NSTemporaryDirectory() + "vigil-none-\(getpid())"])
        #expect(code == 1)
        #expect(out.contains("not running"))
    }
}
