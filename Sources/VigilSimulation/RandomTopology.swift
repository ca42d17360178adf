import VigilCore

/// Random, valid topologies of a given size for the simulation: nested supervisors of every
/// strategy, pools, every restart type and shutdown, `depends_on` edges (to earlier
/// permanent workers and pools, near and far), one guardian, guarded workers, gateways,
/// `safe_mode: stop`, overlapping handoffs, watchdogs and exec readiness.
public enum RandomTopology {
    /// A topology of about `children` nodes below the root (pool instances counted one by
    /// one), drawn from `rng`. Checked with `TopologyValidator`: the simulation never runs
    /// a tree vigil would refuse to load.
    public static func make(children: Int, rng: inout SimulationRandom) -> Topology {
        var b = Builder(rng: rng)
        var root = b.supervisor(budget: max(children, 2), depth: 0)
        root.name = "root"
        root.intensity = Intensity(maxRestarts: 20 + b.rng.below(80), period: .seconds(10))
        rng = b.rng
        let topology = Topology(root: root, settings: TreeSettings(guardianTimeout: .seconds(2)), file: "<simulation>")
        let problems = TopologyValidator.validate(topology)
        precondition(problems.isEmpty, "the random topology is invalid: \(problems.prefix(3))")
        return topology
    }

    private struct Builder {
        var rng: SimulationRandom
        var counter = 0
        var hasGuardian = false
        /// Names a later worker may depend on: permanent workers and pools, in declaration order.
        var targets: [String] = []

        init(rng: SimulationRandom) { self.rng = rng }

        mutating func name(_ prefix: String) -> String {
            counter += 1
            return "\(prefix)\(counter)"
        }

        /// A supervisor with `budget` nodes below it.
        mutating func supervisor(budget: Int, depth: Int) -> SupervisorSpec {
            let me = name("s")
            var children: [ChildSpec] = []
            var left = budget
            while left > 0 {
                if left > 30 && (children.count >= 6 || rng.chance(30)) {
                    // Most of a large budget goes to sub-supervisors, so fan-out stays small
                    // and the tree grows deep (about log(children) levels).
                    let share = left <= 60 ? left : max(20, left / (2 + rng.below(4)))
                    children.append(.supervisor(supervisor(budget: share - 1, depth: depth + 1)))
                    left -= share
                } else {
                    let w = worker(maxInstances: left)
                    children.append(.worker(w))
                    left -= w.instances
                }
            }
            let strategy = rng.pick(Strategy.allCases)
            return SupervisorSpec(name: me, strategy: strategy,
                                  intensity: Intensity(maxRestarts: 3 + rng.below(8), period: .seconds(Int64(5 + rng.below(26)))),
                                  backoff: BackoffPolicy(initial: .milliseconds(100), max: .seconds(5), jitter: 0.3, resetAfter: .seconds(20)),
                                  children: children)
        }

        mutating func worker(maxInstances: Int) -> WorkerSpec {
            let me = name("w")
            var w = WorkerSpec(name: me, argv: ["/bin/true"])
            let isGuardian = !hasGuardian && (counter > 3 || maxInstances == 1) && rng.chance(50)
            if isGuardian {
                hasGuardian = true
                w.role = .guardian
            } else {
                if maxInstances > 1 && rng.chance(10) { w.instances = min(maxInstances, 2 + rng.below(6)) }
                w.restart = rng.below(10) < 7 ? .permanent : rng.chance(66) ? .transient : .temporary
                if hasGuardian && rng.chance(6) { w.guarded = true }
                if rng.chance(5) { w.safeMode = .stop }
                if rng.chance(2) { w.role = .gateway }
                if w.role == nil && rng.chance(30) { w.handoff = .overlap }
            }
            switch rng.below(20) {
            case 0..<10: w.shutdown = .timeout(.seconds(1))
            case 10..<15: w.shutdown = .brutalKill
            case 15..<19: w.shutdown = .timeout(.milliseconds(200))
            default: w.shutdown = .infinity
            }
            w.readyTimeout = .seconds(Int64(2 + rng.below(9)))
            w.backoff = BackoffPolicy(initial: .milliseconds(50), max: .seconds(2), jitter: 0.3, resetAfter: .seconds(10))
            w.readiness = rng.below(20) < 17 ? .channel : rng.chance(70) ? .exec : .notify
            if rng.chance(5) { w.watchdog = .seconds(Int64(5 + rng.below(26))) }
            if !targets.isEmpty && rng.chance(20) {
                var deps: [String] = []
                for _ in 0..<(1 + rng.below(2)) {
                    // Half near (likely a sibling), half anywhere earlier in the tree.
                    let t = rng.chance(50) ? targets[max(0, targets.count - 1 - rng.below(8))] : rng.pick(targets)
                    if !deps.contains(t) { deps.append(t) }
                }
                w.dependsOn = deps.map { Dependency($0) }
            }
            if w.restart == .permanent && w.role != .guardian { targets.append(me) }
            return w
        }
    }
}
