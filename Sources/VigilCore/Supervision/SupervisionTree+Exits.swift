/// Exits, failures, restart strategies and termination plans: the OTP part.
extension SupervisionTree {
    /// A child's process group is gone. What it means depends on why it was stopping, if
    /// it was, and otherwise it is a failure handled by the parent's strategy.
    mutating func exited(_ id: NodeID, _ inc: UInt64, _ status: ProcessExit) {
        let node = nodes[id.index]
        guard node.incarnation == inc, node.isAlive else { return }
        let uptime = node.startedAt.map { now.duration(since: $0) } ?? .zero
        nodes[id.index].lastExit = status
        nodes[id.index].lastExitAt = now
        if case .spawnFailed = status {} else {
            emit(.exited, id, detail: "\(status) after \(formatMilliseconds(uptime))")
        }
        nodes[id.index].pid = nil
        // Questions this guardian was asked die with it: its replacement is asked again.
        if id == guardianNode { questionsForTheReturningGuardian = unansweredQuestions() }
        let parent = node.parent!
        if case .incoming = node.overlap {
            outgoingDiedDuringHandoff(id, status)
            return
        }

        switch node.state {
        case .stopping(.operatorStop):
            nodes[id.index].state = .stopped
            nodes[id.index].held = true
            dirty.append(parent)
        case .stopping(.operatorRestart):
            nodes[id.index].state = isShuttingDown ? .stopped : .idle
            dirty.append(parent)
        case .stopping(.plan):
            nodes[id.index].state = .stopped
            dirty.append(parent)
        case .stopping(.readyTimeout):
            failed(id, reason: "no READY within its ready timeout (failed start)", status: status)
        case .stopping(.watchdog):
            failed(id, reason: "hung: no heartbeat within its watchdog", status: status)
        case .stopping(.protocolViolation(let why)):
            failed(id, reason: "protocol violation: \(why)", status: status)
        case .stopping(.memoryLimit(let why)):
            failed(id, reason: why, status: status)
        case .spawning:
            failed(id, reason: "could not be started (\(status))", status: status)
        case .starting:
            failed(id, reason: "\(status) before READY (failed start)", status: status)
        default:
            failed(id, reason: "\(status)", status: status)
        }
    }

    /// A child failed (OTP: an unexpected EXIT). Unless a plan or the shutdown already
    /// covers it, its restart type and the parent's intensity and strategy decide.
    mutating func failed(_ id: NodeID, reason: String, status: ProcessExit?) {
        guard let parentID = nodes[id.index].parent else { return }
        nodes[id.index].state = .stopped
        nodes[id.index].lastReason = reason
        dirty.append(parentID)
        settleForecasts(failed: id)

        if isShuttingDown || outcome != nil {
            return
        }
        if let plan = nodes[parentID.index].plan {
            if !plan.contains(id) { nodes[parentID.index].deferred.append(id) }
            return
        }
        let node = nodes[id.index]
        switch node.restartType {
        case .temporary:
            nodes[id.index].finished = true
            nodes[id.index].lastReason = "\(reason); temporary, not restarted"
            emit(.notRestarted, id, detail: "temporary child exited (\(reason)); removed, never restarted")
            return
        case .transient where status == .exited(0):
            nodes[id.index].finished = true
            nodes[id.index].lastReason = "exit 0; transient, completed"
            emit(.notRestarted, id, detail: "transient child exited normally")
            return
        case .transient, .permanent:
            break
        }

        let supervisor = nodes[parentID.index]
        guard case .supervisor(let spec) = supervisor.kind else { return }
        if !nodes[parentID.index].window.admit(at: now, within: spec.intensity) {
            let why = "\(supervisor.name) exceeded its restart intensity (more than \(spec.intensity.maxRestarts) restarts in \(spec.intensity.period.topologyText)); last: \(node.name) \(reason)"
            emit(.escalate, parentID, detail: why)
            terminateSupervisor(parentID, then: .fail(why))
            return
        }

        // Backoff: a failure after a stable READY run starts the count again.
        if let readyAt = node.readyAt, now.duration(since: readyAt) >= node.backoff.resetAfter {
            nodes[id.index].consecutiveFailures = 0
        }
        nodes[id.index].consecutiveFailures += 1
        nodes[id.index].restarts += 1
        let u = Double(random.next() >> 11) * 0x1p-53
        let delay = node.backoff.delay(afterFailure: nodes[id.index].consecutiveFailures, random: u)
        let children = supervisor.children
        let position = children.firstIndex(of: id)!

        let guardedIDs = Set(children.filter { nodes[$0.index].worker?.guarded == true })
        func guarded(_ ids: [NodeID]) -> Bool { ids.contains { guardedIDs.contains($0) } }
        switch spec.strategy {
        case .oneForOne where guarded([id]):
            requestGuardedRestart(id, reason: reason, restart: .single(id, delay: delay, reason: reason))
        case .oneForOne:
            scheduleRestart(id, delay: delay, reason: reason)
        case .restForOne where guarded(Array(children[position...])):
            let rest = Array(children[(position + 1)...])
            requestGuardedRestart(id, reason: reason, restart: .cascade(supervisor: parentID, terminating: rest,
                                                                         restarting: [id] + rest, delay: delay))
        case .oneForAll where guarded(children):
            let others = children.filter { $0 != id }
            requestGuardedRestart(id, reason: reason, restart: .cascade(supervisor: parentID, terminating: others,
                                                                         restarting: children, delay: delay))
        case .restForOne:
            let rest = Array(children[(position + 1)...])
            let names = rest.map { nodes[$0.index].name }
            emit(.restart, id, detail: "\(reason); rest_for_one: terminating \(names.isEmpty ? "nothing else" : names.reversed().joined(separator: ", ")), then restarting \(([node.name] + names).joined(separator: ", "))\(delayText(delay))")
            markCascade(rest, reason: "cascade from \(node.name) (rest_for_one)")
            startPlan(parentID, terminating: rest, then: .restart([id] + rest, delay: delay))
        case .oneForAll:
            let others = children.filter { $0 != id }
            emit(.restart, id, detail: "\(reason); one_for_all: terminating \(others.reversed().map { nodes[$0.index].name }.joined(separator: ", ")), then restarting all\(delayText(delay))")
            markCascade(others, reason: "cascade from \(node.name) (one_for_all)")
            startPlan(parentID, terminating: others, then: .restart(children, delay: delay))
        }
    }

