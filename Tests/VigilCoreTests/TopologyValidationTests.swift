import Testing
import VigilCore

/// Builders for hand-made topologies; every spec gets its own line so diagnostics can be
/// told apart by location.
private enum TV {
    static func at(_ line: Int, _ column: Int = 1) -> VigilCore.SourceLocation {
        VigilCore.SourceLocation(file: "t.yaml", line: line, column: column)
    }

    static func worker(_ name: String, line: Int, argv: [String]? = nil, deps: [(String, Int)] = [],
                       configure: (inout WorkerSpec) -> Void = { _ in }) -> ChildSpec {
        var w = WorkerSpec(name: name, argv: argv ?? ["/bin/\(name)"], location: at(line))
        w.dependsOn = deps.map { Dependency($0.0, at: at($0.1, 9)) }
        configure(&w)
        return .worker(w)
    }

    static func supervisor(_ name: String, line: Int, _ children: [ChildSpec],
                           configure: (inout SupervisorSpec) -> Void = { _ in }) -> ChildSpec {
        var s = SupervisorSpec(name: name, children: children, location: at(line))
        configure(&s)
        return .supervisor(s)
    }

    static func tree(_ children: [ChildSpec], name: String = "trading",
                     settings: TreeSettings = TreeSettings()) -> Topology {
        Topology(root: SupervisorSpec(name: name, children: children, location: at(1)),
                 settings: settings, file: "t.yaml")
    }

    static func messages(_ t: Topology) -> [String] {
        TopologyValidator.validate(t).map(\.description)
    }
}

@Suite("Topology validation")
struct TopologyValidationTests {
    // MARK: A valid tree

    @Test func referenceTopologyIsValid() {
        let t = TV.tree([
            TV.supervisor("data", line: 2, [
                TV.worker("db-watchdog", line: 3),
                TV.worker("cache-warmer", line: 4, deps: [("db-watchdog", 4)]),
            ]) { $0.strategy = .restForOne },
            TV.worker("risk-guardian", line: 5, deps: [("data", 5)]) { $0.role = .guardian },
            TV.worker("ml-predictor", line: 6) { $0.role = .predictor },
            TV.supervisor("markets", line: 7, [
                TV.worker("exchange-gateway", line: 8, deps: [("risk-guardian", 8)]),
                TV.worker("strategy-runner", line: 9, deps: [("exchange-gateway", 9), ("cache-warmer", 9)]) {
                    $0.instances = 3
                },
            ]),
            TV.worker("reporter", line: 10, deps: [("strategy-runner", 10), ("markets", 10)]),
        ])
        #expect(TopologyValidator.validate(t) == [])
    }

    @Test func edgeValuesAreAccepted() {
        let t = TV.tree([
            TV.worker("a", line: 2) {
                $0.instances = TopologyValidator.maxInstances
                $0.shutdown = .brutalKill
                $0.backoff = BackoffPolicy(initial: .zero, multiplier: 1, max: .zero, jitter: 1, resetAfter: .nanoseconds(1))
            },
            TV.worker("b", line: 3) { $0.shutdown = .infinity; $0.backoff.jitter = 0 },
        ])
        #expect(TopologyValidator.validate(t) == [])
    }

    // MARK: Names

    @Test func emptyName() {
        let t = TV.tree([TV.worker("", line: 2, argv: ["/bin/x"])])
        #expect(TV.messages(t) == ["t.yaml:2:1: a worker has an empty name: give it a name made of letters, digits, '_' and '-'"])
    }

