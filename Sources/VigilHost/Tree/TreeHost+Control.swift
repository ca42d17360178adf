import CShim
import Glibc
import VigilCore

extension TreeHost {
    func acceptControl() {
        guard let server = control else { return }
        for c in server.acceptReady(now: now) {
            connections[c.fd] = c
            // Registration only fails when out of memory; the client then times out.
            try? loop.register(c.fd, as: .controlConnection(c.fd), events: c.epollEvents)
        }
    }

    func serviceConnection(_ fd: Int32, _ ready: EventLoop.Readiness) {
        guard let c = connections[fd] else { return }
        follow(c, c.handle(events: ready.events))
    }

    /// Acts on what a connection reports: answers a request, re-arms, or forgets it.
    func follow(_ c: ControlConnection, _ progress: ControlConnection.Progress) {
        switch progress {
        case .request(let request):
            if request.command == "restart", request.arguments.contains("--handoff") {
                startHandoff(request, on: c)
                return
            }
            if request.command == "reload" {
                startReload(request, on: c)
                return
            }
            switch startWaiting(for: request, on: c) {
            case .waiting(let pending):
                pendingCommands.append(pending)
                answerFinishedCommands()
            case .answered:
                break
            case .notAWaitingCommand:
                let (ok, body) = answer(request)
                follow(c, c.respond(ok: ok, body: body))
            }
        case .closed:
            loop.forget(c.fd)
            connections.removeValue(forKey: c.fd)
        default:
            loop.setInterest(c.fd, events: c.epollEvents)
        }
    }

    /// What `startWaiting` did with a request.
    enum Waiting {
        /// Carried out; answered once the work is done.
        case waiting(PendingCommand)
        /// Refused (or otherwise answered at once): nothing more to do.
        case answered
        /// Not a command that waits: answer it at once.
        case notAWaitingCommand
    }

    /// `stop`, `start` and `restart` answer once the work is done (like `systemctl`), or
    /// with an error after a deadline; `--no-block` answers at once.
    func startWaiting(for request: ControlRequest, on connection: ControlConnection) -> Waiting {
        let verb = request.command
        guard ["stop", "start", "restart"].contains(verb), !request.arguments.contains("--no-block") else { return .notAWaitingCommand }
        let words = request.words.filter { $0 != "--no-block" }
        let (ok, body) = answer(ControlRequest(words: words, peerUID: request.peerUID, peerPID: request.peerPID))
        guard ok, let name = words.dropFirst().first else {
            follow(connection, connection.respond(ok: ok, body: body))
            return .answered
        }
        let ids = tree.resolve(name)
        let previous = Dictionary(uniqueKeysWithValues: ids.map { ($0, tree.incarnation(of: $0)) })
        return .waiting(PendingCommand(connection: connection, verb: verb, name: name, nodes: ids, previous: previous,
                                       since: now, deadline: now + budget(verb, ids).nanoseconds))
    }

    /// How long `verb` may take on `ids` before it is reported as not finished: each one's
    /// shutdown, plus its ready timeout unless it is only stopped.
    func budget(_ verb: String, _ ids: [NodeID]) -> Duration {
        var budget: Duration = .seconds(2)
        for id in ids {
            if let spec = tree.workerSpec(of: id) {
                if case .timeout(let t) = spec.shutdown { budget += t }
                if verb != "stop" { budget += spec.readyTimeout }
            } else {
                budget += .seconds(30)
            }
        }
        return budget
    }

    /// `vigil reload` answers once the reload took effect and what it (re)started is READY,
    /// like `systemctl reload`; a refused file is answered at once.
    func startReload(_ request: ControlRequest, on c: ControlConnection) {
        let (ok, body) = reload(requestedBy: "vigil reload from uid \(request.peerUID) pid \(request.peerPID)")
        guard ok, let plan = lastReloadPlan, !plan.isEmpty else {
            follow(c, c.respond(ok: ok, body: body))
            return
        }
        var p = PendingCommand(connection: c, verb: "reload", name: configuration.topology.file, nodes: [], previous: [:],
                               since: now, deadline: now + 120_000_000_000)
        p.waitFor = plan.changed + plan.added
        p.summary = body
        pendingCommands.append(p)
        answerFinishedCommands()
    }

