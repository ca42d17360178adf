/// Predicted failures: the worker with role `predictor` forecasts that a worker will fail
/// within a horizon and advises `restart` (a planned handoff now, its state carried over,
/// before the failure: a leaking worker starts again from a small heap) or `watch` (journal
/// only: a crash loop is not cured by one more restart).
///
/// Rules:
/// - Advice is taken only from the worker with role predictor; anyone else's is journaled
///   as a protocol violation and ignored.
/// - Every forecast is journaled (`prediction`) with its model, forecast and horizon, and
///   settled exactly once (see `PredictionLedger`): confirmed, refuted or missed.
/// - A predicted restart is a planned handoff (`handoff:` decides overlap or stop_first),
///   never a failure: restarts, intensity and backoff are untouched.
/// - A guarded worker is replaced only with the guardian's consent, asked the same question
///   as for a restart, with the forecast as the reason. Unlike a failure, no answer (or no
///   live guardian) is not a reason for safe mode: nothing has failed, so the worker just
///   keeps running; safe mode or liquidation is entered only if the guardian says so.
/// - Nothing is done for a worker that is not running and READY, is in a handoff already,
///   or is guarded while the tree is in safe mode.
extension SupervisionTree {
    /// A guardian question about a predicted failure, waiting for its verdict.
    struct PredictionQuestion: Hashable, Sendable {
        var node: NodeID
        var incarnation: UInt64
        var predictionID: UInt64
        var reason: String
    }

    /// Whether the tree has a predictor at all: without one, failures are not journaled
    /// as missed forecasts.
    var hasPredictor: Bool { nodes.contains { $0.worker?.role == .predictor } }

    mutating func advise(_ a: PredictionAdvice, from sender: NodeID) {
        guard nodes[sender.index].worker?.role == .predictor else {
            emit(.protocolViolation, sender, detail: "sent a failure forecast about \(a.worker) but is not the predictor (role: predictor); ignored")
            return
        }
        let ids = resolve(a.worker)
        guard ids.count == 1, let id = ids.first, nodes[id.index].worker != nil, nodes[id.index].pid != nil else {
            emit(.prediction, sender, detail: "forecast about \(a.worker), which is not one running worker; ignored")
            return
        }
        if let pid = a.pid, pid != nodes[id.index].pid {
            // Late: the process it was about is gone (failed, replaced); its successor's
            // own samples will tell.
            emit(.prediction, id, detail: "forecast (\(a.model)) about pid \(pid), which is no longer \(a.worker)'s process; ignored")
            return
        }
        // A failure is seen only at sampling resolution (a memory limit is checked once per
        // sample): the horizon is checked with two sample intervals of grace.
        guard let entry = ledger.open(worker: nodes[id.index].name, incarnation: nodes[id.index].incarnation, model: a.model,
                                      action: a.action, horizon: a.horizon + settings.sampleInterval * 2, at: now) else {
            return  // the same model's forecast for this process is open already
        }
        timers.schedule(.predictionHorizon(entry.id), at: entry.deadline)
        let line = "id=\(entry.id) model=\(a.model) action=\(a.action.rawValue) forecast=\(PredictionLedger.Outcome.seconds(a.forecast)) horizon=\(PredictionLedger.Outcome.seconds(a.horizon)): \(a.reason)"
        guard a.action == .restart else {
            emit(.prediction, id, detail: "\(line); journaled, checked within the horizon")
            return
        }
        if let why = predictedRestartRefusal(id) {
            emit(.prediction, id, detail: "\(line); not acted on: \(why)")
            return
        }
        let reason = "predicted failure (\(a.model), in \(PredictionLedger.Outcome.seconds(a.forecast)))"
        guard nodes[id.index].worker?.guarded == true else {
            emit(.prediction, id, detail: "\(line); planned handoff (\(nodes[id.index].worker!.handoff.rawValue))")
            act(on: entry.id, id, reason: reason)
            return
        }
        guard let guardian = guardianNode, nodes[guardian.index].state == .running else {
            emit(.prediction, id, detail: "\(line); not acted on: \(nodes[id.index].name) is guarded and no guardian is running to approve the restart")
            return
        }
        nextQuestion += 1
        let question = GuardianQuestion(id: nextQuestion, child: nodes[id.index].name, reason: "\(reason): \(a.reason)",
                                        recentRestarts: recentRestarts(of: id), incarnation: nodes[id.index].incarnation)
        predictionQuestions[question.id] = PredictionQuestion(node: id, incarnation: nodes[id.index].incarnation,
                                                              predictionID: entry.id, reason: reason)
        timers.schedule(.guardianTimeout(question.id), at: now + settings.guardianTimeout)
        emit(.prediction, id, detail: "\(line); guarded: asking the guardian (question \(question.id))")
        emit(.guardianAsked, id, detail: "question \(question.id): may \(nodes[id.index].name) be replaced now (planned handoff) after a \(reason)? (\(question.recentRestarts) recent restarts)")
        effects.append(.askGuardian(guardian, question))
    }

    /// Why a predicted restart of `id` is not made now, if it is not.
    func predictedRestartRefusal(_ id: NodeID) -> String? {
        let n = nodes[id.index]
        guard isStarted, !isShuttingDown, outcome == nil else { return "the tree is stopping" }
        guard n.state == .running else { return "\(n.name) is \(stateText(id)), not running" }
        if let p = n.parent, nodes[p.index].plan != nil || nodes[p.index].state != .running {
            return "\(nodes[p.index].name) is busy restarting or stopping its children"
        }
        if n.worker?.guarded == true, safeModeState != nil { return "\(n.name) is guarded and the tree is in safe mode" }
        return handoffRefusal([id], name: n.name)?.message
    }

