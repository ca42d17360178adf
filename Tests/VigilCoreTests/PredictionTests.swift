import Testing
@testable import VigilCore

/// Predicted failures, memory limits and the forecast ledger, as state-machine tests.
@Suite("Predicted failures and memory limits")
struct PredictionTests {
    /// predictor, guardian, a leaky worker (overlap, limit), a guarded one (stop_first), a
    /// plain one.
    static func tree() -> Harness {
        func w(_ name: String, role: WorkerRole? = nil, guarded: Bool = false, handoff: HandoffMode = .stopFirst) -> ChildSpec {
            .worker(WorkerSpec(name: name, argv: ["/bin/true"], backoff: BackoffPolicy(jitter: 0), role: role,
                               guarded: guarded, handoff: handoff, memoryLimit: 64 << 20))
        }
        return Harness(Topology(root: supervisor("root", max: 100, [
            w("predictor", role: .predictor), w("guardian", role: .guardian),
            w("leaky", handoff: .overlap), w("runner", guarded: true), w("plain"),
        ])))
    }

    static func advice(_ worker: String, _ action: PredictionAction = .restart, model: String = "rss-theil-sen",
                       horizon: Duration = .seconds(30)) -> PredictionAdvice {
        PredictionAdvice(worker: worker, action: action, model: model, forecast: .seconds(12), horizon: horizon,
                         reason: "RSS rising")
    }

    func details(_ h: Harness, _ kind: RecordKind = .prediction) -> [String] { h.records(kind).map(\.detail) }

    func plannedHandoffs(_ h: Harness) -> [String] {
        h.log.compactMap { if case .plannedHandoff(let id, _) = $0 { h.tree.name(of: id) } else { nil } }
    }

    @Test func adviceFromAnyoneButThePredictorIsIgnored() {
        var h = Self.tree()
        h.start()
        h.clearLogs()
        h.send(.advice(from: h.id("plain"), Self.advice("leaky")))
        #expect(details(h, .protocolViolation).count == 1)
        #expect(details(h).isEmpty && plannedHandoffs(h).isEmpty && h.tree.openForecasts.isEmpty)
    }

    @Test func aRestartAdviceIsJournaledAndForestalledByAPlannedHandoffThenConfirmed() throws {
        var h = Self.tree()
        h.start()
        h.clearLogs()
        h.send(.advice(from: h.id("predictor"), Self.advice("leaky")))
        let d = details(h)
        #expect(d.count == 1 && d[0].hasPrefix("id=1 model=rss-theil-sen action=restart forecast=12.000s horizon=30.000s: RSS rising; planned handoff (overlap)"))
        #expect(plannedHandoffs(h) == ["leaky"])
        // The same forecast again for the same process is not a second one.
        h.send(.advice(from: h.id("predictor"), Self.advice("leaky")))
        #expect(h.tree.openForecasts.count == 1)
        // The shell has the fresh checkpoint: the core hands off, as the predictor's.
        let old = try #require(h.pid("leaky"))
        h.apply(h.tree.handoffByPrediction(h.id("leaky"), reason: "predicted failure", at: h.now))
        #expect(details(h, .command).last == "predictor: handoff (overlap)")
        let incoming = try #require(h.pids(of: "leaky").last)
        h.ready(pid: incoming)
        h.exit(pid: old, .signaled(15))
        #expect(h.tree.restarts(of: h.id("leaky")) == 0)
        #expect(h.tree.status()[h.id("leaky").index].lastReason == "handoff by predictor (overlap)")
        #expect(details(h).last?.hasPrefix("outcome=confirmed id=1 model=rss-theil-sen action=restart how=forestalled") == true)
        #expect(h.tree.openForecasts.isEmpty)
        // Its horizon passing later settles nothing twice.
        h.advance(.seconds(41))
        #expect(details(h).filter { $0.hasPrefix("outcome=") }.count == 1)
    }