    @Test func namesWithDotsOrOtherCharacters() {
        let t = TV.tree([
            TV.worker("db.watchdog", line: 2),
            TV.supervisor("my markets", line: 3, [TV.worker("gw", line: 4)]),
            TV.worker("ok_name-2", line: 5),
        ])
        #expect(TV.messages(t) == [
            "t.yaml:2:1: invalid name 'db.watchdog': use only letters, digits, '_' and '-' (no dots: the instances of a pool are named 'db.watchdog.1', 'db.watchdog.2', ...)",
            "t.yaml:3:1: invalid name 'my markets': use only letters, digits, '_' and '-', e.g. 'my-markets'",
        ])
    }

    @Test func rootNameIsCheckedToo() {
        let t = TV.tree([TV.worker("a", line: 2)], name: "")
        #expect(TV.messages(t) == ["t.yaml:1:1: a supervisor has an empty name: give it a name made of letters, digits, '_' and '-'"])
    }

    @Test func duplicateNamesAcrossTheWholeTreeReportedAtTheSecond() {
        let t = TV.tree([
            TV.supervisor("data", line: 2, [
                TV.worker("db", line: 3),
                TV.worker("trading", line: 4),  // same as the root
            ]),
            TV.supervisor("markets", line: 5, [
                TV.worker("db", line: 6),  // same as a worker in another supervisor
                TV.worker("data", line: 7),  // a worker named like a supervisor
            ]),
        ])
        #expect(TV.messages(t) == [
            "t.yaml:4:1: duplicate name 'trading' (first defined at t.yaml:1:1): every worker and supervisor needs its own name",
            "t.yaml:6:1: duplicate name 'db' (first defined at t.yaml:3:1): every worker and supervisor needs its own name",
            "t.yaml:7:1: duplicate name 'data' (first defined at t.yaml:2:1): every worker and supervisor needs its own name",
        ])
    }

    // MARK: depends_on

    @Test func unknownDependencySuggestsTheClosestName() {
        let t = TV.tree([
            TV.worker("db-watchdog", line: 2),
            TV.worker("cache", line: 3, deps: [("db-watchdg", 3), ("postgres", 4)]),
        ])
        #expect(TV.messages(t) == [
            "t.yaml:3:9: 'cache' depends on 'db-watchdg', but no worker, pool or supervisor has that name (did you mean 'db-watchdog'?)",
            "t.yaml:4:9: 'cache' depends on 'postgres', but no worker, pool or supervisor has that name",
        ])
    }

    @Test func dependencyOnOnePoolInstanceAsksForThePool() {
        let t = TV.tree([
            TV.worker("runner", line: 2) { $0.instances = 3 },
            TV.worker("report", line: 3, deps: [("runner.2", 3)]),
        ])
        #expect(TV.messages(t) == [
            "t.yaml:3:9: 'report' depends on 'runner.2', a single instance of a pool: depend on the pool 'runner' instead (all its instances)",
        ])
    }

    @Test func selfDependency() {
        let t = TV.tree([TV.worker("a", line: 2, deps: [("a", 2)])])
        #expect(TV.messages(t) == ["t.yaml:2:9: 'a' depends on itself: remove 'a' from its depends_on"])
    }

    @Test func dependencyOnOwnAncestorSupervisor() {
        let t = TV.tree([
            TV.supervisor("data", line: 2, [
                TV.supervisor("inner", line: 3, [
                    TV.worker("db", line: 4, deps: [("data", 4), ("inner", 5), ("trading", 6)]),
                ]),
            ]),
        ])
        #expect(TV.messages(t) == [
            "t.yaml:4:9: 'db' depends on supervisor 'data', which contains it: a supervisor is up only when all its children are, so this can never be met; remove 'data' from depends_on",
            "t.yaml:5:9: 'db' depends on supervisor 'inner', which contains it: a supervisor is up only when all its children are, so this can never be met; remove 'inner' from depends_on",
            "t.yaml:6:9: 'db' depends on supervisor 'trading', which contains it: a supervisor is up only when all its children are, so this can never be met; remove 'trading' from depends_on",
        ])
    }

    @Test func dependencyListedTwice() {
        let t = TV.tree([
            TV.worker("a", line: 2),
            TV.worker("b", line: 3, deps: [("a", 3), ("a", 4)]),
        ])
        #expect(TV.messages(t) == ["t.yaml:4:9: 'a' is listed twice in depends_on of 'b'"])
    }

    @Test func dependencyDeclaredLaterBetweenSiblings() {
        let t = TV.tree([
            TV.worker("gateway", line: 2, deps: [("guardian", 2)]),
            TV.worker("guardian", line: 3),
        ])
        #expect(TV.messages(t) == [
            "t.yaml:2:9: 'gateway' depends on 'guardian', which is declared later (at t.yaml:3:1): vigil starts children in declaration order and stops them in reverse, so a dependency must be declared before the workers that depend on it; move 'guardian' above 'gateway'",
        ])
    }

    @Test func dependencyDeclaredLaterAcrossSupervisorsNamesWhatToMove() {
        let t = TV.tree([
            TV.supervisor("markets", line: 2, [
                TV.worker("gateway", line: 3, deps: [("db", 3), ("data", 4)]),
            ]),
            TV.supervisor("data", line: 5, [
                TV.supervisor("storage", line: 6, [TV.worker("db", line: 7)]),
                TV.worker("cache", line: 8, deps: [("loader", 8)]),
                TV.worker("loader", line: 9),
            ]),
        ])
        #expect(TV.messages(t) == [
            "t.yaml:3:9: 'gateway' depends on 'db', which is declared later (at t.yaml:7:1): vigil starts children in declaration order and stops them in reverse, so a dependency must be declared before the workers that depend on it; move supervisor 'data' above supervisor 'markets'",
            "t.yaml:4:9: 'gateway' depends on supervisor 'data', which is declared later (at t.yaml:5:1): vigil starts children in declaration order and stops them in reverse, so a dependency must be declared before the workers that depend on it; move supervisor 'data' above supervisor 'markets'",
            "t.yaml:8:9: 'cache' depends on 'loader', which is declared later (at t.yaml:9:1): vigil starts children in declaration order and stops them in reverse, so a dependency must be declared before the workers that depend on it; move 'loader' above 'cache' in supervisor 'data'",
        ])
    }

    @Test func twoWorkerCycleIsOneDiagnosticNotAnOrderingProblem() {
        let t = TV.tree([
            TV.worker("a", line: 2, deps: [("b", 2)]),
            TV.worker("b", line: 3, deps: [("a", 3)]),
        ])
        #expect(TV.messages(t) == [
            "t.yaml:2:9: dependency cycle: a -> b -> a; no start order can satisfy it: remove one of these depends_on entries",
        ])
    }

    @Test func longerCycleIsReportedWithItsPath() {
        let t = TV.tree([
            TV.worker("a", line: 2, deps: [("c", 2)]),
            TV.worker("b", line: 3, deps: [("a", 3)]),
            TV.worker("c", line: 4, deps: [("b", 4)]),
            TV.worker("d", line: 5, deps: [("c", 5)]),  // depends on the cycle, is not part of it
        ])
        #expect(TV.messages(t) == [
            "t.yaml:2:9: dependency cycle: a -> c -> b -> a; no start order can satisfy it: remove one of these depends_on entries",
        ])
    }

    @Test func cycleThroughASupervisor() {
        let t = TV.tree([
            TV.worker("gateway", line: 2, deps: [("data", 2)]),
            TV.supervisor("data", line: 3, [TV.worker("db", line: 4, deps: [("gateway", 4)])]),
        ])
        #expect(TV.messages(t) == [
            "t.yaml:2:9: dependency cycle: gateway -> data -> db -> gateway (depending on supervisor 'data' means depending on every worker under it); no start order can satisfy it: remove one of these depends_on entries",
        ])
    }

    @Test func oneDiagnosticPerCycle() {
        let t = TV.tree([
            TV.worker("a", line: 2, deps: [("b", 2)]),
            TV.worker("b", line: 3, deps: [("a", 3), ("c", 4)]),
            TV.worker("c", line: 5, deps: [("b", 5)]),
            TV.worker("x", line: 6, deps: [("y", 6)]),
            TV.worker("y", line: 7, deps: [("x", 7)]),
        ])
        #expect(TV.messages(t) == [
            "t.yaml:2:9: dependency cycle: a -> b -> a; no start order can satisfy it: remove one of these depends_on entries",
            "t.yaml:4:9: dependency cycle: b -> c -> b; no start order can satisfy it: remove one of these depends_on entries",
            "t.yaml:6:9: dependency cycle: x -> y -> x; no start order can satisfy it: remove one of these depends_on entries",
        ])
    }

    // MARK: Numbers

    @Test func workerNumbersOutOfRange() {
        let t = TV.tree([
            TV.worker("a", line: 2) { $0.instances = 0 },
            TV.worker("b", line: 3) { $0.instances = 1001 },
            TV.worker("c", line: 4) { $0.readyTimeout = .zero },
            TV.worker("d", line: 5) { $0.shutdown = .timeout(.zero) },
        ])
        #expect(TV.messages(t) == [
            "t.yaml:2:1: instances must be between 1 and 1000, got 0",
            "t.yaml:3:1: instances must be between 1 and 1000, got 1001",
            "t.yaml:4:1: ready_timeout must be longer than 0s, got 0s",
            "t.yaml:5:1: shutdown must be longer than 0s, got 0s (write brutal_kill to kill at once)",
        ])
    }

    @Test func backoffOutOfRange() {
        let t = TV.tree([
            TV.worker("a", line: 2) {
                $0.backoff = BackoffPolicy(initial: .seconds(-1), multiplier: 0.5, max: .seconds(-2),
                                           jitter: 1.5, resetAfter: .zero)
            },
            TV.worker("b", line: 3) { $0.backoff.jitter = -0.1; $0.backoff.multiplier = .nan },
            TV.worker("c", line: 4) { $0.backoff.initial = .seconds(5); $0.backoff.max = .seconds(1) },
        ])
        #expect(TV.messages(t) == [
            "t.yaml:2:1: backoff.initial must not be negative, got -1s",
            "t.yaml:2:1: backoff.multiplier must be a number of at least 1 (1 keeps the delay constant), got 0.5",
            "t.yaml:2:1: backoff.max (-2s) must not be shorter than backoff.initial (-1s)",
            "t.yaml:2:1: backoff.jitter must be between 0 and 1 (a fraction of the delay), got 1.5",
            "t.yaml:2:1: backoff.reset_after must be longer than 0s, got 0s",
            "t.yaml:3:1: backoff.multiplier must be a number of at least 1 (1 keeps the delay constant), got nan",
            "t.yaml:3:1: backoff.jitter must be between 0 and 1 (a fraction of the delay), got -0.1",
            "t.yaml:4:1: backoff.max (1s) must not be shorter than backoff.initial (5s)",
        ])
    }

    @Test func supervisorNumbersAndBackoffOutOfRange() {
        let t = TV.tree([
            TV.supervisor("data", line: 2, [TV.worker("db", line: 3)]) {
                $0.intensity = Intensity(maxRestarts: -1, period: .zero)
                $0.backoff.jitter = 2
            },
        ])
        #expect(TV.messages(t) == [
            "t.yaml:2:1: max_restarts must be 0 or more, got -1",
            "t.yaml:2:1: period must be longer than 0s, got 0s",
            "t.yaml:2:1: backoff.jitter must be between 0 and 1 (a fraction of the delay), got 2.0",
        ])
    }

    @Test func rootIntensityAndTreeIntervals() {
        var t = TV.tree([TV.worker("a", line: 2)],
                        settings: TreeSettings(heartbeatInterval: .zero, sampleInterval: .milliseconds(-5)))
        t.root.intensity.maxRestarts = -3
        #expect(TV.messages(t) == [
            "t.yaml:1:1: heartbeat_interval must be longer than 0s, got 0s",
            "t.yaml:1:1: sample_interval must be longer than 0s, got -5ms",
            "t.yaml:1:1: max_restarts must be 0 or more, got -3",
        ])
    }

    @Test func zeroMaxRestartsIsAllowed() {
        var t = TV.tree([TV.worker("a", line: 2)])
        t.root.intensity.maxRestarts = 0
        #expect(TopologyValidator.validate(t) == [])
    }

    // MARK: argv, env, working directory

    @Test func argvMustNameAProgram() {
        let t = TV.tree([
            TV.worker("a", line: 2, argv: []),
            TV.worker("b", line: 3, argv: ["", "--flag"]),
        ])
        #expect(TV.messages(t) == [
            "t.yaml:2:1: worker 'a' has no argv: write the program to run and its arguments, e.g. argv: [a, --flag]",
            "t.yaml:3:1: argv[0] is empty: it must name the program to run",
        ])
    }

    @Test func envNamesAndWorkingDirectory() {
        let t = TV.tree([
            TV.worker("a", line: 2) {
                $0.env = ["GOOD": "1", "BAD=NAME": "2", "": "3"]
                $0.workingDirectory = ""
            },
        ])
        #expect(TV.messages(t) == [
            "t.yaml:2:1: invalid environment variable name '': it must not be empty or contain '='",
            "t.yaml:2:1: invalid environment variable name 'BAD=NAME': it must not be empty or contain '='",
            "t.yaml:2:1: working_directory is empty: leave it out to run in vigil's working directory",
        ])
    }

    // MARK: Roles and structure

    @Test func atMostOneGuardianAndNotAPool() {
        let t = TV.tree([
            TV.worker("g1", line: 2) { $0.role = .guardian },
            TV.supervisor("s", line: 3, [
                TV.worker("g2", line: 4) { $0.role = .guardian; $0.instances = 2 },
            ]),
            TV.worker("p1", line: 5) { $0.role = .predictor },
            TV.worker("p2", line: 6) { $0.role = .predictor },
        ])
        #expect(TV.messages(t) == [
            "t.yaml:4:1: only one worker may have role guardian, and 'g1' already has it (at t.yaml:2:1)",
            "t.yaml:4:1: the guardian 'g2' must not be a pool: vigil asks exactly one guardian, remove instances: 2",
        ])
    }

    @Test func overlapHandoffIsRefusedWhereTwoInstancesAreNeverSafe() {
        let t = TV.tree([
            TV.worker("guardian", line: 2) { $0.role = .guardian; $0.handoff = .overlap },
            TV.worker("gw", line: 3) { $0.role = .gateway; $0.handoff = .overlap },
            TV.worker("gw2", line: 4) { $0.role = .gateway },
            TV.worker("runner", line: 5) { $0.instances = 3; $0.handoff = .overlap },
            TV.worker("cache", line: 6) { $0.readiness = .exec; $0.handoff = .overlap },
            TV.worker("ml", line: 7) { $0.role = .predictor; $0.handoff = .overlap },
        ])
        #expect(TV.messages(t) == [
            "t.yaml:2:1: worker 'guardian' has role guardian and cannot hand off with overlap: vigil asks exactly one guardian, and two at once would both answer; use handoff: stop_first",
            "t.yaml:3:1: worker 'gw' has role gateway and cannot hand off with overlap: a gateway holds the exchange session, and two sessions at once could both trade; use handoff: stop_first",
        ])
    }

    @Test func supervisorsNeedChildren() {
        let t = TV.tree([TV.supervisor("empty", line: 2, [])])
        #expect(TV.messages(t) == [
            "t.yaml:2:1: supervisor 'empty' has no children: list its workers and supervisors under children:",
        ])
        #expect(TV.messages(TV.tree([])) == [
            "t.yaml:1:1: the root supervisor 'trading' has no children: list its workers and supervisors under children:",
        ])
    }

    // MARK: Findings, helpers

    @Test func findingsNameTheSpecAndField() {
        let t = TV.tree([
            TV.worker("a", line: 2) { $0.backoff.jitter = 3 },
            TV.worker("b", line: 3, deps: [("zzz", 3)]),
        ])
        let f = TopologyValidator.findings(in: t)
        #expect(f.map(\.field) == ["backoff.jitter", nil])
        #expect(f.map(\.spec) == [TV.at(2), TV.at(3)])
    }

    @Test func everyProblemIsReported() {
        let t = TV.tree([
            TV.worker("a", line: 2, argv: [], deps: [("nope", 2)]) { $0.instances = 0 },
            TV.worker("a", line: 3) { $0.readyTimeout = .zero },
        ])
        #expect(TopologyValidator.validate(t).count == 5)
    }

    @Test func editDistanceAndClosest() {
        #expect(TopologyValidator.editDistance("kitten", "sitting") == 3)
        #expect(TopologyValidator.editDistance("", "abc") == 3)
        #expect(TopologyValidator.closest(to: "gatway", in: ["db", "gateway", "gate"]) == "gateway")
        #expect(TopologyValidator.closest(to: "ab", in: ["xy", "abc"]) == "abc")
        #expect(TopologyValidator.closest(to: "totally-different", in: ["db", "gateway"]) == nil)
        #expect(TopologyValidator.closest(to: "cache", in: ["db", "cache-warmer"]) == "cache-warmer")
        #expect(TopologyValidator.closest(to: "cache", in: ["cache-warmer-a", "cache-warmer-b"]) == nil)  // ambiguous
        #expect(TopologyValidator.closest(to: "ca", in: ["cache-warmer"]) == nil)  // too short to guess
        #expect(TopologyValidator.isValidName("db-watchdog_2"))
        #expect(!TopologyValidator.isValidName("db.1"))
        #expect(!TopologyValidator.isValidName("é"))
    }
}