    private func delayText(_ delay: Duration) -> String {
        delay == .zero ? "" : " after \(formatMilliseconds(delay)) backoff"
    }

    private mutating func markCascade(_ ids: [NodeID], reason: String) {
        for c in ids where !nodes[c.index].held && !nodes[c.index].finished {
            nodes[c.index].lastReason = reason
        }
    }

    /// Puts one child back in line to start, now or after its backoff.
    mutating func scheduleRestart(_ id: NodeID, delay: Duration, reason: String) {
        if delay == .zero {
            nodes[id.index].state = .idle
            emit(.restart, id, detail: "\(reason); restarting now")
        } else {
            let until = now + delay
            nodes[id.index].state = .backoff(until: until)
            timers.schedule(.backoff(id), at: until)
            emit(.backoff, id, detail: "\(reason); restarting in \(formatMilliseconds(delay)) (failure \(nodes[id.index].consecutiveFailures) in a row)")
        }
    }

    // MARK: Termination plans

    /// The steps to terminate `ids` (given in start order): last started first, a pool's
    /// instances together.
    func terminationSteps(_ ids: [NodeID]) -> [[NodeID]] {
        var steps: [[NodeID]] = []
        for id in ids.reversed() {
            if let pool = nodes[id.index].pool, let last = steps.last?.last, nodes[last.index].pool == pool {
                steps[steps.count - 1].append(id)
            } else {
                steps.append([id])
            }
        }
        return steps
    }

    mutating func startPlan(_ supervisor: NodeID, terminating ids: [NodeID], then: Continuation) {
        nodes[supervisor.index].plan = Plan(steps: terminationSteps(ids), then: then)
        dirty.append(supervisor)
    }

    /// Terminates a supervisor's whole subtree, then continues with `then`. If a plan is
    /// already running, it is redirected: its remaining steps still run, then every child
    /// not yet down is terminated too.
    mutating func terminateSupervisor(_ id: NodeID, then: Continuation) {
        if nodes[id.index].state == .running || nodes[id.index].plan != nil {
            nodes[id.index].state = .stopping(.plan)
        }
        let all = nodes[id.index].children
        if var plan = nodes[id.index].plan {
            plan.steps.append(contentsOf: terminationSteps(all))
            plan.then = then
            nodes[id.index].plan = plan
            dirty.append(id)
        } else {
            startPlan(id, terminating: all, then: then)
        }
    }

    /// Runs a supervisor's plan as far as it can go without waiting for an exit.
    mutating func advance(_ id: NodeID) {
        while var plan = nodes[id.index].plan {
            plan.inFlight = plan.inFlight.filter { stillTerminating($0) }
            if !plan.inFlight.isEmpty {
                nodes[id.index].plan = plan
                return
            }
            if plan.steps.isEmpty {
                nodes[id.index].plan = nil
                complete(id, plan.then)
                return
            }
            let step = plan.steps.removeFirst()
            plan.inFlight = Set(step)
            nodes[id.index].plan = plan
            for child in step { beginTermination(child) }
        }
    }

    /// A child is terminated once its own process and any handoff's process beside it are gone.
    private func stillTerminating(_ id: NodeID) -> Bool {
        if nodes[id.index].overlap != nil { return true }
        switch nodes[id.index].state {
        case .stopping, .spawning: return true
        default: return false
        }
    }