    @Test func aWatchForecastIsRefutedWhenTheHorizonPassesAndConfirmedWhenTheWorkerFails() {
        var h = Self.tree()
        h.start()
        h.send(.advice(from: h.id("predictor"), Self.advice("plain", .watch, model: "restart-rate", horizon: .seconds(10))))
        #expect(plannedHandoffs(h).isEmpty)
        // The horizon, plus two sample intervals (5 s by default) for the sampler to see it.
        h.advance(.seconds(19))
        #expect(!details(h).contains { $0.hasPrefix("outcome=") })
        h.advance(.seconds(1))
        #expect(details(h).last?.hasPrefix("outcome=refuted id=1 model=restart-rate action=watch how=expired lead=20.000s") == true)
        h.send(.advice(from: h.id("predictor"), Self.advice("plain", .watch, model: "restart-rate", horizon: .seconds(10))))
        h.advance(.seconds(4))
        h.exit("plain", .exited(1))
        #expect(details(h).last == "outcome=confirmed id=2 model=restart-rate action=watch how=failed lead=4.000s: exit 1")
        // A failure with nothing forecast is a miss.
        h.exit("plain", .signaled(11))
        #expect(details(h).last == "outcome=missed how=unforecast lead=0.000s: signal SIGSEGV")
    }

    @Test func aGuardedWorkerIsReplacedOnlyWithTheGuardiansConsent() throws {
        var h = Self.tree()
        h.start()
        h.clearLogs()
        h.send(.advice(from: h.id("predictor"), Self.advice("runner")))
        let q = try #require(h.log.compactMap { if case .askGuardian(_, let q) = $0 { q } else { nil } }.first)
        #expect(q.child == "runner" && q.reason.hasPrefix("predicted failure (rss-theil-sen, in 12.000s)"))
        #expect(h.state("runner") == "ready" && plannedHandoffs(h).isEmpty)
        h.send(.verdict(id: q.id, .allow))
        #expect(plannedHandoffs(h) == ["runner"])
        // stop_first: stopped by the predictor, then started again; not a failure.
        h.apply(h.tree.handoffByPrediction(h.id("runner"), reason: "predicted failure", at: h.now))
        h.exitSignalled()
        #expect(h.state("runner") == "ready" && h.tree.restarts(of: h.id("runner")) == 0)
        #expect(details(h).last?.contains("how=forestalled") == true)
    }

    @Test func denyOrSilenceFromTheGuardianLeavesTheWorkerRunningWithoutSafeMode() throws {
        var h = Self.tree()
        h.start()
        h.send(.advice(from: h.id("predictor"), Self.advice("runner")))
        var q = h.log.compactMap { if case .askGuardian(_, let q) = $0 { q } else { nil } }
        h.send(.verdict(id: q[0].id, .deny("restarting too often")))
        h.send(.advice(from: h.id("predictor"), Self.advice("runner", model: "other")))
        q = h.log.compactMap { if case .askGuardian(_, let q) = $0 { q } else { nil } }
        h.advance(.seconds(3))
        #expect(h.tree.safeMode == nil && plannedHandoffs(h).isEmpty && h.state("runner") == "ready")
        #expect(details(h, .verdict).contains { $0.contains("no answer within 2s; runner keeps running") })
        // The guardian may still order safe mode in its answer.
        h.send(.advice(from: h.id("predictor"), Self.advice("runner", model: "third")))
        q = h.log.compactMap { if case .askGuardian(_, let q) = $0 { q } else { nil } }
        h.send(.verdict(id: q.last!.id, .safeMode("exposure")))
        #expect(h.tree.safeMode?.by == "guardian")
    }

    @Test func aForecastAboutAProcessThatIsGoneIsIgnored() throws {
        var h = Self.tree()
        h.start()
        let old = try #require(h.pid("plain"))
        h.exit("plain")
        var a = Self.advice("plain")
        a.pid = old
        h.send(.advice(from: h.id("predictor"), a))
        #expect(details(h).last == "forecast (rss-theil-sen) about pid \(old), which is no longer plain's process; ignored")
        #expect(h.tree.openForecasts.isEmpty && plannedHandoffs(h).isEmpty)
    }

    @Test func nothingIsDoneForAWorkerThatIsNotRunningOrUnknown() {
        var h = Self.tree()
        h.start(ready: false)
        h.ready("predictor")
        h.send(.advice(from: h.id("predictor"), Self.advice("leaky")))
        #expect(details(h).last?.contains("not acted on: leaky is starting, not running") == true)
        h.send(.advice(from: h.id("predictor"), Self.advice("nobody")))
        #expect(details(h).last == "forecast about nobody, which is not one running worker; ignored")
        #expect(plannedHandoffs(h).isEmpty)
    }

