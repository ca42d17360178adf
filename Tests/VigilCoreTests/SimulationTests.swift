import Testing
@testable import VigilCore

/// Deterministic simulation in the TigerBeetle/FoundationDB manner: a seeded random tree
/// takes a seeded random storm of crashes, readiness, slow exits, operator commands and
/// clock jumps, and after every step the invariants a supervisor must never break are
/// checked. Every seed is reproducible.
@Suite("Simulation")
struct SimulationTests {
    struct Rng: RandomNumberGenerator {
        var inner: SplitMix64
        mutating func next() -> UInt64 { inner.next() }
        mutating func below(_ n: Int) -> Int { Int(next() % UInt64(n)) }
    }

    static func randomTree(_ rng: inout Rng, depth: Int, counter: inout Int) -> SupervisorSpec {
        var children: [ChildSpec] = []
        for _ in 0..<(1 + rng.below(4)) {
            counter += 1
            if depth < 3 && rng.below(4) == 0 {
                children.append(.supervisor(randomTree(&rng, depth: depth + 1, counter: &counter)))
            } else {
                let restart = [RestartType.permanent, .permanent, .transient, .temporary][rng.below(4)]
                let shutdown = [Shutdown.timeout(.seconds(1)), .brutalKill, .timeout(.milliseconds(200))][rng.below(3)]
                var spec = worker("w\(counter)", restart: restart, shutdown: shutdown,
                                  instances: rng.below(5) == 0 ? 3 : 1, readyTimeout: .seconds(2),
                                  backoff: BackoffPolicy(initial: .milliseconds(50), max: .seconds(2), jitter: 0.3))
                if case .worker(var w) = spec, rng.below(2) == 0 {
                    w.handoff = .overlap
                    spec = .worker(w)
                }
                children.append(spec)
            }
        }
        counter += 1
        let strategy = Strategy.allCases[rng.below(3)]
        return supervisor("s\(counter)", strategy, max: 3 + rng.below(5), period: .seconds(5), children)
    }

    @Test(arguments: 0..<40)
    func invariantsHoldUnderRandomFaults(seed: UInt64) {
        var rng = Rng(inner: SplitMix64(seed: seed &* 7919 &+ 1))
        var counter = 0
        let root = Self.randomTree(&rng, depth: 0, counter: &counter)
        var h = Harness(root: SupervisorSpec(name: "root", strategy: root.strategy,
                                             intensity: Intensity(maxRestarts: 1000, period: .seconds(1)),
                                             children: root.children), seed: seed)
        h.start(ready: false)
        for _ in 0..<600 {
            let status = h.tree.status()
            let alive = status.filter { $0.pid != nil }
            switch rng.below(10) {
            case 0, 1, 2:
                let exit = [ProcessExit.signaled(9), .exited(1), .exited(0)][rng.below(3)]
                if rng.below(3) == 0, let pid = h.processes.keys.sorted().randomElement(using: &rng) {
                    h.exit(pid: pid, exit)   // any process, a handoff's side process included
                } else if let n = alive.randomElement(using: &rng) {
                    h.exit(n.name, exit)
                }
            case 3, 4:
                let incoming = h.tree.nodes.compactMap { n -> Int32? in
                    if case .incoming(let p)? = n.overlap { p.pid } else { nil }
                }
                if rng.below(2) == 0, let pid = incoming.randomElement(using: &rng) {
                    h.ready(pid: pid)
                } else if let n = status.filter({ $0.state == "starting" }).randomElement(using: &rng) {
                    h.ready(n.name)
                }
            case 5:
                h.exitSignalled()
            case 6:
                h.advance(.milliseconds(Int64(rng.below(3000))))
            case 7:
                if let n = status.filter({ !$0.isSupervisor && $0.id != h.tree.root }).randomElement(using: &rng) {
                    let cmd: [Command] = [.stop(n.name), .start(n.name), .restart(n.name), .kill(n.name, signal: 15),
                                          .handoff(n.name), .handoff(n.name)]
                    _ = h.command(cmd[rng.below(6)])
                }
            default:
                for n in status where n.state == "starting" { h.ready(n.name) }
            }
            checkInvariants(h)
            if h.finished != nil { break }
        }
        h.send(.shutdown)
        for _ in 0..<200 where h.finished == nil {
            h.exitSignalled()
            h.advance(.seconds(2))
        }
        #expect(h.finished != nil, "seed \(seed): the tree never finished stopping")
        #expect(h.tree.status().allSatisfy { $0.pid == nil }, "seed \(seed): a process outlived the tree")
        #expect(h.processes.isEmpty, "seed \(seed): \(h.processes.count) process(es) outlived the tree")
    }

    func checkInvariants(_ h: Harness) {
        // The idle index `reconcile` walks instead of every node is exactly the idle nodes,
        // and a node is parked (skipped until what blocks it changes) only while it is idle
        // and its supervisor is not active or one of its dependencies is not READY.
        let nodes = h.tree.nodes
        #expect(nodes.idleIndices == nodes.indices.filter { nodes[$0].state == .idle })
        for i in nodes.parkedIndices {
            let parentActive = nodes[i].parent.map { nodes[$0.index].state == .running && nodes[$0.index].plan == nil } ?? true
            #expect(nodes[i].state == .idle && (!parentActive || !nodes[i].dependencies.allSatisfy { h.tree.isReady($0) }),
                    "\(nodes[i].name) is parked but could start")
        }
        var live = Set<Int32>()
        // A worker never has more than two processes, and two only during a handoff.
        var perNode: [NodeID: Int] = [:]
        for p in h.processes.values { perNode[p.id, default: 0] += 1 }
        for (id, count) in perNode {
            #expect(count <= (h.tree.nodes[id.index].overlap == nil ? 1 : 2),
                    "\(h.tree.name(of: id)) has \(count) processes (overlap: \(String(describing: h.tree.nodes[id.index].overlap)))")
        }
        for n in h.tree.nodes {
            if let pid = n.pid {
                #expect(n.isAlive, "\(n.name) has pid \(pid) but is \(n.state)")
                #expect(!live.contains(pid))
                live.insert(pid)
            }
            if n.isAlive && !n.isSupervisor, let p = n.parent {
                // A live worker's parent is active or terminating it.
                let parent = h.tree.nodes[p.index]
                #expect(parent.state == .running || parent.plan != nil || h.tree.isShuttingDown
                        || { if case .stopping = parent.state { true } else { false } }(),
                        "\(n.name) is alive under \(parent.name) in state \(parent.state)")
            }
        }
    }
}
