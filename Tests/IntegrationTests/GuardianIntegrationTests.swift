import Foundation
import Testing

/// The guardian's veto, safe mode and state handoff with real processes: a test worker
/// plays the guardian (`TW_VERDICT`) and the guarded children (`TW_CHECKPOINT`).
@Suite("guardian, safe mode and state handoff with real workers", .serialized)
struct GuardianIntegrationTests {
    /// A guardian answering `verdict`, a guarded child, and a worker stopped in safe mode.
    func tree(verdict: String, timeout: String = "2s", extra: String = "") throws -> VigilUnderTest {
        try VigilUnderTest("""
        name: t
        max_restarts: 100
        guardian_timeout: \(timeout)
        children:
          - worker: guardian
            argv: [WORKER]
            role: guardian
            env: {TW_VERDICT: "\(verdict)"}
          - worker: runner
            argv: [WORKER]
            guarded: true
            depends_on: [guardian]
          - worker: strategy
            argv: [WORKER]
            safe_mode: stop
        \(extra)
        """)
    }

    @Test func aDeniedRestartKeepsTheChildDownUntilAnOperatorStartsIt() throws {
        let v = try tree(verdict: "deny")
        let s0 = v.waitFor("tree ready", v.allReady(["guardian", "runner", "strategy"]))
        kill(s0["runner"]!.pid!, SIGKILL)
        v.waitFor("runner denied") { $0["runner"]?.state == "stopped (denied)" }
        let events = v.events()
        #expect(events.contains { $0.contains("guardian_asked") && $0.contains("runner") })
        #expect(events.contains { $0.contains("verdict") && $0.contains("deny (test says no)") })
        #expect(v.rawStatus()?["safe_mode"] is NSNull, "a denial is not safe mode")
        #expect(try v.control(["start", "runner"]).ok)
        let s1 = v.waitFor("runner back", v.allReady(["runner"]))
        #expect(s1["runner"]?.pid != s0["runner"]?.pid)
        #expect(v.interrupt() == 0)
    }

    @Test func anAllowedRestartHappensAndADelayIsJournaled() throws {
        let v = try tree(verdict: "delay:300")
        let s0 = v.waitFor("tree ready", v.allReady(["guardian", "runner", "strategy"]))
        kill(s0["runner"]!.pid!, SIGKILL)
        let s1 = v.waitFor("runner restarted after the delay") { $0["runner"]?.state == "ready" && $0["runner"]?.pid != s0["runner"]?.pid }
        #expect(s1["runner"]?.restarts == 1)
        #expect(v.events().contains { $0.contains("verdict") && $0.contains("delay 300ms") })
        #expect(v.interrupt() == 0)
    }

    @Test func noAnswerInTimeIsTheFailSafeAndSafeModeOffRestoresTheTree() throws {
        let v = try tree(verdict: "silent", timeout: "300ms")
        let s0 = v.waitFor("tree ready", v.allReady(["guardian", "runner", "strategy"]))
        kill(s0["runner"]!.pid!, SIGKILL)
        let s1 = v.waitFor("safe mode") { $0["runner"]?.state == "stopped (safe mode)" && $0["strategy"]?.state == "stopped (safe mode)" }
        #expect(s1["guardian"]?.pid == s0["guardian"]?.pid, "the guardian itself keeps running")
        #expect(!processAlive(s0["strategy"]!.pid!), "safe_mode: stop workers are stopped")
        let safe = v.rawStatus()?["safe_mode"] as? [String: Any]
        #expect((safe?["reason"] as? String)?.contains("did not answer about runner within 300ms") == true, "\(String(describing: safe))")
        #expect(v.events().contains { $0.contains("verdict") && $0.contains("no answer within 300ms: fail-safe") })
        // A guarded child cannot be started by hand in safe mode.
        let refused = try v.control(["start", "runner"])
        #expect(!refused.ok && refused.message.contains("safe mode"))
        let off = try v.control(["safe-mode", "off", "checked", "by", "hand"])
        #expect(off.ok, "\(off)")
        v.waitFor("tree back after safe mode", v.allReady(["runner", "strategy"]))
        #expect(v.rawStatus()?["safe_mode"] is NSNull)
        #expect(v.events().contains { $0.contains("safe_mode") && $0.contains("left (by operator uid \(getuid())") })
        #expect(v.interrupt() == 0)
    }

