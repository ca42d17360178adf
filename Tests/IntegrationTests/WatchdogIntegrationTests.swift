import Foundation
import Testing

/// Per-worker watchdogs with real processes: a hung worker is aborted and replaced; a
/// vigil that was itself stopped, or a machine starved of CPU, causes no kill storm.
@Suite("watchdog with real workers", .serialized)
struct WatchdogIntegrationTests {
    @Test func aHungWorkerIsAbortedThenReplaced() throws {
        let v = try VigilUnderTest("""
        name: t
        heartbeat_interval: 100ms
        children:
          - worker: stuck
            argv: [WORKER]
            env: {TW_HANG_AFTER_MS: "300"}
            watchdog: 500ms
        """)
        let s0 = v.waitFor("ready", v.allReady(["stuck"]))
        let s1 = v.waitFor("replaced after its watchdog") { $0["stuck"]?.pid != s0["stuck"]?.pid && $0["stuck"]?.state == "ready" }
        // SIGABRT first, as systemd's WatchdogSignal: the Swift runtime prints a backtrace
        // of where it hung and lives on, so the SIGKILL a second later ends it.
        #expect(["signal SIGABRT", "signal SIGKILL"].contains(s1["stuck"]?.lastExit ?? ""))
        #expect(v.events().contains { $0.contains(" watchdog ") && $0.contains("hung; SIGABRT to its group, SIGKILL in 1s") })
        #expect(v.log.contains("Signal 6: Backtracing"), "the stack trace of the hung worker is in vigil's output")
        #expect(v.interrupt() == 0)
    }

    /// Observes the tree for `seconds` and returns the first sign of a restart, if any.
    func firstRestart(in v: VigilUnderTest, names: [String], pids: [String: Int32], seconds: Double) -> String? {
        let until = Date().addingTimeInterval(seconds)
        while Date() < until {
            if let s = v.status() {
                for n in names where s[n]?.restarts != 0 || s[n]?.pid != pids[n] { return "\(n): \(String(describing: s[n]))" }
            }
            usleep(50_000)
        }
        return nil
    }

    @Test func aVigilThatWasStoppedDoesNotKillItsWorkersWhenItResumes() throws {
        let names = (1...4).map { "w\($0)" }
        let v = try VigilUnderTest("name: t\nheartbeat_interval: 100ms\nchildren:\n"
            + names.map { "  - worker: \($0)\n    argv: [WORKER]\n    watchdog: 500ms\n" }.joined())
        let s0 = v.waitFor("ready", v.allReady(names))
        let pids = Dictionary(uniqueKeysWithValues: names.map { ($0, s0[$0]!.pid!) })
        kill(v.process.processIdentifier, SIGSTOP)
        usleep(2_000_000)  // vigil frozen for four watchdog periods (the scenario itself)
        kill(v.process.processIdentifier, SIGCONT)
        #expect(firstRestart(in: v, names: names, pids: pids, seconds: 2) == nil)
        #expect(!v.events().contains { $0.contains("hung") })
        #expect(v.interrupt() == 0)
    }

    @Test func heartbeatsSlightlyLateUnderACPUHogAreNotAHang() throws {
        let v = try VigilUnderTest("""
        name: t
        heartbeat_interval: 200ms
        children:
          - worker: busy
            argv: [WORKER]
            watchdog: 1s
        """)
        let s0 = v.waitFor("ready", v.allReady(["busy"]))
        // Four spinning processes on a 2-core machine, for the whole observation.
        let hogs = (0..<4).map { _ -> Process in
            let p = Process()
            p.executableURL = URL(fileURLWithPath: "/bin/sh")
            p.arguments = ["-c", "while :; do :; done"]
            try? p.run()
            return p
        }
        // SIGKILL: the test process may block SIGTERM, and its children inherit that mask.
        defer { for h in hogs { kill(h.processIdentifier, SIGKILL); h.waitUntilExit() } }
        #expect(firstRestart(in: v, names: ["busy"], pids: ["busy": s0["busy"]!.pid!], seconds: 4) == nil)
        #expect(v.interrupt() == 0)
    }
}
