/// One line of `vigil status`: what the core knows about a node right now.
public struct NodeStatus: Hashable, Sendable {
    public var id: NodeID
    public var name: String
    public var depth: Int
    public var isSupervisor: Bool
    /// `running`, `starting`, `backoff 1.6s`, `waiting for db-watchdog`, `stopped`, ...
    public var state: String
    public var pid: Int32?
    public var incarnation: UInt64
    /// Since the current process was spawned (workers) or the supervisor started.
    public var startedAt: Instant?
    public var readyAt: Instant?
    public var restarts: Int
    public var lastExit: ProcessExit?
    public var lastReason: String?
    /// Strategy of a supervisor (`one_for_one` ...), nil for workers.
    public var strategy: String?
}

extension SupervisionTree {
    /// Every node in start order, for `vigil status` and the systemd STATUS line. `now`
    /// (default: the last event's time) is used for the backoff countdown.
    public func status(at now: Instant? = nil) -> [NodeStatus] {
        let now = now ?? self.now
        return nodes.map { n in
            var strategy: String?
            if case .supervisor(let s) = n.kind { strategy = s.strategy.rawValue }
            return NodeStatus(id: n.id, name: n.name, depth: n.depth, isSupervisor: n.isSupervisor,
                              state: stateText(n.id, at: now), pid: n.pid, incarnation: n.incarnation,
                              startedAt: n.isAlive ? n.startedAt : nil, readyAt: n.readyAt,
                              restarts: n.restarts, lastExit: n.lastExit, lastReason: n.lastReason,
                              strategy: strategy)
        }
    }

    /// A one-line summary: `7/8 running, 1 backoff, 12 restarts`.
    public func summary() -> String {
        // One pass, fields read in place: vigil sends this to systemd after every loop
        // pass that changed it, so it is computed on every pass (1,000 heartbeats a
        // second are 1,000 passes); filtering copies of every node cost most of a core.
        var workers = 0, running = 0, restarts = 0, starting = 0, backoff = 0, down = 0
        for i in nodes.indices where !nodes[i].isSupervisor {
            workers += 1
            restarts += nodes[i].restarts
            switch nodes[i].state {
            case .running: running += 1
            case .starting, .spawning: starting += 1
            case .backoff: backoff += 1
            case .stopped: down += 1
            default: break
            }
        }
        var parts = ["\(running)/\(workers) workers running"]
        if starting > 0 { parts.append("\(starting) starting") }
        if backoff > 0 { parts.append("\(backoff) in backoff") }
        if down > 0 { parts.append("\(down) stopped") }
        parts.append("\(restarts) restarts")
        if isShuttingDown { parts.insert("stopping", at: 0) }
        if let s = safeModeState { parts.insert(s.liquidating ? "SAFE MODE, LIQUIDATING" : "SAFE MODE", at: 0) }
        return parts.joined(separator: ", ")
    }

    func stateText(_ id: NodeID, at now: Instant? = nil) -> String {
        let now = now ?? self.now
        let n = nodes[id.index]
        switch (n.overlap, n.state) {
        case (.incoming?, .running), (.leaving(_, .replaced)?, .running):
            return "handing off"
        case (_?, _) where !n.isAlive:
            return "stopping"  // down, but a handoff's process is still going away
        default:
            break
        }
        switch n.state {
        case .idle:
            let missing = n.dependencies.filter { !isReady($0) }.map { nodes[$0.index].name }
            return missing.isEmpty ? "waiting" : "waiting for \(missing.joined(separator: ", "))"
        case .backoff(let until):
            return "backoff \(formatMilliseconds(max(.zero, until.duration(since: now))))"
        case .spawning: return "spawning"
        case .starting: return "starting"
        case .running: return n.isSupervisor ? "running" : "ready"
        case .stopping: return "stopping"
        case .awaitingGuardian: return "awaiting guardian"
        case .stopped:
            if n.downForSafeMode { return "stopped (safe mode)" }
            if n.held { return n.lastReason?.hasPrefix("denied") == true ? "stopped (denied)" : "stopped (operator)" }
            if n.finished { return n.restartType == .temporary ? "exited (temporary)" : "completed" }
            return "stopped"
        }
    }
}