    @Test func withoutALiveGuardianAGuardedChildIsNotRestarted() throws {
        let v = try tree(verdict: "allow")
        let s0 = v.waitFor("tree ready", v.allReady(["guardian", "runner", "strategy"]))
        #expect(try v.control(["stop", "guardian"]).ok)
        kill(s0["runner"]!.pid!, SIGKILL)
        v.waitFor("runner kept down") { $0["runner"]?.state == "stopped (safe mode)" }
        #expect(v.events().contains { $0.contains("no live guardian to approve restarting runner") })
        #expect(v.interrupt() == 0)
    }

    @Test func theGuardiansSafeModeVerdictAndTheOperatorsSafeModeCommand() throws {
        let v = try tree(verdict: "safe_mode")
        let s0 = v.waitFor("tree ready", v.allReady(["guardian", "runner", "strategy"]))
        kill(s0["runner"]!.pid!, SIGKILL)
        v.waitFor("safe mode by verdict") { $0["runner"]?.state == "stopped (safe mode)" }
        let safe = v.rawStatus()?["safe_mode"] as? [String: Any]
        #expect(safe?["by"] as? String == "guardian" && safe?["reason"] as? String == "test exposure")
        #expect(try v.control(["safe-mode", "off"]).ok)
        v.waitFor("back", v.allReady(["runner", "strategy"]))
        // The operator's own switch: on, refused twice, off.
        #expect(try v.control(["safe-mode", "on", "maintenance"]).ok)
        v.waitFor("strategy stopped") { $0["strategy"]?.state == "stopped (safe mode)" }
        let again = try v.control(["safe-mode", "on"])
        #expect(!again.ok && again.message.contains("already in safe mode"))
        #expect(try v.control(["safe-mode", "off"]).ok)
        v.waitFor("strategy back", v.allReady(["strategy"]))
        #expect(v.interrupt() == 0)
    }

    @Test func safeModeOutlivesARestartOfVigil() throws {
        let v = try tree(verdict: "allow")
        v.waitFor("tree ready", v.allReady(["guardian", "runner", "strategy"]))
        #expect(try v.control(["safe-mode", "on", "persist", "me"]).ok)
        v.waitFor("strategy stopped") { $0["strategy"]?.state == "stopped (safe mode)" }
        kill(v.process.processIdentifier, SIGKILL)
        v.process.waitUntilExit()
        try v.relaunch()
        // The runner (this test worker dies with vigil) ended while no vigil ran: starting
        // it again is a guarded restart, which safe mode refuses.
        v.waitFor("up again, still in safe mode") { $0["guardian"]?.state == "ready" && $0["runner"]?.state == "stopped (safe mode)" }
        let safe = v.rawStatus()?["safe_mode"] as? [String: Any]
        #expect(safe?["reason"] as? String == "persist me", "\(String(describing: safe))")
        #expect(v.status()?["strategy"]?.state == "stopped (safe mode)", "what safe mode stops is not started")
        #expect(v.events().contains { $0.contains("still in safe mode from before vigil restarted") })
        #expect(try v.control(["safe-mode", "off"]).ok)
        v.waitFor("runner and strategy back", v.allReady(["runner", "strategy"]))
        // Left: the next vigil starts normally.
        #expect(v.interrupt() == 0)
        try v.relaunch()
        v.waitFor("all up", v.allReady(["guardian", "runner", "strategy"]))
        #expect(v.rawStatus()?["safe_mode"] is NSNull)
        #expect(v.interrupt() == 0)
    }

    @Test func aCheckpointSurvivesKillNineAndARestartOfVigil() throws {
        let v = try VigilUnderTest("""
        name: t
        children:
          - worker: keeper
            argv: [WORKER]
            env: {TW_CHECKPOINT: "1"}
        """)
        v.waitFor("first incarnation starts with nothing") { $0["keeper"]?.workerStatus == "restored=none" }
        let s0 = v.status()!
        kill(s0["keeper"]!.pid!, SIGKILL)
        v.waitFor("second incarnation got the first's checkpoint") {
            $0["keeper"]?.pid != s0["keeper"]?.pid && $0["keeper"]?.workerStatus == "restored=incarnation 1"
        }
        // vigil itself dies; the checkpoint is in SQLite, and the next vigil hands it over.
        kill(v.process.processIdentifier, SIGKILL)
        v.process.waitUntilExit()
        try v.relaunch()
        v.waitFor("third incarnation got the second's checkpoint") { $0["keeper"]?.workerStatus == "restored=incarnation 2" }
        // The killed vigil's per-child notify sockets were cleared; only the live one is there.
        #expect((try? FileManager.default.contentsOfDirectory(atPath: v.runtimeDirectory + "/notify")) == ["keeper.3.sock"])
        #expect(v.interrupt() == 0)
    }

