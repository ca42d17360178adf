import Testing
@testable import VigilCore

/// Drives a `SupervisionTree` like the shell would, with fake pids and a hand-moved clock:
/// spawn effects succeed at once (or fail, when told), signals are recorded, and a test
/// decides when each process exits.
struct Harness {
    var tree: SupervisionTree
    var now = Instant(nanoseconds: 1_000_000_000)
    var nextPID: Int32 = 100
    /// Live fake processes: a node has one, or two during an overlapping handoff.
    var processes: [Int32: (id: NodeID, incarnation: UInt64)] = [:]
    /// Every effect seen, in order.
    var log: [Effect] = []
    var spawnOrder: [String] = []
    var signals: [(String, Int32)] = []
    /// The same signals by pid, so each signalled process can exit as itself.
    var signalledPIDs: [(pid: Int32, signal: Int32)] = []
    var failSpawns: Set<String> = []
    var readyOnSpawn = false

    init(_ topology: Topology, seed: UInt64 = 1) {
        tree = SupervisionTree(topology: topology, random: SplitMix64(seed: seed))
    }

    init(root: SupervisorSpec, seed: UInt64 = 1) {
        self.init(Topology(root: root), seed: seed)
    }

    func id(_ name: String) -> NodeID { tree.resolve(name)[0] }
    func pid(_ name: String) -> Int32? { tree.pid(of: id(name)) }
    func state(_ name: String) -> String { tree.status()[id(name).index].state }

    mutating func send(_ event: Event) {
        if case .exited(let id, let inc, _) = event {
            for (pid, p) in processes where p.id == id && p.incarnation == inc { processes.removeValue(forKey: pid) }
        }
        apply(tree.handle(event, at: now))
    }

    /// The live fake pids of a node, oldest first.
    func pids(of name: String) -> [Int32] {
        processes.filter { $0.value.id == id(name) }.keys.sorted()
    }

    mutating func command(_ c: Command) -> CommandError? {
        switch tree.handle(c, at: now) {
        case .success(let effects): apply(effects); return nil
        case .failure(let e): return e
        }
    }

    mutating func apply(_ effects: [Effect]) {
        var follow: [Event] = []
        for e in effects {
            log.append(e)
            switch e {
            case .spawn(let id, let inc):
                let name = tree.name(of: id)
                // A spawn only ever targets a child whose supervisor is active with no
                // termination in progress, and never one that still has a process.
                if let p = tree.nodes[id.index].parent {
                    #expect(tree.nodes[p.index].state == .running && tree.nodes[p.index].plan == nil,
                            "\(name) spawned under \(tree.name(of: p)) in state \(tree.nodes[p.index].state)")
                }
                // ...and a node has at most two processes: the second only for a handoff.
                let alive = processes.values.filter { $0.id == id }.count
                if tree.nodes[id.index].overlap?.process.incarnation == inc {
                    #expect(alive == 1, "\(name)'s handoff spawned beside \(alive) processes")
                } else {
                    #expect(alive == 0, "\(name) spawned while alive")
                }
                spawnOrder.append(name)
                if failSpawns.contains(name) {
                    follow.append(.spawnFailed(id, incarnation: inc, errno: 2))
                } else {
                    nextPID += 1
                    processes[nextPID] = (id, inc)
                    follow.append(.spawned(id, incarnation: inc, pid: nextPID))
                    if readyOnSpawn { follow.append(.ready(id, incarnation: inc)) }
                }
            case .signal(let id, let pid, let sig):
                #expect(processes[pid]?.id == id, "signal to a pid that is not \(tree.name(of: id))'s")
                signals.append((tree.name(of: id), sig))
                signalledPIDs.append((pid, sig))
            default: break
            }
        }
        for ev in follow { send(ev) }
    }

    mutating func start(ready: Bool = true) {
        readyOnSpawn = ready
        send(.start)
    }

    mutating func ready(_ name: String) {
        let i = id(name)
        send(.ready(i, incarnation: tree.incarnation(of: i)))
    }

    /// The named child's process group is gone with `status`.
    mutating func exit(_ name: String, _ status: ProcessExit = .signaled(9)) {
        let i = id(name)
        send(.exited(i, incarnation: tree.incarnation(of: i), status))
    }

    /// Every process that has been signalled exits (as it would after SIGTERM).
    mutating func exitSignalled() {
        signals.removeAll()
        while let (pid, sig) = signalledPIDs.first {
            signalledPIDs.removeFirst()
            guard let p = processes[pid] else { continue }
            send(.exited(p.id, incarnation: p.incarnation, .signaled(sig)))
        }
    }

    /// The fake process `pid` (current or a handoff's side process) exits with `status`.
    mutating func exit(pid: Int32, _ status: ProcessExit = .signaled(9)) {
        guard let p = processes[pid] else { Issue.record("no live process \(pid)"); return }
        send(.exited(p.id, incarnation: p.incarnation, status))
    }

    /// The fake process `pid` says READY.
    mutating func ready(pid: Int32) {
        guard let p = processes[pid] else { Issue.record("no live process \(pid)"); return }
        send(.ready(p.id, incarnation: p.incarnation))
    }

    mutating func advance(_ d: Duration) {
        now = now + d
        send(.tick)
    }

    func records(_ kind: RecordKind) -> [Record] {
        log.compactMap { if case .record(let r) = $0, r.kind == kind { r } else { nil } }
    }

    var finished: TreeOutcome? {
        for e in log { if case .treeFinished(let o) = e { return o } }
        return nil
    }

    mutating func clearLogs() {
        log.removeAll()
        spawnOrder.removeAll()
        signals.removeAll()
        signalledPIDs.removeAll()
    }
}

func worker(_ name: String, restart: RestartType = .permanent, shutdown: Shutdown = .timeout(.seconds(5)),
            dependsOn: [String] = [], instances: Int = 1, readyTimeout: Duration = .seconds(10),
            backoff: BackoffPolicy = BackoffPolicy(jitter: 0)) -> ChildSpec {
    .worker(WorkerSpec(name: name, argv: ["/bin/true"], restart: restart, shutdown: shutdown,
                       dependsOn: dependsOn.map { Dependency($0) }, readyTimeout: readyTimeout,
                       backoff: backoff, instances: instances))
}

func supervisor(_ name: String, _ strategy: Strategy, max: Int = 5, period: Duration = .seconds(10),
                _ children: [ChildSpec]) -> SupervisorSpec {
    SupervisorSpec(name: name, strategy: strategy, intensity: Intensity(maxRestarts: max, period: period),
                   backoff: BackoffPolicy(jitter: 0), children: children)
}

func supervisor(_ name: String, max: Int = 5, period: Duration = .seconds(10), _ children: [ChildSpec]) -> SupervisorSpec {
    supervisor(name, .oneForOne, max: max, period: period, children)
}
