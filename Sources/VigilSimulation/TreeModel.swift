import VigilCore

/// The checker's own picture of the tree, built from the topology alone (not from the
/// core's internals), numbered the way the core numbers nodes: depth-first declaration
/// order, a pool's instances one after another. The invariants are judged against this.
struct TreeModel {
    var names: [String] = []
    var parent: [Int] = []            // -1 for the root
    var children: [[Int]] = []
    /// Position of each node among its parent's children.
    var position: [Int] = []
    var isSupervisor: [Bool] = []
    /// A pool's number for its instances (-1 otherwise): instances stop together.
    var pool: [Int] = []
    var worker: [WorkerSpec?] = []
    var intensity: [Intensity?] = []
    /// Node indices each worker depends on (a pool name stands for all its instances).
    var dependencies: [[Int]] = []
    /// The reverse of `dependencies`.
    var dependents: [[Int]] = []
    var index: [String: Int] = [:]
    var guardian: Int?
    var gateways: [Int] = []
    /// Workers with `safe_mode: stop` (taken down outside any plan when safe mode starts).
    var stoppedBySafeMode: [Int] = []
    var workers: [Int] = []

    var count: Int { names.count }

    init(_ topology: Topology) {
        var pools = 0
        var byName: [String: [Int]] = [:]
        func add(_ spec: ChildSpec, parent p: Int) {
            switch spec {
            case .worker(let w):
                let first = names.count
                let poolID = w.instances > 1 ? pools : -1
                if w.instances > 1 { pools += 1 }
                for i in 0..<w.instances {
                    append(w.instances > 1 ? "\(w.name).\(i + 1)" : w.name, parent: p, supervisor: false, pool: poolID)
                    worker[names.count - 1] = w
                }
                byName[w.name] = Array(first..<names.count)
            case .supervisor(let s):
                let me = names.count
                append(s.name, parent: p, supervisor: true, pool: -1)
                intensity[me] = s.intensity
                byName[s.name] = [me]
                for c in s.children { add(c, parent: me) }
            }
        }
        add(.supervisor(topology.root), parent: -1)
        dependencies = Array(repeating: [], count: names.count)
        dependents = Array(repeating: [], count: names.count)
        for i in 0..<names.count {
            guard let w = worker[i] else { continue }
            workers.append(i)
            if w.role == .guardian { guardian = i }
            if w.role == .gateway { gateways.append(i) }
            if w.safeMode == .stop { stoppedBySafeMode.append(i) }
            dependencies[i] = w.dependsOn.flatMap { byName[$0.name] ?? [] }
            for d in dependencies[i] { dependents[d].append(i) }
        }
    }

    private mutating func append(_ name: String, parent p: Int, supervisor: Bool, pool poolID: Int) {
        let me = names.count
        names.append(name)
        parent.append(p)
        children.append([])
        position.append(p < 0 ? 0 : children[p].count)
        if p >= 0 { children[p].append(me) }
        isSupervisor.append(supervisor)
        pool.append(poolID)
        worker.append(nil)
        intensity.append(nil)
        index[name] = me
    }
}