    @Test func anOversizedCheckpointIsRefusedAndThePreviousOneKept() throws {
        let v = try VigilUnderTest("""
        name: t
        children:
          - worker: keeper
            argv: [WORKER]
            max_checkpoint_bytes: 1000
            env: {TW_CHECKPOINT: "1", TW_CHECKPOINT_BYTES: "1001"}
        """)
        let s0 = v.waitFor("ready") { $0["keeper"]?.workerStatus == "restored=none" }
        v.waitFor("refusal journaled") { _ in v.events().contains { $0.contains("checkpoint_refused") } }
        #expect(v.events().contains { $0.contains("checkpoint of 1001 bytes exceeds this worker's limit of 1000 bytes") })
        kill(s0["keeper"]!.pid!, SIGKILL)
        v.waitFor("the good checkpoint came back") {
            $0["keeper"]?.pid != s0["keeper"]?.pid && $0["keeper"]?.workerStatus == "restored=incarnation 1"
        }
        #expect(v.interrupt() == 0)
    }

    @Test func aPlannedHandoffStartsTheReplacementFromAFreshCheckpoint() throws {
        let v = try VigilUnderTest("""
        name: t
        children:
          - worker: keeper
            argv: [WORKER]
            env: {TW_CHECKPOINT: "1"}
        """)
        let s0 = v.waitFor("ready") { $0["keeper"]?.workerStatus == "restored=none" }
        let answer = try v.control(["restart", "keeper", "--handoff"], timeout: .seconds(15))
        #expect(answer.ok, "\(answer)")
        let s1 = v.waitFor("replacement restored the handoff") { $0["keeper"]?.workerStatus == "restored=handoff from incarnation 1" }
        #expect(s1["keeper"]?.pid != s0["keeper"]?.pid)
        #expect(s1["keeper"]?.restarts == 0, "a planned handoff is not a failure")
        #expect(v.interrupt() == 0)
    }

    /// The index of the first journal line with all of `parts`.
    func line(_ events: [String], _ parts: String...) -> Int? {
        events.firstIndex { l in parts.allSatisfy { l.contains($0) } }
    }

