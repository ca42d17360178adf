/// Capital-safe healing: the guardian's veto over guarded restarts, safe mode and
/// liquidation. A guarded child is never restarted blindly: without a live guardian, or
/// without an answer in time, the tree goes to safe mode (the fail-safe).
extension SupervisionTree {
    /// What a guarded child's restart will be once the guardian allows it.
    enum PendingRestart: Hashable, Sendable {
        case single(NodeID, delay: Duration, reason: String)
        case cascade(supervisor: NodeID, terminating: [NodeID], restarting: [NodeID], delay: Duration)
    }

    struct PendingQuestion: Hashable, Sendable {
        var node: NodeID
        var restart: PendingRestart
        /// As it was put, to put it again to a replacement guardian.
        var question: GuardianQuestion
    }

    public var safeMode: SafeModeState? { safeModeState }


    /// Decides a guarded restart: refused in safe mode, else asked of the guardian, else
    /// the fail-safe. `restart` is what happens on `allow`.
    mutating func requestGuardedRestart(_ id: NodeID, reason: String, restart: PendingRestart) {
        let name = nodes[id.index].name
        if safeModeState?.liquidating == true && nodes[id.index].worker?.role == .gateway {
            // The liquidation needs its gateway; in safe mode it comes back cancel-only and
            // resumes the liquidation, so restarting it cannot add risk.
            emit(.verdict, id, detail: "\(name) carries out the liquidation: restarted in safe mode (cancel-only) to finish it (\(reason))")
            proceed(restart, extraDelay: .zero)
            return
        }
        if safeModeState != nil {
            refuseForSafeMode(id, detail: "\(name) is guarded and the tree is in safe mode: not restarted (\(reason))")
            return
        }
        guard let guardian = guardianNode, nodes[guardian.index].state == .running || guardianIsComingBack(guardian) else {
            refuseForSafeMode(id, detail: "no live guardian to approve restarting \(name): fail-safe, not restarted")
            enterSafeMode("no live guardian to approve restarting \(name)", by: "vigil (fail-safe)")
            return
        }
        nextQuestion += 1
        let question = GuardianQuestion(id: nextQuestion, child: name, reason: reason,
                                        recentRestarts: recentRestarts(of: id), incarnation: nodes[id.index].incarnation)
        pendingQuestions[question.id] = PendingQuestion(node: id, restart: restart, question: question)
        nodes[id.index].state = .awaitingGuardian(question.id)
        // The same deadline either way: a guardian that is not back and answering within
        // it is no guardian, and the fail-safe applies.
        timers.schedule(.guardianTimeout(question.id), at: now + settings.guardianTimeout)
        if nodes[guardian.index].state == .running {
            emit(.guardianAsked, id, detail: "question \(question.id): may \(name) restart after \(reason)? (\(question.recentRestarts) recent restarts)")
            effects.append(.askGuardian(guardian, question))
        } else {
            // The guardian is restarted first (it is never guarded); the question waits for it.
            emit(.guardianAsked, id, detail: "question \(question.id): may \(name) restart after \(reason)? (\(question.recentRestarts) recent restarts); held until the restarting guardian is READY")
            questionsForTheReturningGuardian.append(question)
        }
    }

    /// A guardian that is down but will be started again by itself (crashed and
    /// restarting, backing off, or in a cascade), as opposed to one held down by an
    /// operator, finished, or kept down by safe mode.
    func guardianIsComingBack(_ g: NodeID) -> Bool {
        let n = nodes[g.index]
        guard !n.held, !n.finished, !n.downForSafeMode else { return false }
        switch n.state {
        case .idle, .backoff, .spawning, .starting: return true
        case .stopping(let why): return why != .operatorStop
        case .running, .stopped, .awaitingGuardian: return false
        }
    }

    /// Every question not answered yet, oldest first (they keep their deadlines).
    func unansweredQuestions() -> [GuardianQuestion] {
        pendingQuestions.keys.sorted().compactMap { qid in
            let p = pendingQuestions[qid]!
            return nodes[p.node.index].state == .awaitingGuardian(qid) ? p.question : nil
        }
    }

    /// The guardian is READY again: it hears the questions that waited for it.
    mutating func guardianReturned() {
        let waiting = questionsForTheReturningGuardian
        questionsForTheReturningGuardian = []
        guard let guardian = guardianNode else { return }
        for q in waiting where pendingQuestions[q.id] != nil {
            effects.append(.askGuardian(guardian, q))
        }
    }

