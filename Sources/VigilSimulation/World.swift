/// The simulated shell's processes: what exists outside the core. A process is created
/// when the core emits `.spawn` (so a spawn in flight already counts as a live instance),
/// reported to the core later, and gone when the simulation delivers its exit.
struct FakeProcess {
    var node: Int
    var incarnation: UInt64
    /// Ignores SIGTERM (only SIGKILL or SIGABRT ends it): makes shutdown timeouts fire.
    var ignoresTerm: Bool
    /// The spawn was reported to the core (`.spawned`); before that it has no pid to vigil.
    var reported = false
}

struct World {
    private(set) var processes: [Int32: FakeProcess] = [:]
    /// Reported processes, for crashes, heartbeats and protocol violations.
    var live = PickableSet<Int32>()
    /// Reported processes never told READY.
    var unready = PickableSet<Int32>()
    /// Processes that received a signal they die of, waiting to exit.
    var dying = PickableSet<Int32>()
    /// Spawns not reported yet, in order.
    private var reports: [Int32] = []
    private var reportHead = 0
    /// The processes of each node (more than one only during an overlapping handoff).
    private(set) var byNode: [[Int32]]
    /// Processes in each node's subtree (the node itself included).
    private(set) var subtreeLive: [Int]
    private let parent: [Int]
    private var nextPID: Int32 = 100
    private(set) var total = 0

    init(model: TreeModel) {
        byNode = Array(repeating: [], count: model.count)
        subtreeLive = Array(repeating: 0, count: model.count)
        parent = model.parent
    }

    var hasReports: Bool { reportHead < reports.count }
    var isEmpty: Bool { total == 0 }

    subscript(pid: Int32) -> FakeProcess? { processes[pid] }

    mutating func create(node: Int, incarnation: UInt64, ignoresTerm: Bool) -> Int32 {
        nextPID = nextPID == Int32.max ? 100 : nextPID + 1
        processes[nextPID] = FakeProcess(node: node, incarnation: incarnation, ignoresTerm: ignoresTerm)
        byNode[node].append(nextPID)
        reports.append(nextPID)
        total += 1
        var a = node
        while a >= 0 { subtreeLive[a] += 1; a = parent[a] }
        return nextPID
    }

    /// The next spawn to report, oldest first.
    mutating func nextReport() -> Int32? {
        while reportHead < reports.count {
            let pid = reports[reportHead]
            reportHead += 1
            if reportHead > 4096 && reportHead * 2 > reports.count {
                reports.removeFirst(reportHead)
                reportHead = 0
            }
            if processes[pid] != nil { return pid }
        }
        return nil
    }

    mutating func markReported(_ pid: Int32) {
        processes[pid]?.reported = true
        live.insert(pid)
        unready.insert(pid)
    }

    mutating func remove(_ pid: Int32) {
        guard let p = processes.removeValue(forKey: pid) else { return }
        live.remove(pid)
        unready.remove(pid)
        dying.remove(pid)
        byNode[p.node].removeAll { $0 == pid }
        total -= 1
        var a = p.node
        while a >= 0 { subtreeLive[a] -= 1; a = parent[a] }
    }

    /// The live process of `node` running `incarnation`, if any.
    func pid(of node: Int, incarnation: UInt64) -> Int32? {
        byNode[node].first { processes[$0]?.incarnation == incarnation }
    }
}
