import VigilCore

/// Deterministic simulation of the pure core, in the TigerBeetle/FoundationDB manner: a
/// seeded random tree of `children` nodes takes `events` seeded random events (spawn
/// reports and failures, READY, crashes, exits after signals, clock jumps that fire
/// timers, heartbeats, operator commands, guardian questions answered or left to time out,
/// guardian orders, safe mode, protocol violations, notify extensions, and now and then a
/// shutdown, after which a fresh tree starts), and after every event the invariants in
/// `Simulation+Invariants.swift` are checked incrementally, in time independent of the
/// tree's size. One seed is one run: a failing seed reproduces exactly.
public struct Simulation {
    public let seed: UInt64
    public let eventBudget: Int
    public let topology: Topology
    var rng: SimulationRandom
    let model: TreeModel
    var tree: SupervisionTree
    var world: World
    var now = Instant(nanoseconds: 1_000_000_000)
    var digest = Digest()
    public internal(set) var stats = SimulationStats()

    /// Events delivered so far (the step a violation is reported at).
    public var step: Int { stats.events }
    /// Questions the guardian was asked and has not answered, in order.
    var questions: [UInt64] = []
    /// When (in events) the current tree is shut down.
    var shutdownAt = 0
    /// Set once `.shutdown` is sent: the events by which the tree must be down.
    var shutdownDeadline: Int?
    var finished = false
    /// The parent of the last crash: crashes cluster there, so intensity is reached.
    var hotSupervisor = -1
    /// Nodes an operator stopped or the guardian denied: most `start` commands pick one of
    /// these, as an operator would, so held nodes (and what waits for them) do not pile up.
    var heldDown = PickableSet<Int>()
    /// From this event on, every event and its effects are passed to `trace` (to read what
    /// led to a violation: `vigil-sim --trace-from STEP`).
    public var traceFrom = Int.max
    public var trace: (String) -> Void = { _ in }
    var tracedEvent = ""

    // Checker state (see Simulation+Invariants.swift), one slot per node.
    var decisions: [[Instant]]
    var decisionActivation: [Int]
    var readyIncarnation: [UInt64]
    var nonPlanIncarnation: [UInt64]
    var safeModeEntriesAtSpawn: [Int]
    var safeModeEntries = 0
    var verdictNodes: [Int] = []
    /// Supervisors mid-termination when the shutdown began: above them, what they
    /// terminate need not follow the shutdown's order (their cascade was already going).
    var terminatingAtShutdown: Set<Int> = []

    public init(seed: UInt64, children: Int, events: Int) {
        self.seed = seed
        eventBudget = events
        rng = SimulationRandom(seed: seed)
        topology = RandomTopology.make(children: children, rng: &rng)
        model = TreeModel(topology)
        tree = SupervisionTree(topology: topology, random: SplitMix64(seed: rng.derivedSeed()))
        world = World(model: model)
        decisions = Array(repeating: [], count: model.count)
        decisionActivation = Array(repeating: -1, count: model.count)
        readyIncarnation = Array(repeating: 0, count: model.count)
        nonPlanIncarnation = Array(repeating: 0, count: model.count)
        safeModeEntriesAtSpawn = Array(repeating: 0, count: model.count)
        for i in 0..<model.count {
            precondition(tree.name(of: NodeID(i)) == model.names[i], "the model numbers node \(i) differently from the core")
        }
    }

    /// Nodes in the tree, the root included.
    public var nodeCount: Int { model.count }
    /// The digest of every event and effect so far.
    public var fingerprint: UInt64 { digest.value }

    /// Runs the whole budget; `progress` is called every `progressEvery` events.
    public mutating func run(progressEvery: Int = 0, _ progress: (SimulationStats) -> Void = { _ in }) throws(Violation) {
        stats.epochs = 1
        scheduleShutdown()
        try deliver(.start)
        while stats.events < eventBudget {
            try stepOnce()
            if progressEvery > 0 && stats.events % progressEvery == 0 { progress(stats) }
        }
    }