    /// Restarts of `id`'s supervisor within its intensity period (the shared window).
    func recentRestarts(of id: NodeID) -> Int {
        guard let p = nodes[id.index].parent, case .supervisor(let spec) = nodes[p.index].kind else { return 0 }
        return nodes[p.index].window.restarts.filter { $0 > now - spec.intensity.period }.count
    }

    mutating func verdict(_ id: UInt64, _ verdict: GuardianVerdict) {
        if predictionVerdict(id, verdict) { return }
        guard let pending = pendingQuestions.removeValue(forKey: id),
              nodes[pending.node.index].state == .awaitingGuardian(id) else { return }
        let node = pending.node
        let name = nodes[node.index].name
        switch verdict {
        case .allow:
            emit(.verdict, node, detail: "question \(id): allow; restarting \(name)")
            proceed(pending.restart, extraDelay: .zero)
        case .delay(let d, let why):
            emit(.verdict, node, detail: "question \(id): delay \(d.topologyText) (\(why)); restarting \(name) then")
            proceed(pending.restart, extraDelay: d)
        case .deny(let why):
            emit(.verdict, node, detail: "question \(id): deny (\(why)); \(name) stays down until an operator starts it")
            nodes[node.index].state = .stopped
            nodes[node.index].held = true
            nodes[node.index].lastReason = "denied by the guardian: \(why)"
        case .safeMode(let why):
            emit(.verdict, node, detail: "question \(id): safe mode (\(why)); \(name) stays down")
            refuseForSafeMode(node, detail: nil)
            enterSafeMode(why, by: "guardian")
        case .liquidate(let why):
            emit(.verdict, node, detail: "question \(id): liquidate (\(why)); \(name) stays down")
            refuseForSafeMode(node, detail: nil)
            enterSafeMode(why, by: "guardian")
            startLiquidation(why, by: "guardian")
        }
    }

    /// No verdict in time: the fail-safe.
    mutating func guardianTimedOut(_ id: UInt64) {
        if predictionQuestionTimedOut(id) { return }
        guard let pending = pendingQuestions.removeValue(forKey: id),
              nodes[pending.node.index].state == .awaitingGuardian(id) else { return }
        let name = nodes[pending.node.index].name
        emit(.verdict, pending.node, detail: "question \(id): no answer within \(settings.guardianTimeout.topologyText): fail-safe, \(name) stays down")
        refuseForSafeMode(pending.node, detail: nil)
        enterSafeMode("the guardian did not answer about \(name) within \(settings.guardianTimeout.topologyText)", by: "vigil (fail-safe)")
    }

    private mutating func proceed(_ restart: PendingRestart, extraDelay: Duration) {
        switch restart {
        case .single(let id, let delay, let reason):
            scheduleRestart(id, delay: max(delay, extraDelay), reason: reason)
        case .cascade(let supervisor, let terminating, let restarting, let delay):
            // The supervisor may have moved on (restarting or stopping all): it owns the child.
            guard nodes[supervisor.index].state == .running, nodes[supervisor.index].plan == nil else { return }
            startPlan(supervisor, terminating: terminating, then: .restart(restarting, delay: max(delay, extraDelay)))
        }
    }

    /// A guarded child that safe mode keeps down; started again when safe mode ends.
    mutating func refuseForSafeMode(_ id: NodeID, detail: String?) {
        if let detail { emit(.verdict, id, detail: detail) }
        nodes[id.index].state = .stopped
        nodes[id.index].downForSafeMode = true
        nodes[id.index].lastReason = "kept down by safe mode"
    }

    mutating func enterSafeMode(_ reason: String, by: String) {
        guard safeModeState == nil else { return }
        safeModeState = SafeModeState(reason: reason, by: by, since: now, liquidating: false)
        emit(.safeMode, root, detail: "entered (by \(by)): \(reason)")
        effects.append(.broadcast(key: "safe_mode", value: "on"))
        // Not `for n in nodes`: iterating the store while takeDown mutates it copied every
        // node of the tree on each entry into safe mode.
        for id in stoppedInSafeMode where !nodes[id.index].held && !nodes[id.index].finished {
            nodes[id.index].downForSafeMode = true
            takeDown(id, reason: "stopped by safe mode", handoff: "safe mode stops it")
        }
    }

