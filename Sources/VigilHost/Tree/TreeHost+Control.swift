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
            let (ok, body) = answer(request)
            follow(c, c.respond(ok: ok, body: body))
        case .closed:
            loop.forget(c.fd)
            connections.removeValue(forKey: c.fd)
        default:
            loop.setInterest(c.fd, events: c.epollEvents)
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
                let targets = tree.resolve(name).map { tree.name(of: $0) }.joined(separator: ", ")
                return (true, "\(request.command) \(targets): done; `vigil status` shows the result\n")
            case .failure(let error):
                return (false, error.message)
            }
        case "events":
            let limit = args.first.flatMap { Int($0) } ?? 50
            do {
                return (true, EventsReport.text(try journal.events(limit: limit)))
            } catch {
                return (false, "cannot read the journal: \(error)")
            }
        case "ping":
            return (true, "pong \(getpid())\n")
        default:
            return (false, "unknown command '\(request.command)'; try: status, stop, start, restart, kill, events")
        }
    }
}
