/// Operator commands: OTP's terminate_child / restart_child, plus kill. None of them counts
/// against restart intensity except what a killed process does afterwards.
extension SupervisionTree {
    public mutating func handle(_ command: Command, at now: Instant) -> Result<[Effect], CommandError> {
        begin(at: now)
        let name: String
        switch command {
        case .stop(let n), .start(let n), .restart(let n), .handoff(let n), .kill(let n, _): name = n
        }
        let ids = resolve(name)
        guard !ids.isEmpty else {
            return .failure(CommandError("no child named '\(name)'; `vigil status` lists them"))
        }
        if ids == [root], case .kill = command {} else if ids == [root] {
            return .failure(CommandError("'\(name)' is the root supervisor: stop the whole tree with Ctrl-C or SIGTERM to vigil (systemctl stop vigil), restart it by restarting vigil"))
        }
        guard isStarted, !isShuttingDown, outcome == nil else {
            return .failure(CommandError("the tree is stopping; commands are refused"))
        }
        for id in ids {
            if let p = nodes[id.index].parent, nodes[p.index].plan != nil || nodes[p.index].state != .running {
                return .failure(CommandError("\(nodes[p.index].name) is busy restarting or stopping its children; try again in a moment"))
            }
            // A supervisor terminating its children (escalating, or already being stopped)
            // still has live children: restarting it now would start them again beside
            // themselves. It is down, or failed to its parent, once they are gone.
            if nodes[id.index].isSupervisor, nodes[id.index].state != .running, nodes[id.index].plan != nil {
                return .failure(CommandError("\(nodes[id.index].name) is stopping its children; try again in a moment"))
            }
        }
        switch command {
        case .stop:
            for id in ids { stop(id, then: .operatorStop) }
        case .restart:
            if let busy = ids.first(where: { nodes[$0.index].overlap != nil }) {
                return .failure(handoffInProgress(busy))
            }
            for id in ids { stop(id, then: .operatorRestart) }
        case .handoff:
            if let refusal = handoffRefusal(ids, name: name) { return .failure(refusal) }
            for id in ids {
                if nodes[id.index].worker?.handoff == .overlap {
                    beginOverlap(id)
                } else {
                    stop(id, then: .operatorRestart, verb: "handoff (stop first)")
                }
            }
        case .start:
            if safeModeState != nil, let g = ids.first(where: { nodes[$0.index].worker?.guarded == true }) {
                return .failure(CommandError("\(nodes[g.index].name) is guarded and the tree is in safe mode; leave it first: vigil safe-mode off"))
            }
            let down = ids.filter { nodes[$0.index].state == .stopped }
            guard !down.isEmpty else {
                return .failure(CommandError("\(name) is not stopped (it is \(stateText(ids[0])))"))
            }
            for id in down {
                emit(.command, id, detail: "operator: start")
                nodes[id.index].lastReason = "start by operator"
                nodes[id.index].held = false
                nodes[id.index].finished = false
                nodes[id.index].consecutiveFailures = 0
                nodes[id.index].state = .idle
            }
        case .kill(_, let signal):
            let targets = ids.filter { nodes[$0.index].pid != nil && !nodes[$0.index].isSupervisor }
            guard !targets.isEmpty else {
                return .failure(CommandError("\(name) has no running process to signal"))
            }
            for id in targets {
                emit(.command, id, detail: "operator: \(SignalName.of(signal)) to its group")
                effects.append(.signal(id, pid: nodes[id.index].pid!, signal: signal))
            }
        }
        return .success(finish())
    }

    mutating func stop(_ id: NodeID, then cause: StopCause, verb: String? = nil, by who: String = "operator") {
        let verb = verb ?? (cause == .operatorStop ? "stop" : "restart")
        emit(.command, id, detail: "\(who): \(verb)")
        nodes[id.index].lastReason = "\(verb) by \(who)"
        abandonHandoff(id, because: "an operator stopped it")
        let node = nodes[id.index]
        if node.isSupervisor {
            if node.state == .running {
                if cause == .operatorStop { nodes[id.index].held = true }
                terminateSupervisor(id, then: .stopSelf(thenIdle: cause == .operatorRestart))
            } else {
                nodes[id.index].held = cause == .operatorStop
                nodes[id.index].state = cause == .operatorStop ? .stopped : .idle
            }
            return
        }
        switch node.state {
        case .starting, .running:
            nodes[id.index].state = .stopping(cause)
            signalTermination(id)
        case .spawning, .stopping:
            nodes[id.index].state = .stopping(cause)
        case .idle, .backoff, .stopped, .awaitingGuardian:
            nodes[id.index].held = cause == .operatorStop
            nodes[id.index].finished = false
            nodes[id.index].state = cause == .operatorStop ? .stopped : .idle
        }
    }
}
