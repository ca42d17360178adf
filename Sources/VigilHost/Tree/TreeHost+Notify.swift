import CShim
import Glibc
import VigilCore
import VigilWire

/// sd_notify from children: what an unmodified daemon (or a libsystemd worker) says to
/// `NOTIFY_SOCKET`, attributed by the sender's pid as the kernel reports it.
extension TreeHost {
    /// Reads every waiting datagram (bounded per wake-up, so a flood cannot starve the loop).
    func readNotifications() {
        for _ in 0..<512 {
            guard let d = notifySocket.receive() else { return }
            handle(d)
        }
    }

    /// The process that sent a datagram: a child's main process, or a process in its
    /// group (a daemon's helper, or `systemd-notify` run from a script), as the incarnation
    /// it belongs to (during a handoff a worker has two). nil for anyone else.
    func sender(of pid: Int32) -> LiveChild? {
        guard pid > 0 else { return nil }
        if let id = nodeByPID[pid] { return liveChild(id, pid: pid) }
        let group = getpgid(pid)
        guard group > 0, let id = nodeByPID[group] else { return nil }
        return liveChild(id, pid: group)
    }

    private func handle(_ d: NotifySocket.Datagram) {
        var fds = d.fds
        defer { for fd in fds { close(fd) } }  // whatever is not stored is closed
        guard var child = sender(of: d.pid) else { return }  // not a child: ignored
        let id = child.node
        let name = tree.name(of: id)
        let t = now
        guard let bytes = d.bytes, let m = try? NotifyMessage(parsing: bytes) else {
            LogLine.write("\(LogLine.clock(vigil_realtime_ns())) vigil: ignored a malformed or oversized (\(d.length) bytes) notification from \(name) pid \(d.pid)")
            return
        }
        if m.isSet("BARRIER") { return }  // closing its fd (the defer) is the answer
        if let text = m["STATUS"] { child.statusText = Self.displayable(text) }
        if m.isSet("STOPPING") { child.statusText = "stopping" }
        if m.isSet("RELOADING") { child.statusText = "reloading" + (m["STATUS"].map { ": " + Self.displayable($0) } ?? "") }
        if let e = m["ERRNO"].flatMap(Int32.init), e > 0 {
            apply([.record(Record(.report, node: name, pid: d.pid, incarnation: child.incarnation,
                                  detail: "reported ERRNO=\(e) (\(String(cString: strerror(e))))"))])
        }
        store(child)
        if m.isSet("FDSTOREREMOVE") { removeStored(m, of: id, name: name, pid: d.pid) }
        if m.isSet("FDSTORE") {
            keepStored(&fds, m, of: id, name: name, pid: d.pid)
        }
        let at = Instant(nanoseconds: t)
        switch m["WATCHDOG"] {
        case "1": tree.heartbeat(id, incarnation: child.incarnation, at: at)
        case "trigger": apply(tree.triggerWatchdog(id, incarnation: child.incarnation, at: at))
        default: break
        }
        if let usec = m["WATCHDOG_USEC"].flatMap(UInt64.init), usec > 0 {
            apply(tree.setWatchdog(id, incarnation: child.incarnation, to: .microseconds(Int64(clamping: usec)), at: at))
        }
        if let usec = m["EXTEND_TIMEOUT_USEC"].flatMap(UInt64.init), usec > 0 {
            apply(tree.extendTimeout(id, incarnation: child.incarnation, by: .microseconds(Int64(clamping: usec)), at: at))
        }
        if m.isSet("READY") {
            if tree.workerSpec(of: id)?.readiness == .notify {
                apply(tree.handle(.ready(id, incarnation: child.incarnation), at: Instant(nanoseconds: t)))
            } else if toldAboutNotifyReadiness.insert(id).inserted {
                apply([.record(Record(.report, node: name, pid: d.pid, incarnation: child.incarnation,
                                      detail: "sent READY=1 to NOTIFY_SOCKET, which does not count for readiness: \(tree.workerSpec(of: id)?.readiness.rawValue ?? "?"); set readiness: notify in its spec to wait for it"))])
            }
        }
    }

    /// FDSTORE=1: keeps the datagram's descriptors (they leave `fds`), journaled.
    private func keepStored(_ fds: inout [Int32], _ m: NotifyMessage, of id: NodeID, name: String, pid: Int32) {
        let incarnation = sender(of: pid)?.incarnation
        switch m.fdName() {
        case .failure(let e):
            apply([.record(Record(.fdStore, node: name, pid: pid, incarnation: incarnation,
                                  detail: "refused \(fds.count) descriptor(s): \(e); nothing stored"))])
        case .success(let given):
            guard !fds.isEmpty else { return }
            let fdName = given ?? "stored"
            let outcome = fdStore.store(fds, name: fdName, for: name)
            fds = []
            var detail = "stored \(outcome.stored) descriptor(s) as '\(fdName)' (\(fdStore.handover(for: name).count) kept for the next incarnation)"
            if outcome.duplicates > 0 { detail += "; \(outcome.duplicates) already stored" }
            if outcome.refused > 0 { detail += "; REFUSED \(outcome.refused): at most \(FDStore.defaultLimit) per child" }
            if notifier.isEnabled { detail += forwardUpstream(outcome.kept, child: name, name: fdName) }
            apply([.record(Record(.fdStore, node: name, pid: pid, incarnation: incarnation, detail: detail))])
        }
    }

    /// FDSTOREREMOVE=1 + FDNAME=: drops the stored descriptors by that name.
    private func removeStored(_ m: NotifyMessage, of id: NodeID, name: String, pid: Int32) {
        guard case .success(let fdName?) = m.fdName() else { return }
        let n = fdStore.remove(name: fdName, for: name)
        if n > 0, notifier.isEnabled, let upstream = FDStore.upstreamName(child: name, name: fdName) {
            _ = try? notifier.removeStoredDescriptors(name: upstream)
        }
        if n > 0 {
            apply([.record(Record(.fdStore, node: name, pid: pid, incarnation: sender(of: pid)?.incarnation,
                                  detail: "removed \(n) stored descriptor(s) named '\(fdName)'"))])
        }
    }

    /// Hands newly stored descriptors on to systemd's store for vigil, so they outlive
    /// this vigil process; a note for the journal line.
    private func forwardUpstream(_ fds: [Int32], child: String, name: String) -> String {
        guard !fds.isEmpty else { return "" }
        guard let upstream = FDStore.upstreamName(child: child, name: name) else {
            return "; not kept by systemd (name too long): lost if vigil restarts"
        }
        do {
            try notifier.storeDescriptors(fds, name: upstream)
            return "; kept by systemd too, as '\(upstream)'"
        } catch {
            return "; systemd did not keep them (\(error)): lost if vigil restarts"
        }
    }

    /// At start-up: the descriptors systemd kept for vigil's children (see FDStore).
    func adoptDescriptorsFromSystemd() {
        var adopted: [String: Int] = [:]
        for (upstream, fd) in SystemdNotifier.receivedDescriptors() {
            guard let (child, name) = FDStore.parseUpstreamName(upstream), !tree.resolve(child).isEmpty else {
                close(fd)  // not one vigil stored, or for a child no longer in the topology
                continue
            }
            _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
            fdStore.adopt(fd, name: name, for: child)
            adopted[child, default: 0] += 1
        }
        for (child, n) in adopted.sorted(by: { $0.key < $1.key }) {
            apply([.record(Record(.fdStore, node: child, detail: "took back \(n) stored descriptor(s) from systemd's store after vigil restarted"))])
        }
    }
}