    /// Answers every waiting command whose work is done or whose deadline has passed.
    func answerFinishedCommands() {
        for h in handoffs.due(at: now) { carryOut(h) }
        guard !pendingCommands.isEmpty else { return }
        let t = now
        pendingCommands.removeAll { p in
            if p.connection.isClosed { return true }
            let states = tree.status(at: Instant(nanoseconds: t))
            let done: Bool
            switch p.verb {
            case "stop":
                done = p.nodes.allSatisfy { tree.pid(of: $0) == nil && states[$0.index].state.hasPrefix("stopped") }
            case "restart":
                done = p.nodes.allSatisfy { tree.isReady($0) && (tree.workerSpec(of: $0) == nil || tree.incarnation(of: $0) > p.previous[$0]!) }
            case "reload":
                let pending = p.waitFor.filter { n in tree.isReloading || !tree.resolve(n).allSatisfy(tree.isReady) }
                if pending.isEmpty {
                    follow(p.connection, p.connection.respond(ok: true, body: p.summary.trimmingCharacters(in: "\n")
                                                              + "; done in \(StatusReport.age(.nanoseconds(t - p.since)))\n"))
                    return true
                }
                if t >= p.deadline {
                    follow(p.connection, p.connection.respond(ok: false, body: "reload took effect, but \(pending.joined(separator: ", ")) is not READY yet; see `vigil status` and `vigil events`"))
                    return true
                }
                return false
            case "handoff":
                switch handoffProgress(p, states) {
                case .inProgress: done = false
                case .done: done = true
                case .failed(let why):
                    follow(p.connection, p.connection.respond(ok: false, body: "handoff \(p.name) failed: \(why); see `vigil events \(p.name)`"))
                    return true
                }
            default:
                done = p.nodes.allSatisfy { tree.isReady($0) }
            }
            let took = StatusReport.age(.nanoseconds(t - p.since))
            if done {
                let summary = p.nodes.map { n in "\(tree.name(of: n)): \(states[n.index].state)\(tree.pid(of: n).map { " (pid \($0))" } ?? "")" }
                follow(p.connection, p.connection.respond(ok: true, body: "\(p.verb) \(p.name): done in \(took)\n" + summary.joined(separator: "\n") + "\n"))
                return true
            }
            if t >= p.deadline {
                let summary = p.nodes.map { "\(tree.name(of: $0)) is \(states[$0.index].state)" }.joined(separator: ", ")
                follow(p.connection, p.connection.respond(ok: false, body: "\(p.verb) \(p.name) did not finish within \(took): \(summary); see `vigil status` and `vigil events`"))
                return true
            }
            return false
        }
    }

    func expireConnections(at t: Int64) {
        for c in connections.values where (c.deadline ?? Int64.max) <= t {
            follow(c, c.checkDeadline(now: t))
        }
    }

    /// One operator request in, (ok, body) out.
    func answer(_ request: ControlRequest) -> (Bool, String) {
        let args = Array(request.arguments)
        switch request.command {
        case "status":
            let report = StatusReport(host: self)
            return (true, args.contains("--json") ? report.json() : report.text())
        case "stop", "start", "restart", "kill":
            guard let name = args.first else { return (false, "usage: \(request.command) NAME") }
            var command: Command
            switch request.command {
            case "stop": command = .stop(name)
            case "start": command = .start(name)
            case "restart": command = .restart(name)
            default:
                let signalText = args.count > 1 ? args[1] : "TERM"
                guard let signal = SignalName.number(signalText) else {
                    return (false, "unknown signal '\(signalText)'; use a name like TERM, KILL, HUP, STOP or a number")
                }
                command = .kill(name, signal: signal)
            }
            let who = Record(.command, node: name, detail: "\(request.words.joined(separator: " ")) from uid \(request.peerUID) pid \(request.peerPID)")
            try? journal.append([who], at: vigil_realtime_ns())
            switch tree.handle(command, at: Instant(nanoseconds: now)) {
            case .success(let effects):
                apply(effects)
                if request.command == "stop" { flushStoredDescriptors(of: tree.resolve(name)) }
                let targets = tree.resolve(name).map { tree.name(of: $0) }.joined(separator: ", ")
                return (true, "\(request.command) \(targets): requested; `vigil status` shows the progress\n")
            case .failure(let error):
                return (false, error.message)
            }
        case "safe-mode":
            guard let mode = args.first, mode == "on" || mode == "off" else {
                return (false, "usage: safe-mode on|off [REASON...]")
            }
            let reason = args.count > 1 ? args.dropFirst().joined(separator: " ") : "operator override"
            let by = "operator uid \(request.peerUID) pid \(request.peerPID)"
            switch tree.setSafeMode(mode == "on", reason: reason, by: by, at: Instant(nanoseconds: now)) {
            case .success(let effects):
                apply(effects)
                return (true, "safe mode \(mode)\n")
            case .failure(let e):
                return (false, e.message)
            }
        case "liquidate":
            guard args.contains("--confirm") else {
                return (false, "liquidation flattens every position with market orders; to do it, run: vigil liquidate --confirm")
            }
            let by = "operator uid \(request.peerUID) pid \(request.peerPID)"
            switch tree.liquidate(reason: "ordered by an operator", by: by, at: Instant(nanoseconds: now)) {
            case .success(let effects):
                apply(effects)
                return (true, "liquidation ordered; the tree is in safe mode; `vigil events` shows each step\n")
            case .failure(let e):
                return (false, e.message)
            }
        case "events":
            let limit = args.first.flatMap { Int($0) } ?? 50
            do {
                return (true, EventsReport.text(try journal.events(limit: limit)))
            } catch {
                return (false, "cannot read the journal: \(error)")
            }
        case "metrics":
            return (true, MetricsReport(host: self).text())
        case "ping":
            return (true, "pong \(getpid())\n")
        default:
            return (false, "unknown command '\(request.command)'; try: status, metrics, stop, start, restart, kill, safe-mode, liquidate, events")
        }
    }
}

extension TreeHost {
    /// An operator stop ends a child's life, not just one run: like systemd on a full
    /// stop, vigil closes the descriptors it stored for it (journaled).
    func flushStoredDescriptors(of ids: [NodeID]) {
        for id in ids where tree.workerSpec(of: id) != nil {
            let name = tree.name(of: id)
            if notifier.isEnabled {
                for fdName in fdStore.names(of: name) {
                    if let upstream = FDStore.upstreamName(child: name, name: fdName) { _ = try? notifier.removeStoredDescriptors(name: upstream) }
                }
            }
            let n = fdStore.flush(name)
            if n > 0 {
                apply([.record(Record(.fdStore, node: tree.name(of: id), detail: "closed \(n) stored descriptor(s): stopped by an operator"))])
            }
        }
    }
}
