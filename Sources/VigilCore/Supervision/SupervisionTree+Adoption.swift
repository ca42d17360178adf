/// Re-adoption: a vigil that starts while workers of a previous vigil still run takes
/// them back instead of starting them again. The shell finds them (journal pid + process
/// start time) and proves who they are; the core decides which may be adopted and puts
/// them in the tree as they are, so nothing runs twice and nothing restarts.
extension SupervisionTree {
    /// A process of a previous vigil that the shell vouched for: the journal's run of this
    /// child, still alive, started when the journal says.
    public struct AdoptionCandidate: Hashable, Sendable {
        public var incarnation: UInt64
        public var pid: Int32
        /// It had said READY (the journal's run has a ready time).
        public var wasReady: Bool
        /// How long ago it was spawned and said READY (from the journal), so its uptime
        /// and backoff reset count from its own start, not from its adoption.
        public var startedAgo: Duration
        public var readyAgo: Duration?

        public init(incarnation: UInt64, pid: Int32, wasReady: Bool, startedAgo: Duration = .zero, readyAgo: Duration? = nil) {
            self.incarnation = incarnation
            self.pid = pid
            self.wasReady = wasReady
            self.startedAgo = startedAgo
            self.readyAgo = readyAgo
        }
    }

    /// What a starting vigil does with what the previous one left.
    public struct AdoptionPlan: Hashable, Sendable {
        /// Taken back as they are.
        public var adopt: [NodeID: AdoptionCandidate] = [:]
        /// Alive but to be stopped before the tree starts, each with the reason: their
        /// supervisor's strategy would have restarted them with a sibling that died while
        /// no vigil was running.
        public var stop: [NodeID: String] = [:]
    }

    /// Decides, from the children still running (`alive`) and those whose run ended while
    /// no vigil watched (`died`), which are adopted (call it after `resumeSafeMode`: what
    /// safe mode keeps down is stopped, not adopted). A death nobody saw still gets its
    /// supervisor's strategy, as if vigil had been there: under `rest_for_one` the children
    /// after the dead one, under `one_for_all` all of its siblings, are stopped and start
    /// again with it (in start order, as the tree starts). It does not count against
    /// restart intensity: the tree is starting, like an OTP supervisor's init, and an hour
    /// without vigil must not make its first second look like a crash loop.
    public func planAdoption(alive: [NodeID: AdoptionCandidate], died: Set<NodeID>) -> AdoptionPlan {
        var plan = AdoptionPlan()
        var restarted: [NodeID: String] = [:]
        for dead in died.sorted() {
            guard let parent = nodes[dead.index].parent, case .supervisor(let spec) = nodes[parent.index].kind else { continue }
            let siblings = nodes[parent.index].children
            let position = siblings.firstIndex(of: dead) ?? siblings.count
            let affected: ArraySlice<NodeID> = switch spec.strategy {
            case .oneForOne: []
            case .restForOne: siblings[(position + 1)...]
            case .oneForAll: siblings[...]
            }
            let why = "\(spec.strategy.rawValue) supervisor \(nodes[parent.index].name): \(nodes[dead.index].name) died while no vigil was running"
            for sibling in affected where sibling != dead {
                for id in subtree(of: sibling) where restarted[id] == nil { restarted[id] = why }
            }
        }
        for (id, candidate) in alive {
            guard nodes[id.index].worker != nil else { continue }
            if let why = restarted[id] {
                plan.stop[id] = why
            } else if nodes[id.index].downForSafeMode {
                plan.stop[id] = "the tree is in safe mode, which keeps this child down"
            } else {
                plan.adopt[id] = candidate
            }
        }
        return plan
    }