    /// One event, chosen at random among what is possible now.
    mutating func stepOnce() throws(Violation) {
        if finished {
            startNewTree()
            try deliver(.start)
            return
        }
        if shutdownDeadline == nil && stats.events >= shutdownAt {
            terminatingAtShutdown = Set(model.children.indices.filter { model.isSupervisor[$0] && tree.isTerminatingChildren(NodeID($0)) })
            shutdownDeadline = stats.events + 40 * max(world.total, 100) + 10_000
            stats.shutdowns += 1
            try deliver(.shutdown)
            return
        }
        if let deadline = shutdownDeadline, stats.events > deadline {
            throw violation("liveness", "the tree did not finish stopping within \(deadline) events (\(world.total) processes left)")
        }
        if world.hasReports && rng.below(100) < (shutdownDeadline == nil ? 35 : 25), let pid = world.nextReport() {
            try report(pid)
            return
        }
        let r = rng.below(1000)
        if shutdownDeadline != nil {
            // Stopping: mostly the exits the shutdown waits for, and time for its timeouts.
            switch r {
            case 0..<550: if try exitDying() { return }
            case 550..<700: if try ready() { return }
            case 700..<750: if try crash() { return }
            default: break
            }
            try tick()
            return
        }
        switch r {
        case 0..<240: if try ready() { return }
        case 240..<420: if try exitDying() { return }
        case 420..<520: if try crash() { return }
        case 520..<640: break  // a tick, below
        case 640..<700: if try heartbeat() { return }
        case 700..<760: if try command() { return }
        case 760..<840: if try answer() { return }
        case 840..<852: if try guardianOrder() { return }
        case 852..<860: if try operatorSafeModeOrLiquidation() { return }
        case 860..<872: if try protocolViolation() { return }
        case 872..<890: if try notifyExtra() { return }
        default: if try ready() { return }
        }
        if world.hasReports, let pid = world.nextReport() { try report(pid); return }
        try tick()
    }

    /// The next tree's shutdown comes after a third to two thirds of the budget, so a run
    /// has a few trees and a few shutdowns.
    mutating func scheduleShutdown() {
        let third = max(eventBudget / 3, 1)
        shutdownAt = stats.events + third + rng.below(third)
    }

    mutating func startNewTree() {
        precondition(world.isEmpty)
        tree = SupervisionTree(topology: topology, random: SplitMix64(seed: rng.derivedSeed()))
        world = World(model: model)
        for i in 0..<model.count {
            decisions[i].removeAll()
            decisionActivation[i] = -1
            readyIncarnation[i] = 0
            nonPlanIncarnation[i] = 0
            safeModeEntriesAtSpawn[i] = 0
        }
        safeModeEntries = 0
        questions.removeAll()
        heldDown.removeAll()
        shutdownDeadline = nil
        finished = false
        stats.epochs += 1
        scheduleShutdown()
    }

    // MARK: Actions (each delivers one event and returns true, or returns false if impossible)

    mutating func report(_ pid: Int32) throws(Violation) {
        guard let p = world[pid] else { return }
        if rng.chance(3) {
            world.remove(pid)
            try deliver(.spawnFailed(NodeID(p.node), incarnation: p.incarnation, errno: 2))
        } else {
            world.markReported(pid)
            try deliver(.spawned(NodeID(p.node), incarnation: p.incarnation, pid: pid))
        }
    }

    mutating func ready() throws(Violation) -> Bool {
        guard let pid = world.unready.random(using: &rng), let p = world[pid] else { return false }
        world.unready.remove(pid)
        try deliver(.ready(NodeID(p.node), incarnation: p.incarnation))
        return true
    }

    mutating func exitDying() throws(Violation) -> Bool {
        guard let pid = world.dying.random(using: &rng), let p = world[pid] else { return false }
        world.remove(pid)
        let status: ProcessExit = rng.chance(30) ? .exited(0) : .signaled(rng.chance(50) ? 15 : 9)
        try deliver(.exited(NodeID(p.node), incarnation: p.incarnation, status))
        return true
    }

    mutating func crash() throws(Violation) -> Bool {
        var target: Int32?
        if hotSupervisor >= 0 && rng.chance(60) {
            let siblings = model.children[hotSupervisor]
            let c = siblings[rng.below(siblings.count)]
            target = world.byNode[c].first.flatMap { world[$0]?.reported == true ? $0 : nil }
        }
        if target == nil { target = world.live.random(using: &rng) }
        guard let pid = target, let p = world[pid] else { return false }
        if rng.chance(2) { hotSupervisor = model.parent[p.node] }
        world.remove(pid)
        let status: ProcessExit = switch rng.below(10) {
        case 0..<4: .signaled(9)
        case 4..<7: .exited(1)
        case 7..<9: .exited(0)
        default: .signaled(11)
        }
        try deliver(.exited(NodeID(p.node), incarnation: p.incarnation, status))
        return true
    }

