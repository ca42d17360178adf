/// Liveness (systemd's `WatchdogSec=` for each child) and the timeouts a child may move
/// itself, as a child of systemd may: `WATCHDOG_USEC=`, `WATCHDOG=trigger`,
/// `EXTEND_TIMEOUT_USEC=`. Everything here is per incarnation: a replacement starts from
/// its spec again.
extension SupervisionTree {
    /// How late a watchdog check may run before vigil doubts its own observation: a
    /// quarter of the limit, at least 250 ms. Later than that vigil was not running on
    /// time (stopped, starved of CPU), so heartbeats may be waiting unread.
    static func watchdogGraceThreshold(_ limit: Duration) -> Duration {
        max(limit / 4, .milliseconds(250))
    }

    /// How long a hung child has between SIGABRT and SIGKILL, at most: enough for a stack
    /// trace or a core dump, short enough that healing stays fast (a hung child helps no
    /// one). Its `shutdown` when that is shorter.
    static let abortGrace: Duration = .seconds(1)

    /// The child is hung: SIGABRT to its group (a core dump or a stack trace says where it
    /// hung, as systemd's WatchdogSignal does), then SIGKILL after `abortGrace` (at once for
    /// brutal_kill). A failure like any crash afterwards. (The Swift runtime's backtracer
    /// prints a backtrace on SIGABRT and does not exit: the SIGKILL ends such a worker.)
    mutating func watchdogFired(_ id: NodeID, detail: String) {
        let n = nodes[id.index]
        guard let pid = n.pid else { return }
        nodes[id.index].state = .stopping(.watchdog)
        switch n.worker?.shutdown ?? .brutalKill {
        case .brutalKill:
            emit(.watchdog, id, detail: "\(detail); SIGKILL to its group (brutal_kill)")
            effects.append(.signal(id, pid: pid, signal: SignalName.kill))
        case .timeout(let t):
            abort(id, pid: pid, then: min(t, Self.abortGrace), detail: detail)
        case .infinity:
            abort(id, pid: pid, then: Self.abortGrace, detail: detail)
        }
    }

    private mutating func abort(_ id: NodeID, pid: Int32, then grace: Duration, detail: String) {
        emit(.watchdog, id, detail: "\(detail); SIGABRT to its group, SIGKILL in \(grace.topologyText)")
        effects.append(.signal(id, pid: pid, signal: SignalName.abort))
        nodes[id.index].stopDeadline = now + grace
        timers.schedule(.shutdownTimeout(id, incarnation: nodes[id.index].incarnation), at: now + grace)
    }

    /// `WATCHDOG_USEC=`: the child sets its own watchdog for this incarnation.
    public mutating func setWatchdog(_ id: NodeID, incarnation: UInt64, to limit: Duration, at now: Instant) -> [Effect] {
        begin(at: now)
        guard nodes[id.index].incarnation == incarnation, limit > .zero, nodes[id.index].isAlive else { return finish() }
        nodes[id.index].watchdogLimit = limit
        emit(.watchdog, id, detail: "the child set its watchdog to \(limit.topologyText) (WATCHDOG_USEC)")
        if nodes[id.index].state == .running {
            let from = nodes[id.index].lastHeartbeat ?? now
            timers.schedule(.watchdog(id, incarnation: incarnation), at: from + limit)
        }
        return finish()
    }

    /// `WATCHDOG=trigger`: the child declares itself hung.
    public mutating func triggerWatchdog(_ id: NodeID, incarnation: UInt64, at now: Instant) -> [Effect] {
        begin(at: now)
        guard nodes[id.index].incarnation == incarnation else { return finish() }
        switch nodes[id.index].state {
        case .starting, .running: watchdogFired(id, detail: "the child triggered its watchdog (WATCHDOG=trigger)")
        default: break
        }
        return finish()
    }

    /// `EXTEND_TIMEOUT_USEC=`: while starting, the ready timeout, and while stopping, the
    /// shutdown timeout, move to at least `by` from now (never earlier), as systemd does.
    public mutating func extendTimeout(_ id: NodeID, incarnation: UInt64, by extra: Duration, at now: Instant) -> [Effect] {
        begin(at: now)
        guard nodes[id.index].incarnation == incarnation, extra > .zero else { return finish() }
        let until = now + extra
        switch nodes[id.index].state {
        case .starting:
            guard until > (nodes[id.index].readyDeadline ?? now) else { break }
            nodes[id.index].readyDeadline = until
            timers.schedule(.readyTimeout(id, incarnation: incarnation), at: until)
            emit(.report, id, detail: "the child extended its ready timeout by \(extra.topologyText) (EXTEND_TIMEOUT_USEC)")
        case .stopping:
            guard let deadline = nodes[id.index].stopDeadline, until > deadline else { break }
            nodes[id.index].stopDeadline = until
            timers.schedule(.shutdownTimeout(id, incarnation: incarnation), at: until)
            emit(.report, id, detail: "the child extended its shutdown timeout by \(extra.topologyText) (EXTEND_TIMEOUT_USEC)")
        default:
            break
        }
        return finish()
    }
}