@Suite("Topology validation at scale")
struct TopologyValidationScaleTests {
    /// 5,000 workers in 50 supervisors, each depending on the one before it: valid, and
    /// checked in well under a second. A single dependency back to the last one closes a
    /// 5,000-long cycle, reported once.
    @Test func thousandsOfWorkersWithAChainOfDependencies() {
        var children: [ChildSpec] = []
        var line = 2
        var previous: String?
        for s in 0..<50 {
            var workers: [ChildSpec] = []
            let sline = line
            line += 1
            for i in 0..<100 {
                let name = "w\(s)-\(i)"
                var w = WorkerSpec(name: name, argv: ["/bin/true"], location: TopologyValidationScaleTests.at(line))
                if let previous { w.dependsOn = [Dependency(previous, at: TopologyValidationScaleTests.at(line, 9))] }
                workers.append(.worker(w))
                previous = name
                line += 1
            }
            children.append(.supervisor(SupervisorSpec(name: "s\(s)", children: workers, location: TopologyValidationScaleTests.at(sline))))
        }
        var t = Topology(root: SupervisorSpec(name: "root", children: children, location: TopologyValidationScaleTests.at(1)))
        #expect(TopologyValidator.validate(t) == [])

        guard case .supervisor(var first) = t.root.children[0], case .worker(var w) = first.children[0] else { return }
        w.dependsOn = [Dependency("w49-99", at: TopologyValidationScaleTests.at(3, 9))]
        first.children[0] = .worker(w)
        t.root.children[0] = .supervisor(first)
        let d = TopologyValidator.validate(t)
        #expect(d.count == 1)
        #expect(d.first?.message.hasPrefix("dependency cycle: w0-0 -> w49-99 -> w49-98 -> ") == true)
        #expect(d.first?.message.contains(" -> w0-1 -> w0-0; no start order can satisfy it") == true)
    }

    static func at(_ line: Int, _ column: Int = 1) -> VigilCore.SourceLocation {
        VigilCore.SourceLocation(file: "big.yaml", line: line, column: column)
    }
}