    mutating func tick() throws(Violation) {
        if let next = tree.nextDeadline, rng.chance(60) {
            if next > now { now = next }
        } else {
            now = now + .milliseconds(Int64(rng.below(1000)))
        }
        try deliver(.tick)
    }

    mutating func heartbeat() throws(Violation) -> Bool {
        guard let pid = world.live.random(using: &rng), let p = world[pid] else { return false }
        tree.heartbeat(NodeID(p.node), incarnation: p.incarnation, at: now)
        stats.events += 1
        digest.add(0xBEA7)
        try checkNode(p.node)
        return true
    }

    mutating func command() throws(Violation) -> Bool {
        let kind = rng.below(20)
        var node = 1 + rng.below(model.count - 1)
        if (5..<12).contains(kind), rng.chance(80), let held = heldDown.random(using: &rng) { node = held }
        var name = model.names[node]
        if model.pool[node] >= 0, rng.chance(30), let w = model.worker[node] { name = w.name }
        let command: Command = switch kind {
        case 0..<5: .stop(name)
        case 5..<12: .start(name)
        case 12..<16: .restart(name)
        case 16..<18: .kill(name, signal: rng.pick([15, 9, 10]))
        default: .handoff(name)
        }
        stats.commands += 1
        switch tree.handle(command, at: now) {
        case .success(let effects): try finishEvent(tag: 0xC0, node: node, effects)
        case .failure: try finishEvent(tag: 0xC1, node: node, [])
        }
        return true
    }

    mutating func answer() throws(Violation) -> Bool {
        guard !questions.isEmpty else { return false }
        let id = questions.remove(at: rng.below(questions.count))
        // Some questions are never answered: the guardian timeout is the fail-safe.
        guard !rng.chance(8) else { return false }
        let reason = "sim"
        let verdict: GuardianVerdict = switch rng.below(100) {
        case 0..<65: .allow
        case 65..<75: .delay(.milliseconds(Int64(rng.below(3000))), reason)
        case 75..<85: .deny(reason)
        case 85..<95: .safeMode(reason)
        default: .liquidate(reason)
        }
        stats.verdicts += 1
        try deliver(.verdict(id: id, verdict))
        return true
    }

    mutating func guardianOrder() throws(Violation) -> Bool {
        guard let g = model.guardian else { return false }
        let from = rng.chance(90) ? g : 1 + rng.below(model.count - 1)
        let order: GuardianOrderKind = switch rng.below(10) {
        case 0..<2: .safeModeOn("sim")
        case 2..<9: .safeModeOff("sim")
        default: .liquidate("sim")
        }
        try deliver(.guardianOrder(from: NodeID(from), order))
        return true
    }

    mutating func operatorSafeModeOrLiquidation() throws(Violation) -> Bool {
        if !model.gateways.isEmpty && rng.chance(40) {
            let gw = rng.pick(model.gateways)
            try finishEvent(tag: 0x1D, node: gw, tree.liquidationFinished(reportedBy: NodeID(gw), detail: "flat", at: now))
            return true
        }
        let on = rng.chance(20)
        switch tree.setSafeMode(on, reason: "sim", by: "operator", at: now) {
        case .success(let effects): try finishEvent(tag: on ? 0x5A : 0x5B, node: 0, effects)
        case .failure: try finishEvent(tag: 0x5C, node: 0, [])
        }
        return true
    }

    mutating func protocolViolation() throws(Violation) -> Bool {
        guard let pid = world.live.random(using: &rng), let p = world[pid] else { return false }
        try deliver(.protocolViolation(NodeID(p.node), incarnation: p.incarnation, "garbage frame"))
        return true
    }

    /// `EXTEND_TIMEOUT_USEC=`, `WATCHDOG_USEC=` and `WATCHDOG=trigger` from a child.
    mutating func notifyExtra() throws(Violation) -> Bool {
        guard let pid = world.live.random(using: &rng), let p = world[pid] else { return false }
        let id = NodeID(p.node)
        let effects: [Effect] = switch rng.below(3) {
        case 0: tree.extendTimeout(id, incarnation: p.incarnation, by: .milliseconds(Int64(500 + rng.below(5000))), at: now)
        case 1: tree.setWatchdog(id, incarnation: p.incarnation, to: .seconds(Int64(5 + rng.below(20))), at: now)
        default: tree.triggerWatchdog(id, incarnation: p.incarnation, at: now)
        }
        try finishEvent(tag: 0xE0, node: p.node, effects)
        return true
    }