    @Test func anOverlappingHandoffStartsTheReplacementBesideTheRunningOne() throws {
        let v = try VigilUnderTest("""
        name: t
        max_restarts: 1
        children:
          - worker: keeper
            argv: [WORKER]
            handoff: overlap
            env: {TW_CHECKPOINT: "1", TW_TERM_CHECKPOINT: "1"}
          - worker: user
            argv: [WORKER]
            depends_on: [keeper]
        """)
        let s0 = v.waitFor("ready") { $0["keeper"]?.workerStatus == "restored=none" && $0["user"]?.state == "ready" }
        let old = s0["keeper"]!.pid!
        let answer = try v.control(["restart", "keeper", "--handoff"], timeout: .seconds(15))
        #expect(answer.ok && answer.body.hasPrefix("handoff keeper: done"), "\(answer)")
        // The command answers once the incoming is READY and the outgoing is gone.
        let s1 = v.status()!
        let new = s1["keeper"]!.pid!
        #expect(new != old && s1["keeper"]?.state == "ready" && s1["keeper"]?.incarnation == 2)
        // Its status line is a frame after READY: it may be read a moment later.
        v.waitFor("the incoming restored the handoff") { $0["keeper"]?.workerStatus == "restored=handoff from incarnation 1" }
        #expect(!groupAlive(old), "the outgoing is gone")
        #expect(s1["keeper"]?.restarts == 0, "a planned handoff is not a failure")
        #expect(s1["user"]?.pid == s0["user"]?.pid, "the dependent is not restarted")

        // The outgoing was still running when the incoming became READY.
        let events = v.events()
        let ready = line(events, "ready", "keeper", "inc=2")
        let terminate = line(events, "terminate", "keeper", "pid=\(old) inc=1")
        let exited = line(events, "exited", "keeper", "pid=\(old) inc=1")
        #expect(ready != nil && terminate != nil && exited != nil, "\(events.joined(separator: "\n"))")
        if let ready, let terminate, let exited { #expect(ready < terminate && terminate < exited) }
        #expect(line(events, "handoff", "starting incarnation 2 beside incarnation 1 (pid \(old))") != nil)
        #expect(line(events, "handoff", "complete: outgoing incarnation 1 is gone; incarnation 2 (pid \(new)) is the child") != nil)
        // Its farewell checkpoint, sent on SIGTERM after the takeover, is refused...
        #expect(line(events, "checkpoint_refused", "inc=1", "checkpoint from outgoing incarnation 1 is not kept") != nil)
        // ...so the next incarnation starts from the new one's state, not the old one's.
        kill(new, SIGKILL)
        v.waitFor("third incarnation restored the second's checkpoint") {
            $0["keeper"]?.pid != new && $0["keeper"]?.workerStatus == "restored=incarnation 2"
        }
        #expect(v.interrupt() == 0, "max_restarts: 1 holds the kill -9 only because the handoff did not count")
    }

    @Test func whatTheOutgoingCheckpointsAfterTheHandoffCheckpointIsNotHandedOn() throws {
        let v = try VigilUnderTest("""
        name: t
        children:
          - worker: keeper
            argv: [WORKER]
            handoff: overlap
            env: {TW_CHECKPOINT: "1", TW_MOVE_ON_MS: "200", TW_READY_DELAY_MS: "700"}
        """)
        v.waitFor("ready") { $0["keeper"]?.workerStatus == "restored=none" }
        let answer = try v.control(["restart", "keeper", "--handoff"], timeout: .seconds(15))
        #expect(answer.ok, "\(answer)")
        // The incoming started from the handoff checkpoint; the outgoing's later "moved on"
        // (stored while it was still the child) is dropped when the incoming takes over.
        v.waitFor("the incoming restored the handoff") { $0["keeper"]?.workerStatus == "restored=handoff from incarnation 1" }
        let events = v.events()
        let dropped = line(events, "handoff", "inc=2", "checkpoints the outgoing incarnation sent after the one incarnation 2 started from are dropped")
        let takeover = line(events, "handoff", "incarnation 2 is READY and takes over")
        #expect(dropped != nil && takeover != nil, "\(events.joined(separator: "\n"))")
        if let dropped, let takeover { #expect(takeover < dropped) }
        #expect(v.interrupt() == 0)
    }

    @Test func anIncomingThatFailsToStartLeavesTheRunningOneInPlace() throws {
        let v = try VigilUnderTest("""
        name: t
        max_restarts: 0
        children:
          - worker: keeper
            argv: [WORKER]
            handoff: overlap
            env: {TW_CHECKPOINT: "1", TW_FAIL_INCARNATION: "2"}
        """)
        let s0 = v.waitFor("ready") { $0["keeper"]?.workerStatus == "restored=none" }
        let old = s0["keeper"]!.pid!
        let answer = try v.control(["restart", "keeper", "--handoff"], timeout: .seconds(15))
        #expect(!answer.ok, "\(answer)")
        #expect(answer.message.hasPrefix("handoff keeper failed: keeper: handoff to incarnation 2 failed: exited (exit 3) before READY"), "\(answer)")
        let s1 = v.status()!
        #expect(s1["keeper"]?.pid == old && s1["keeper"]?.state == "ready" && s1["keeper"]?.incarnation == 1)
        #expect(s1["keeper"]?.restarts == 0 && processAlive(old))
        #expect(line(v.events(), "handoff", "failed: incoming incarnation 2 exited (exit 3) before READY; incarnation 1 (pid \(old)) stays the child") != nil)
        // Incarnation 2 is never reused: the next handoff starts incarnation 3, and works.
        let again = try v.control(["restart", "keeper", "--handoff"], timeout: .seconds(15))
        #expect(again.ok, "\(again)")
        #expect(v.status()?["keeper"]?.incarnation == 3)
        v.waitFor("incarnation 3 restored the handoff") { $0["keeper"]?.workerStatus == "restored=handoff from incarnation 1" }
        #expect(!groupAlive(old))
        #expect(v.interrupt() == 0)
    }

    @Test func stoppingVigilDuringAnOverlapStopsBothProcesses() throws {
        let v = try VigilUnderTest("""
        name: t
        children:
          - worker: keeper
            argv: [WORKER]
            handoff: overlap
            ready_timeout: 20s
            env: {TW_READY_DELAY_MS: "1500"}
        """)
        let s0 = v.waitFor("ready", v.allReady(["keeper"]))
        let old = s0["keeper"]!.pid!
        let answer = try v.control(["restart", "keeper", "--handoff", "--no-block"])
        #expect(answer.ok, "\(answer)")
        v.waitFor("handing off") { $0["keeper"]?.state == "handing off" }
        let pair = childrenOf(v.process.processIdentifier)
        #expect(pair.count == 2 && pair.contains(old), "\(pair)")
        // A second handoff is refused while this one runs.
        let second = try v.control(["restart", "keeper", "--handoff"])
        #expect(!second.ok && second.message.contains("in the middle of a handoff"), "\(second)")
        #expect(v.interrupt() == 0)
        #expect(pair.allSatisfy { !groupAlive($0) }, "both the outgoing and the incoming are stopped")
    }
}