    private mutating func act(on predictionID: UInt64, _ id: NodeID, reason: String) {
        ledger.markActed(predictionID)
        effects.append(.plannedHandoff(id, reason: reason))
    }

    /// The guardian answered a question about a predicted failure: true if it was one.
    mutating func predictionVerdict(_ qid: UInt64, _ verdict: GuardianVerdict) -> Bool {
        guard let q = predictionQuestions.removeValue(forKey: qid) else { return false }
        let name = nodes[q.node.index].name
        switch verdict {
        case .allow:
            if nodes[q.node.index].incarnation != q.incarnation {
                emit(.verdict, q.node, detail: "question \(qid): allow; but the incarnation it was about is gone: nothing to do")
            } else if let why = predictedRestartRefusal(q.node) {
                emit(.verdict, q.node, detail: "question \(qid): allow; but not acted on: \(why)")
            } else {
                emit(.verdict, q.node, detail: "question \(qid): allow; planned handoff of \(name) (\(nodes[q.node.index].worker!.handoff.rawValue))")
                act(on: q.predictionID, q.node, reason: q.reason)
            }
        case .delay(let d, let why):
            emit(.verdict, q.node, detail: "question \(qid): delay \(d.topologyText) (\(why)); \(name) keeps running: a forecast is not acted on late")
        case .deny(let why):
            emit(.verdict, q.node, detail: "question \(qid): deny (\(why)); \(name) keeps running")
        case .safeMode(let why):
            emit(.verdict, q.node, detail: "question \(qid): safe mode (\(why))")
            enterSafeMode(why, by: "guardian")
        case .liquidate(let why):
            emit(.verdict, q.node, detail: "question \(qid): liquidate (\(why))")
            startLiquidation(why, by: "guardian")
        }
        return true
    }

    /// No verdict in time about a predicted failure: the worker keeps running (nothing has
    /// failed, so there is nothing to be safe from yet). True if the question was one.
    mutating func predictionQuestionTimedOut(_ qid: UInt64) -> Bool {
        guard let q = predictionQuestions.removeValue(forKey: qid) else { return false }
        emit(.verdict, q.node, detail: "question \(qid): no answer within \(settings.guardianTimeout.topologyText); \(nodes[q.node.index].name) keeps running (a forecast is no failure: no fail-safe)")
        return true
    }

    /// Carries out a planned handoff the predictor's advice set in motion, once the shell
    /// has the fresh checkpoint: as `restart --handoff` would, but journaled as the
    /// predictor's. Checked again, since time has passed.
    public mutating func handoffByPrediction(_ id: NodeID, reason: String, at now: Instant) -> [Effect] {
        begin(at: now)
        if let why = predictedRestartRefusal(id) {
            emit(.prediction, id, detail: "planned handoff for the \(reason) not made: \(why)")
            return finish()
        }
        if nodes[id.index].worker?.handoff == .overlap {
            beginOverlap(id, by: "predictor")
        } else {
            stop(id, then: .operatorRestart, verb: "handoff (stop first) for a \(reason)", by: "predictor")
        }
        return finish()
    }

    /// The worker failed: its open forecasts are confirmed, or the failure was missed.
    mutating func settleForecasts(failed id: NodeID) {
        guard hasPredictor, nodes[id.index].worker != nil else { return }
        for o in ledger.failed(worker: nodes[id.index].name, at: now) {
            emit(.prediction, id, detail: o.detail + ": " + (nodes[id.index].lastReason ?? "failed"))
        }
    }

    /// A new incarnation of the worker is READY: forecasts acted on are forestalled.
    mutating func settleForecasts(ready id: NodeID) {
        guard hasPredictor, nodes[id.index].worker != nil else { return }
        for o in ledger.replaced(worker: nodes[id.index].name, incarnation: nodes[id.index].incarnation, at: now) {
            emit(.prediction, id, detail: o.detail + ": replaced by a planned handoff before it failed")
        }
    }

    /// A forecast's horizon has passed: refuted if it is still open.
    mutating func forecastHorizonPassed(_ predictionID: UInt64) {
        guard let o = ledger.expire(predictionID, at: now) else { return }
        let id = resolve(o.worker).first ?? root
        emit(.prediction, id, detail: o.detail + ": no failure within the horizon")
    }

    /// Forecasts not settled yet (for `vigil status` and tests).
    public var openForecasts: [PredictionLedger.Entry] { ledger.unsettled.values.sorted { $0.id < $1.id } }
}

/// What the predictor advises about a worker it forecasts to fail.
public enum PredictionAction: String, Hashable, Sendable {
    /// A planned handoff now, before the failure.
    case restart
    /// Journal and check the forecast only.
    case watch
}

/// A forecast from the predictor: `worker` fails in about `forecast`, and within `horizon`.
public struct PredictionAdvice: Hashable, Sendable {
    public var worker: String
    /// The process it is about (nil: whichever runs now).
    public var pid: Int32?
    public var action: PredictionAction
    public var model: String
    public var forecast: Duration
    public var horizon: Duration
    public var reason: String

    public init(worker: String, pid: Int32? = nil, action: PredictionAction, model: String, forecast: Duration,
                horizon: Duration, reason: String) {
        self.worker = worker
        self.pid = pid
        self.action = action
        self.model = model
        self.forecast = forecast
        self.horizon = horizon
        self.reason = reason
    }
}