    // MARK: Delivery

    mutating func deliver(_ event: Event) throws(Violation) {
        if stats.events + 1 >= traceFrom { tracedEvent = "\(event)" }
        let effects = tree.handle(event, at: now)
        var node = 0
        var tag: UInt64 = 0
        switch event {
        case .start: tag = 1
        case .spawned(let id, let inc, _): tag = 2; node = id.index; digest.add(inc)
        case .spawnFailed(let id, let inc, _): tag = 3; node = id.index; digest.add(inc)
        case .ready(let id, let inc): tag = 4; node = id.index; digest.add(inc)
        case .exited(let id, let inc, _): tag = 5; node = id.index; digest.add(inc); stats.exits += 1
        case .protocolViolation(let id, _, _): tag = 6; node = id.index
        case .tick: tag = 7; digest.add(UInt64(bitPattern: now.nanoseconds))
        case .shutdown: tag = 8
        case .forceShutdown: tag = 9
        case .verdict(let id, _): tag = 10; digest.add(id)
        case .guardianOrder(let from, _): tag = 11; node = from.index
        case .advice(let from, _): tag = 12; node = from.index
        case .memoryLimitExceeded(let id, let inc, _): tag = 13; node = id.index; digest.add(inc)
        }
        try finishEvent(tag: tag, node: node, effects)
    }

    /// Carries out what the core asked, checking each effect, then the touched node.
    mutating func finishEvent(tag: UInt64, node: Int, _ effects: [Effect]) throws(Violation) {
        stats.events += 1
        if stats.events >= traceFrom {
            trace("#\(stats.events) t=\(now) \(tracedEvent.isEmpty ? "tag \(tag) node \(model.names[node])" : tracedEvent)")
            for e in effects { trace("    \(e)") }
            tracedEvent = ""
        }
        digest.add(tag << 32 | UInt64(node))
        verdictNodes.removeAll(keepingCapacity: true)
        for effect in effects { try apply(effect) }
        try checkNode(node)
    }

    mutating func apply(_ effect: Effect) throws(Violation) {
        switch effect {
        case .record(let r):
            digest.add(r.kind.rawValue)
            digest.add(r.node)
            try check(r)
        case .spawn(let id, let inc):
            digest.add(0x5000_0000 | UInt64(id.index))
            try checkSpawn(id.index, inc)
            stats.spawns += 1
            let ignoresTerm: Bool = if case .timeout = model.worker[id.index]?.shutdown { rng.chance(10) } else { false }
            _ = world.create(node: id.index, incarnation: inc, ignoresTerm: ignoresTerm)
            safeModeEntriesAtSpawn[id.index] = safeModeEntries
        case .signal(let id, let pid, let signal):
            digest.add(0x5100_0000 | UInt64(id.index) << 8 | UInt64(UInt32(bitPattern: signal)))
            guard let p = world[pid], p.node == id.index else {
                throw violation("signal-target", "\(model.names[id.index]) was sent signal \(signal) to pid \(pid), which is not one of its live processes")
            }
            if signal == SignalName.kill || signal == SignalName.abort || (signal == SignalName.term && !p.ignoresTerm) {
                world.dying.insert(pid)
            }
        case .askGuardian(let g, let q):
            digest.add(0x5200_0000 | q.id)
            guard g.index == model.guardian, !world.byNode[g.index].isEmpty else {
                throw violation("guardian", "question \(q.id) about \(q.child) went to \(model.names[g.index]), which is not a live guardian")
            }
            questions.append(q.id)
        case .broadcast(let key, let value):
            digest.add(key)
            digest.add(value)
        case .reloaded:
            break
        case .plannedHandoff(let id, _):
            // Not generated here (no predictor in the simulated trees); a planned handoff
            // is the core's own decision, taken up by the shell as `restart --handoff`.
            digest.add(0x5500_0000 | UInt64(id.index))
        case .treeReady:
            digest.add(0x5300_0000)
        case .treeFinished(let outcome):
            digest.add(0x5400_0000)
            guard world.isEmpty else {
                throw violation("clean-finish", "the tree finished (\(outcome)) with \(world.total) processes still alive")
            }
            if case .failed = outcome { stats.treeFailures += 1 }
            finished = true
        }
    }

    func violation(_ invariant: String, _ detail: String) -> Violation {
        Violation(seed: seed, step: stats.events, invariant: invariant, detail: detail)
    }
}