    /// Starts terminating one child as a step of its parent's plan.
    private mutating func beginTermination(_ id: NodeID) {
        let node = nodes[id.index]
        if node.isSupervisor {
            if node.state == .running || node.plan != nil {
                terminateSupervisor(id, then: .stopSelf(thenIdle: false))
            } else if node.state != .stopped {
                nodes[id.index].state = .stopped
            }
            return
        }
        abandonHandoff(id, because: "\(nodes[node.parent!.index].name) is terminating its children")
        switch node.state {
        case .starting, .running:
            nodes[id.index].state = .stopping(.plan)
            signalTermination(id)
        case .spawning:
            nodes[id.index].state = .stopping(.plan)
        case .stopping(.readyTimeout), .stopping(.watchdog), .stopping(.operatorRestart), .stopping(.protocolViolation),
             .stopping(.memoryLimit):
            nodes[id.index].state = .stopping(.plan)
        case .stopping:
            break
        case .idle, .backoff, .awaitingGuardian:
            nodes[id.index].state = .stopped
        case .stopped:
            break
        }
    }

    /// Stops one worker outside any plan, as an operator stop does (not a failure, nothing
    /// else restarts), for whoever keeps it down afterwards (safe mode, a reload).
    mutating func takeDown(_ id: NodeID, reason: String, handoff why: String) {
        nodes[id.index].lastReason = reason
        abandonHandoff(id, because: why)
        switch nodes[id.index].state {
        case .starting, .running:
            nodes[id.index].state = .stopping(.operatorStop)
            signalTermination(id)
        case .spawning:
            nodes[id.index].state = .stopping(.operatorStop)
        case .idle, .backoff, .awaitingGuardian:
            nodes[id.index].state = .stopped
        case .stopping, .stopped:
            break
        }
    }

    /// SIGTERM (or SIGKILL for brutal_kill) to the group, and the shutdown deadline.
    mutating func signalTermination(_ id: NodeID) {
        let node = nodes[id.index]
        guard let pid = node.pid else { return }
        signalTermination(id, process: SideProcess(incarnation: node.incarnation, pid: pid, startedAt: node.startedAt))
    }

    /// The same for one given process of `id` (its own, or a handoff's side process).
    mutating func signalTermination(_ id: NodeID, process: SideProcess) {
        guard let pid = process.pid, let spec = nodes[id.index].worker else { return }
        switch spec.shutdown {
        case .brutalKill:
            emit(.terminate, id, process: process, detail: "SIGKILL to its group (brutal_kill)")
            effects.append(.signal(id, pid: pid, signal: SignalName.kill))
        case .timeout(let t):
            emit(.terminate, id, process: process, detail: "SIGTERM to its group, SIGKILL in \(t.topologyText)")
            effects.append(.signal(id, pid: pid, signal: SignalName.term))
            if process.incarnation == nodes[id.index].incarnation { nodes[id.index].stopDeadline = now + t }
            timers.schedule(.shutdownTimeout(id, incarnation: process.incarnation), at: now + t)
        case .infinity:
            emit(.terminate, id, process: process, detail: "SIGTERM to its group (shutdown: infinity)")
            effects.append(.signal(id, pid: pid, signal: SignalName.term))
        }
    }

    /// A plan has finished: every child it had to terminate is down.
    private mutating func complete(_ id: NodeID, _ then: Continuation) {
        switch then {
        case .restart(let ids, let delay):
            if isShuttingDown { break }
            for c in ids {
                let child = nodes[c.index]
                if child.held || child.finished { continue }
                if child.restartType == .temporary {
                    nodes[c.index].finished = true
                    emit(.notRestarted, c, detail: "temporary child terminated by a cascade is removed")
                    continue
                }
                if delay == .zero {
                    nodes[c.index].state = .idle
                } else {
                    nodes[c.index].state = .backoff(until: now + delay)
                    timers.schedule(.backoff(c), at: now + delay)
                }
            }
            let pending = nodes[id.index].deferred
            nodes[id.index].deferred = []
            for c in pending where nodes[c.index].state == .stopped && !nodes[c.index].finished {
                failed(c, reason: nodes[c.index].lastReason ?? "exited", status: nodes[c.index].lastExit)
            }
        case .fail(let why):
            nodes[id.index].deferred = []
            if nodes[id.index].parent == nil {
                if safeModeState == nil {
                    safeModeState = SafeModeState(reason: why, by: "vigil (root intensity)", since: now, liquidating: false)
                    emit(.safeMode, id, detail: "entered: the root supervisor failed; the tree stops")
                }
                outcome = .failed(why)
                nodes[id.index].state = .stopped
                emit(.treeFailed, id, detail: why)
                effects.append(.treeFinished(.failed(why)))
            } else {
                nodes[id.index].lastExit = nil
                failed(id, reason: "supervisor failed: restart intensity exceeded", status: nil)
            }
        case .stopSelf(let thenIdle):
            nodes[id.index].deferred = []
            nodes[id.index].state = thenIdle && !isShuttingDown ? .idle : .stopped
            if let p = nodes[id.index].parent {
                dirty.append(p)
            } else if outcome == nil {
                outcome = .stopped
                emit(.treeStopped, id, detail: "every child is stopped")
                effects.append(.treeFinished(.stopped))
            }
        }
    }
}
