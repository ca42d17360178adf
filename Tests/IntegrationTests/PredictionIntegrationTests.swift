import Foundation
import Testing

/// The failure predictor and memory limits with real processes: a worker that leaks at a
/// steady rate is replaced by prediction, its state handed over, before it reaches its
/// memory_limit; a noisy but flat one is left alone; and without a predictor the limit
/// kills, journaled and shown by `vigil status`.
@Suite("predicted restarts and memory limits with real workers", .serialized)
struct PredictionIntegrationTests {
    static var predictor: String { VigilUnderTest.products + "/ml-predictor" }

    @Test func aLeakingWorkerIsHandedOffBeforeItsLimitAndANoisyFlatOneIsNot() throws {
        // 4 MiB/s toward a 64 MiB limit: about 14 s from start to the limit. The predictor
        // acts once the limit is forecast within its 8 s horizon.
        let v = try VigilUnderTest("""
        name: t
        sample_interval: 200ms
        heartbeat_interval: 200ms
        children:
          - worker: predictor
            argv: [\(Self.predictor), --horizon, 8s]
            role: predictor
          - worker: leaky
            argv: [SDKWORKER]
            env: {TW_LEAK_KIB_PER_S: "4096"}
            memory_limit: 64MiB
            handoff: overlap
          - worker: flat
            argv: [SDKWORKER]
            env: {TW_NOISE_KIB: "8192"}
            memory_limit: 64MiB
        """)
        let s0 = v.waitFor("ready", v.allReady(["predictor", "leaky", "flat"]))
        let s1 = v.waitFor("leaky replaced by a planned handoff", timeout: 18) {
            ($0["leaky"]?.incarnation ?? 0) > s0["leaky"]!.incarnation && $0["leaky"]?.state == "ready"
                && $0["leaky"]?.workerStatus?.contains("restored=") == true
        }
        let leaky = try #require(s1["leaky"])
        // Replaced, not failed: no restart counted, the reason is the predictor's handoff.
        #expect(leaky.restarts == 0 && leaky.lastExit == nil)
        // Its state came along: the new incarnation counts on from the old one's ticks.
        let restored = leaky.workerStatus.flatMap { $0.split(separator: " ").first { $0.hasPrefix("restored=") } }
            .flatMap { Int($0.dropFirst("restored=".count)) } ?? 0
        #expect(restored > 10, "status: \(leaky.workerStatus ?? "-")")
        let events = v.events()
        let forecast = try #require(events.first { $0.contains(" prediction ") && $0.contains("leaky") && $0.contains("action=restart") })
        #expect(forecast.contains("model=rss-theil-sen") && forecast.contains("planned handoff (overlap)"), "\(forecast)")
        #expect(events.contains { $0.contains("predictor: handoff (overlap)") })
        #expect(events.contains { $0.contains("outcome=confirmed") && $0.contains("how=forestalled") })
        #expect(!events.contains { $0.contains(" memory_limit ") }, "killed before the handoff:\n\(events.joined(separator: "\n"))")
        // The noisy worker is never forecast nor restarted: watched for 5 s more (25 more
        // samples), while the leaky one goes on leaking and being replaced.
        let until = Date().addingTimeInterval(5)
        while Date() < until {
            if let s = v.status() { #expect(s["flat"]?.pid == s0["flat"]?.pid && s["flat"]?.incarnation == s0["flat"]?.incarnation) }
            usleep(100_000)
        }
        #expect(!v.events().contains { $0.contains(" prediction ") && $0.contains(" flat ") })
        #expect(v.interrupt() == 0)
    }

    @Test func withoutAPredictorTheLimitKillsAndStatusSaysWhy() throws {
        let v = try VigilUnderTest("""
        name: t
        sample_interval: 100ms
        max_restarts: 10
        children:
          - worker: leaky
            argv: [SDKWORKER]
            env: {TW_LEAK_KIB_PER_S: "32768"}
            memory_limit: 24MiB
        """)
        let s0 = v.waitFor("ready", v.allReady(["leaky"]))
        let s1 = v.waitFor("killed and restarted") { ($0["leaky"]?.restarts ?? 0) >= 1 && $0["leaky"]?.pid != s0["leaky"]?.pid }
        #expect(s1["leaky"]?.lastExit == "signal SIGKILL")
        let reason = v.rawStatus().flatMap { ($0["nodes"] as? [[String: Any]])?.first { $0["name"] as? String == "leaky" }?["reason"] as? String }
        #expect(reason?.hasPrefix("killed for exceeding memory_limit (RSS ") == true, "\(reason ?? "-")")
        #expect(v.events().contains { $0.contains(" memory_limit ") && $0.contains("killed for exceeding memory_limit") && $0.contains("> 24MiB") })
        #expect(v.interrupt() == 0)
    }
}
