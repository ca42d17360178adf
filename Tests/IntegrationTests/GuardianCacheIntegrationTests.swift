import Foundation
import Testing

/// The risk guardian reads its risk picture from the cache warmer while it answers, and
/// from the database while it is wedged or dead, with the real workers: each switch is
/// journaled once, and a guarded child killed while the cache is wedged is still restarted
/// with the guardian's consent (no fail-safe).
@Suite("guardian and cache: the cache while it answers, the database while it does not", .serialized)
struct GuardianCacheIntegrationTests {
    func tree() throws -> VigilUnderTest {
        try VigilUnderTest("""
        name: t
        max_restarts: 20
        period: 1m
        heartbeat_interval: 200ms
        guardian_timeout: 2s
        defaults:
          shutdown: 3s
          watchdog: 5s
          backoff: {initial: 10ms, max: 100ms, reset_after: 1s}
        children:
          - supervisor: data
            strategy: rest_for_one
            max_restarts: 10
            period: 30s
            children:
              - worker: db-watchdog
                argv: [db-watchdog, --interval, 1s, --integrity-interval, 30s, --checkpoint-interval, 2s,
                       --backup-interval, 30s, --keep, 2]
              - worker: cache-warmer
                argv: [cache-warmer, --interval, 200ms]
                depends_on: [db-watchdog]
                # The first failure restarts at once, the second after 2 s: a gap to see.
                backoff: {initial: 2s, max: 2s, jitter: 0, reset_after: 1m}
          - worker: risk-guardian
            argv: [risk-guardian, --interval, 200ms, --cache-max-age, 1s, --max-exposure, "100000000"]
            role: guardian
            depends_on: [db-watchdog]
          - supervisor: markets
            strategy: one_for_one
            max_restarts: 20
            period: 1m
            children:
              - worker: exchange-gateway
                argv: [exchange-gateway, --tick, 20ms, --step-bps, "30"]
                role: gateway
                guarded: true
                depends_on: [db-watchdog, risk-guardian]
              - worker: strategy-runner
                argv: [strategy-runner, --short, "2", --long, "4", --qty, "1", --max-position, "3"]
                guarded: true
                depends_on: [exchange-gateway]
        """)
    }

    let names = ["db-watchdog", "cache-warmer", "risk-guardian", "exchange-gateway", "strategy-runner"]

    func guardianReads(_ source: String) -> ([String: VigilUnderTest.Node]) -> Bool {
        { $0["risk-guardian"]?.workerStatus?.contains("| from \(source)") == true }
    }

    /// The guardian's `risk-source` journal records, in order.
    func switches(_ v: VigilUnderTest) -> [String] {
        v.events().filter { $0.contains("risk-guardian") && $0.contains("risk-source: ") }
    }

    /// Kills the strategy runner and checks the guardian lets it back within its timeout.
    func killRunnerAndExpectItBack(_ v: VigilUnderTest, _ s: [String: VigilUnderTest.Node], sourceLocation: SourceLocation = #_sourceLocation) {
        let before = s["strategy-runner"]!
        let killed = Date()
        kill(before.pid!, SIGKILL)
        v.waitFor("the runner restarted with the guardian's consent", timeout: 5, { s in
            s["strategy-runner"]?.state == "ready" && s["strategy-runner"]!.incarnation > before.incarnation
        }, sourceLocation: sourceLocation)
        let took = Date().timeIntervalSince(killed)
        #expect(took < 2, "back after \(took) s", sourceLocation: sourceLocation)
        #expect(v.rawStatus()?["safe_mode"] is NSNull, "answered in time: no fail-safe", sourceLocation: sourceLocation)
    }

    @Test func wedgedAndKilledCacheMeansTheDatabaseAndBack() throws {
        let v = try tree()
        let s0 = v.waitFor("tree ready", v.allReady(names))
        v.waitFor("the guardian on the cache", timeout: 5, guardianReads("cache generation"))
        #expect(switches(v).last?.contains("risk data from the cache warmer") == true, "\(switches(v))")

        // Wedged: the process is there, its socket accepts into the queue, nothing answers.
        let warmer = s0["cache-warmer"]!.pid!
        kill(warmer, SIGSTOP)
        let s1 = v.waitFor("the guardian on the database", timeout: 3, guardianReads("database"))
        #expect(switches(v).last?.contains("risk data from the database instead of the cache: cache wedged or slow: no answer within") == true,
                "\(switches(v))")
        killRunnerAndExpectItBack(v, s1)
        let verdicts = v.events().filter { $0.contains("verdict") && $0.contains("strategy-runner") }
        #expect(verdicts.last?.contains("allow") == true, "\(verdicts)")

        // Killed (its first failure: restarted at once): the new incarnation warms, and the
        // guardian goes back to it.
        kill(warmer, SIGKILL)
        v.waitFor("a new cache warmer", timeout: 5) { $0["cache-warmer"]?.state == "ready" && $0["cache-warmer"]!.pid != warmer }
        let s2 = v.waitFor("the guardian back on the cache", timeout: 3, guardianReads("cache generation"))
        #expect(switches(v).last?.contains("risk data from the cache warmer again") == true, "\(switches(v))")

        // Killed again: restarted only after 2 s; meanwhile the database, then the cache.
        kill(s2["cache-warmer"]!.pid!, SIGKILL)
        let s3 = v.waitFor("the guardian on the database", timeout: 2, guardianReads("database"))
        #expect(s3["cache-warmer"]?.state != "ready")
        #expect(switches(v).last?.contains("risk data from the database instead of the cache: cache down") == true, "\(switches(v))")
        killRunnerAndExpectItBack(v, s3)
        v.waitFor("the guardian back on the cache", timeout: 5, guardianReads("cache generation"))

        // One journal record per switch, never one per tick: they alternate.
        let all = switches(v).map { $0.contains("from the database") ? "database" : "cache" }
        #expect(zip(all, all.dropFirst()).allSatisfy { $0 != $1 }, "\(switches(v))")
        #expect(Array(all.suffix(4)) == ["database", "cache", "database", "cache"], "\(switches(v))")
        #expect(v.status()?["risk-guardian"]?.pid == s0["risk-guardian"]?.pid, "the guardian itself never restarted")
        #expect(v.interrupt() == 0)
    }
}