    /// Brings the tree up like `.start`, taking back the `adopted` processes where they
    /// stand (in start order, as each would have been spawned), spawning the rest.
    /// Afterwards `unclaimedAdoptions` holds those the tree had no place for (a child that
    /// safe mode keeps down): the shell must stop them.
    ///
    /// `restarting` are the children whose process ended (or was stopped) since the last
    /// vigil saw them, with why: for them this start is a restart, so a guarded one goes
    /// through safe mode and the guardian like any guarded restart (not counted against
    /// intensity, as `planAdoption` says).
    ///
    /// `restartHistory` (how long ago each restart the previous vigil decided was, by the
    /// child that failed) goes into the supervisors' intensity windows when anything is
    /// adopted: the tree lives on, so a crash loop must not escape its intensity by way of
    /// a vigil restart.
    public mutating func start(adopting adopted: [NodeID: AdoptionCandidate], restarting: [NodeID: String] = [:],
                               restartHistory: [NodeID: [Duration]] = [:], at now: Instant) -> [Effect] {
        adoptions = adopted.filter { nodes[$0.key.index].worker != nil }
        unseenRestarts = restarting.filter { nodes[$0.key.index].worker?.guarded == true && adopted[$0.key] == nil }
        let effects = handle(.start, at: now)
        if !adopted.isEmpty { carryRestarts(restartHistory) }
        unclaimedAdoptions = adoptions
        adoptions = [:]
        return effects
    }

    /// In `reconcile`, instead of a spawn: the node takes the adopted process as its
    /// incarnation. READY before, it is READY now (with a fresh watchdog period, since its
    /// last heartbeat went to the dead vigil); not READY yet, it gets a full ready timeout.
    mutating func adopt(_ id: NodeID, _ a: AdoptionCandidate) {
        let i = id.index
        nodes[i].incarnation = a.incarnation
        nodes[i].lastIncarnation = max(nodes[i].lastIncarnation, a.incarnation)
        nodes[i].pid = a.pid
        nodes[i].startedAt = now - max(.zero, a.startedAgo)
        nodes[i].watchdogLimit = nodes[i].worker?.watchdog
        nodes[i].watchdogGraceUsed = false
        nodes[i].readyDeadline = nil
        nodes[i].stopDeadline = nil
        if a.wasReady {
            nodes[i].state = .running
            nodes[i].readyAt = now - max(.zero, a.readyAgo ?? .zero)
            nodes[i].lastHeartbeat = now
            if let watchdog = nodes[i].watchdogLimit {
                timers.schedule(.watchdog(id, incarnation: a.incarnation), at: now + watchdog)
            }
        } else {
            nodes[i].state = .starting
            nodes[i].readyAt = nil
            let timeout = nodes[i].worker?.readyTimeout ?? .seconds(10)
            nodes[i].readyDeadline = now + timeout
            timers.schedule(.readyTimeout(id, incarnation: a.incarnation), at: now + timeout)
        }
        emit(.adopted, id, detail: "incarnation \(a.incarnation), left running by the previous vigil: taken back \(a.wasReady ? "READY" : "starting (no READY yet)")")
    }

    /// Puts the previous vigil's recent restarts into the intensity windows they counted in.
    mutating func carryRestarts(_ history: [NodeID: [Duration]]) {
        for (id, ages) in history {
            guard let parent = nodes[id.index].parent, case .supervisor(let spec) = nodes[parent.index].kind else { continue }
            let recent = ages.filter { $0 >= .zero && $0 < spec.intensity.period }.map { now - $0 }
            nodes[parent.index].window.carry(recent)
        }
    }

    /// In `reconcile`, instead of a spawn: a guarded child that ended while no vigil ran
    /// is restarted only as the guardian (and safe mode) allow.
    mutating func restartUnseen(_ id: NodeID, reason: String) {
        requestGuardedRestart(id, reason: reason, restart: .single(id, delay: .zero, reason: reason))
    }

    /// `id` and every node under it.
    func subtree(of id: NodeID) -> [NodeID] {
        [id] + nodes[id.index].children.flatMap { subtree(of: $0) }
    }
}