    /// Leaves safe mode: what it kept down starts again.
    mutating func leaveSafeMode(_ reason: String, by: String) -> Bool {
        guard let state = safeModeState else { return false }
        safeModeState = nil
        emit(.safeMode, root, detail: "left (by \(by)): \(reason); it had lasted \(formatMilliseconds(now.duration(since: state.since)))")
        effects.append(.broadcast(key: "safe_mode", value: "off"))
        for i in nodes.indices where nodes[i].downForSafeMode {
            nodes[i].downForSafeMode = false
            nodes[i].held = false
            if nodes[i].state == .stopped {
                nodes[i].state = .idle
                nodes[i].lastReason = "safe mode ended"
            }
        }
        return true
    }

    mutating func startLiquidation(_ reason: String, by: String) {
        enterSafeMode(reason, by: by)
        guard safeModeState?.liquidating == false else { return }
        safeModeState?.liquidating = true
        emit(.liquidation, root, detail: "ordered (by \(by)): \(reason); gateways flatten every position")
        effects.append(.broadcast(key: "liquidate", value: "start"))
    }

    /// A gateway reports its liquidation done (every position flat): the liquidation ends,
    /// safe mode stays until an operator or the guardian lifts it.
    public mutating func liquidationFinished(reportedBy gateway: NodeID, detail: String, at now: Instant) -> [Effect] {
        begin(at: now)
        guard nodes[gateway.index].worker?.role == .gateway, safeModeState?.liquidating == true else { return finish() }
        safeModeState?.liquidating = false
        emit(.liquidation, root, detail: "finished (reported by \(nodes[gateway.index].name): \(detail)); the tree stays in safe mode until: vigil safe-mode off")
        return finish()
    }

    /// An order from the guardian, checked to come from the worker with role guardian.
    mutating func guardianOrder(from sender: NodeID, _ order: GuardianOrderKind) {
        guard sender == guardianNode else {
            emit(.protocolViolation, sender, detail: "sent a guardian order but is not the guardian; ignored")
            return
        }
        switch order {
        case .safeModeOn(let why): enterSafeMode(why, by: "guardian")
        case .safeModeOff(let why): _ = leaveSafeMode(why, by: "guardian (all-clear)")
        case .liquidate(let why): startLiquidation(why, by: "guardian")
        }
    }

    /// At start-up, before `.start`: the safe mode a previous vigil left the tree in (it
    /// was not lifted, so it still holds). What it stops is not started; a liquidation in
    /// progress is resumed by the gateways, which hear of it as they start.
    public mutating func resumeSafeMode(_ state: SafeModeState, at now: Instant) -> [Effect] {
        begin(at: now)
        guard !isStarted, safeModeState == nil else { return finish() }
        safeModeState = state
        emit(.safeMode, root, detail: "still in safe mode from before vigil restarted (entered by \(state.by): \(state.reason))"
             + (state.liquidating ? "; the liquidation is resumed" : "") + "; leave it with: vigil safe-mode off")
        for i in nodes.indices where nodes[i].worker?.safeMode == .stop {
            nodes[i].downForSafeMode = true
            nodes[i].state = .stopped
            nodes[i].lastReason = "stopped by safe mode"
        }
        return finish()
    }

    // MARK: Operator

    /// `vigil safe-mode on|off`: an explicit operator override, journaled with who gave it.
    public mutating func setSafeMode(_ on: Bool, reason: String, by: String, at now: Instant) -> Result<[Effect], CommandError> {
        begin(at: now)
        guard isStarted, !isShuttingDown, outcome == nil else { return .failure(CommandError("the tree is stopping")) }
        if on {
            guard safeModeState == nil else { return .failure(CommandError("the tree is already in safe mode (since it was entered by \(safeModeState!.by): \(safeModeState!.reason))")) }
            enterSafeMode(reason, by: by)
        } else {
            guard leaveSafeMode(reason, by: by) else { return .failure(CommandError("the tree is not in safe mode")) }
        }
        return .success(finish())
    }

    /// `vigil liquidate --confirm`.
    public mutating func liquidate(reason: String, by: String, at now: Instant) -> Result<[Effect], CommandError> {
        begin(at: now)
        guard isStarted, !isShuttingDown, outcome == nil else { return .failure(CommandError("the tree is stopping")) }
        guard nodes.contains(where: { $0.worker?.role == .gateway }) else {
            return .failure(CommandError("no worker has role gateway: nothing could liquidate"))
        }
        startLiquidation(reason, by: by)
        return .success(finish())
    }
}