    @Test func exceedingTheMemoryLimitKillsAndIsAFailureWithItsReason() throws {
        var h = Self.tree()
        h.start()
        h.clearLogs()
        let i = h.id("plain")
        h.send(.memoryLimitExceeded(i, incarnation: h.tree.incarnation(of: i), rssBytes: 70 << 20))
        #expect(details(h, .memoryLimit) == ["killed for exceeding memory_limit (RSS 70.0 MiB > 64MiB); SIGKILL to its group"])
        #expect(h.signals.map(\.1) == [9])
        // Reported again before it is gone: nothing more.
        h.send(.memoryLimitExceeded(i, incarnation: h.tree.incarnation(of: i), rssBytes: 71 << 20))
        #expect(h.signals.count == 1)
        h.exitSignalled()
        #expect(h.tree.restarts(of: i) == 1)
        #expect(h.tree.status()[i.index].lastReason == "killed for exceeding memory_limit (RSS 70.0 MiB > 64MiB)")
        #expect(details(h).last == "outcome=missed how=unforecast lead=0.000s: killed for exceeding memory_limit (RSS 70.0 MiB > 64MiB)")
    }

    @Test func withoutAPredictorFailuresAreNotJournaledAsMissedForecasts() {
        var h = Harness(root: supervisor("root", [worker("a")]))
        h.start()
        h.exit("a")
        #expect(h.records(.prediction).isEmpty)
    }
}

@Suite("Forecast ledger")
struct PredictionLedgerTests {
    let t0 = Instant(nanoseconds: 5_000_000_000)

    @Test func eachForecastIsSettledOnce() throws {
        var l = PredictionLedger()
        let a0 = l.open(worker: "w", incarnation: 1, model: "m", action: .restart, horizon: .seconds(10), at: t0)
        let a = try #require(a0)
        let again = l.open(worker: "w", incarnation: 1, model: "m", action: .restart, horizon: .seconds(10), at: t0)
        #expect(again == nil)
        let b0 = l.open(worker: "w", incarnation: 1, model: "n", action: .watch, horizon: .seconds(10), at: t0)
        let b = try #require(b0)
        #expect((a.id, b.id) == (1, 2) && a.deadline == t0 + .seconds(10))
        // Not acted on: a new incarnation does not settle it.
        #expect(l.replaced(worker: "w", incarnation: 2, at: t0).isEmpty)
        l.markActed(a.id)
        let forestalled = l.replaced(worker: "w", incarnation: 2, at: t0 + .seconds(3))
        #expect(forestalled.map(\.verdict) == [.confirmed] && forestalled[0].how == "forestalled")
        #expect(forestalled[0].detail == "outcome=confirmed id=1 model=m action=restart how=forestalled lead=3.000s")
        let failed = l.failed(worker: "w", at: t0 + .seconds(4))
        #expect(failed.map(\.verdict) == [.confirmed] && failed[0].entry?.id == 2 && failed[0].how == "failed")
        #expect(l.expire(a.id, at: t0 + .seconds(10)) == nil && l.expire(b.id, at: t0 + .seconds(10)) == nil)
        #expect(l.failed(worker: "w", at: t0).map(\.verdict) == [.missed])
        let c0 = l.open(worker: "w", incarnation: 2, model: "m", action: .watch, horizon: .seconds(1), at: t0)
        let c = try #require(c0)
        #expect(l.expire(c.id, at: t0 + .milliseconds(1500))?.detail == "outcome=refuted id=3 model=m action=watch how=expired lead=1.500s")
        #expect(l.unsettled.isEmpty)
    }
}

@Suite("Memory sizes")
struct MemorySizeTests {
    @Test func parsesUnitsAndRefusesTheRest() {
        #expect(MemorySize.bytes(topologyText: "256MiB") == 256 << 20)
        #expect(MemorySize.bytes(topologyText: "2GiB") == 2 << 30)
        #expect(MemorySize.bytes(topologyText: "512KiB") == 512 << 10)
        #expect(MemorySize.bytes(topologyText: "1TiB") == 1 << 40)
        #expect(MemorySize.bytes(topologyText: "100MB") == 100_000_000)
        #expect(MemorySize.bytes(topologyText: "4096B") == 4096)
        for bad in ["256", "MiB", "1.5GiB", "-1MiB", "256 MiB", "256mib", "99999999999999TiB", "", "0x10MiB"] {
            #expect(MemorySize.bytes(topologyText: bad) == nil, "\(bad)")
        }
    }

    @Test func readsBackAsWritten() {
        #expect(MemorySize.text(256 << 20) == "256MiB")
        #expect(MemorySize.text(1536 << 10) == "1536KiB")
        #expect(MemorySize.text(1000) == "1000B")
        #expect(MemorySize.approximate(70 << 20) == "70.0 MiB")
        #expect(MemorySize.approximate(1536) == "1.5 KiB")
        #expect(MemorySize.approximate(12) == "12 B")
    }
}
