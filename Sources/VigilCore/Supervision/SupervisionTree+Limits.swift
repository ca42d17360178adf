/// Resource limits: a worker whose memory exceeds its `memory_limit` is killed (SIGKILL to
/// its group, no grace: it is consuming what the machine may not have) and the exit is a
/// failure, restarted under its restart type, intensity and backoff like a crash. The shell
/// measures; the core decides and journals, so `vigil status` and `vigil events` say why.
extension SupervisionTree {
    mutating func memoryLimitExceeded(_ id: NodeID, _ inc: UInt64, rssBytes: UInt64) {
        let n = nodes[id.index]
        guard n.incarnation == inc, let pid = n.pid, let limit = n.worker?.memoryLimit else { return }
        switch n.state {
        case .starting, .running: break
        default: return  // already on its way out
        }
        let why = "killed for exceeding memory_limit (RSS \(MemorySize.approximate(rssBytes)) > \(MemorySize.text(limit)))"
        emit(.memoryLimit, id, detail: "\(why); SIGKILL to its group")
        nodes[id.index].state = .stopping(.memoryLimit(why))
        effects.append(.signal(id, pid: pid, signal: SignalName.kill))
    }
}
