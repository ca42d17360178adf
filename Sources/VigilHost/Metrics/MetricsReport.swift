import Glibc
import VigilCore

/// The tree as Prometheus metrics: what `GET /metrics` and `vigil metrics` answer.
///
/// Read fresh at each scrape from the core's state and /proc (the same `ProcUsage` the
/// predictor's samples use), so a scrape costs two small /proc reads per live worker and
/// nothing between scrapes.
struct MetricsReport {
    /// The states a worker's `vigil_child_state` series take, one series each (a
    /// Prometheus "state set": exactly one is 1), so `vigil_child_state{state="backoff"}
    /// == 1` selects the children in backoff and no series comes and goes.
    static let states = ["waiting", "spawning", "starting", "ready", "stopping", "backoff", "awaiting_guardian",
                         "handing_off", "stopped", "completed", "exited"]

    struct Child {
        var name: String
        var supervisor: String
        var state: String
        var incarnation: UInt64
        var restarts: Int
        var lastExit: ProcessExit?
        var uptime: Duration?
        var usage: ProcUsage?
    }

    struct Supervisor {
        var name: String
        var intensity: IntensityUsage
    }

    var children: [Child] = []
    var supervisors: [Supervisor] = []
    var safeMode: SafeModeState?
    var vigilUptime: Duration
    var samplesSent: Int
    var advisories: Int

    init(host: TreeHost) {
        let t = host.now
        let now = Instant(nanoseconds: t)
        let tree = host.tree
        safeMode = tree.safeMode
        vigilUptime = .nanoseconds(t - host.startedAt)
        samplesSent = host.predictorSamplesSent
        advisories = host.predictorAdvisories
        for s in tree.status(at: now) {
            if s.isSupervisor {
                if let usage = tree.intensityUsage(of: s.id, at: now) {
                    supervisors.append(Supervisor(name: s.name, intensity: usage))
                }
                continue
            }
            let parent = tree.parent(of: s.id).map { tree.name(of: $0) } ?? ""
            children.append(Child(name: s.name, supervisor: parent, state: Self.state(s.state),
                                  incarnation: s.incarnation, restarts: s.restarts, lastExit: s.lastExit,
                                  uptime: s.startedAt.map { now.duration(since: $0) },
                                  usage: host.live[s.id].flatMap { ProcUsage.read(pid: $0.processPID) }))
        }
    }

    /// `vigil status`'s state text (`backoff 1.6s`, `stopped (operator)`) as one of `states`.
    static func state(_ text: String) -> String {
        if text.hasPrefix("waiting") { return "waiting" }
        if text.hasPrefix("backoff") { return "backoff" }
        if text.hasPrefix("stopped") { return "stopped" }
        if text.hasPrefix("exited") { return "exited" }
        let word = text.replacingSpaces()
        return states.contains(word) ? word : "stopped"
    }

    func text() -> String {
        var p = PrometheusText()
        let ticks = Double(max(sysconf(Int32(_SC_CLK_TCK)), 1))
        func each(_ name: String, _ kind: PrometheusText.Kind, _ help: String, _ value: (Child) -> Double?) {
            p.family(name, kind, help)
            for c in children {
                if let v = value(c) { p.sample(name, ["child": c.name, "supervisor": c.supervisor], v) }
            }
        }

        p.family("vigil_child_state", .gauge, "1 for the state the worker is in, 0 for the others.")
        for c in children {
            for s in Self.states {
                p.sample("vigil_child_state", ["child": c.name, "supervisor": c.supervisor, "state": s], s == c.state ? 1 : 0)
            }
        }
        each("vigil_child_restarts_total", .counter, "Restarts after the worker's own failures (what its intensity and backoff see), as in vigil status.") {
            Double($0.restarts)
        }
        each("vigil_child_incarnation", .gauge, "The worker's current incarnation: 1 for its first process, one more for each spawn.") {
            Double($0.incarnation)
        }
        each("vigil_child_last_exit_code", .gauge, "Exit status of the worker's last process, when it exited by itself.") {
            if case .exited(let code)? = $0.lastExit { Double(code) } else { nil }
        }
        each("vigil_child_last_exit_signal", .gauge, "Signal number that killed the worker's last process, when a signal did.") {
            if case .signaled(let signal)? = $0.lastExit { Double(signal) } else { nil }
        }
        each("vigil_child_uptime_seconds", .gauge, "Seconds since the worker's current process was spawned (absent while it is down).") {
            $0.uptime.map { Double($0.nanoseconds) / 1e9 }
        }
        each("vigil_child_resident_memory_bytes", .gauge, "Resident set size of the worker's main process, from /proc.") {
            $0.usage.map { Double($0.rssKiB) * 1024 }
        }
        each("vigil_child_cpu_seconds_total", .counter, "User and system CPU seconds of the worker's current process (starts over at each restart).") {
            $0.usage.map { Double($0.cpuTicks) / ticks }
        }

        p.family("vigil_supervisor_intensity_restarts", .gauge, "Restarts within the supervisor's current intensity window (period).")
        for s in supervisors { p.sample("vigil_supervisor_intensity_restarts", ["supervisor": s.name], s.intensity.used) }
        p.family("vigil_supervisor_intensity_max_restarts", .gauge, "max_restarts: one restart more than this within the period fails the supervisor.")
        for s in supervisors { p.sample("vigil_supervisor_intensity_max_restarts", ["supervisor": s.name], s.intensity.allowed) }
        p.family("vigil_supervisor_intensity_period_seconds", .gauge, "The supervisor's intensity window.")
        for s in supervisors {
            p.sample("vigil_supervisor_intensity_period_seconds", ["supervisor": s.name], Double(s.intensity.period.nanoseconds) / 1e9)
        }

        p.family("vigil_safe_mode", .gauge, "1 while the tree is in safe mode (guarded children are not restarted).")
        p.sample("vigil_safe_mode", safeMode == nil ? 0 : 1)
        p.family("vigil_liquidation_ordered", .gauge, "1 while a liquidation ordered in this safe mode is under way.")
        p.sample("vigil_liquidation_ordered", safeMode?.liquidating == true ? 1 : 0)
        p.family("vigil_predictor_samples_sent_total", .counter, "Resource samples vigil sent to workers with role predictor.")
        p.sample("vigil_predictor_samples_sent_total", samplesSent)
        p.family("vigil_predictor_advisories_total", .counter, "Reports received from workers with role predictor (the reference ml-predictor logs its anomalies instead, so this stays 0 with it).")
        p.sample("vigil_predictor_advisories_total", advisories)
        p.family("vigil_uptime_seconds", .gauge, "Seconds since this vigil process started its tree.")
        p.sample("vigil_uptime_seconds", Double(vigilUptime.nanoseconds) / 1e9)
        return p.text
    }
}

private extension String {
    func replacingSpaces() -> String { String(map { $0 == " " ? "_" : $0 }) }
}
