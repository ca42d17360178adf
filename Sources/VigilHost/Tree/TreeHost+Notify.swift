import CShim
import Glibc
import VigilCore
import VigilWire

/// sd_notify from children: what an unmodified daemon (or a libsystemd worker) says to
/// `NOTIFY_SOCKET`. Each child has a socket of its own in the runtime directory (0700), so
/// the socket says whose a datagram is, even from a helper that exited before vigil read
/// it; the kernel's sender pid only vetoes a live process of another group. Children
/// whose socket path would not fit share vigil's, attributed by the sender's pid.
extension TreeHost {
    /// Reads every waiting datagram on the shared socket (bounded per wake-up, so a flood
    /// cannot starve the loop).
    func readNotifications() {
        for _ in 0..<512 {
            guard let d = notifySocket.receive() else { return }
            handle(d, from: sender(of: d.pid))
        }
    }

    /// The same for one child's own socket. `known`: the child, when it is no longer
    /// tracked (its group is gone). Each datagram is handled with the child as the one
    /// before left it (a MAINPID= must not be undone by the READY=1 after it).
    func readNotifications(_ fd: Int32, of known: LiveChild? = nil) {
        guard let id = nodeByNotify[fd] ?? known?.node else { return }
        for _ in 0..<512 {
            guard let child = liveChild(id, notify: fd) ?? known, let d = child.notify?.receive() else { return }
            handle(d, from: isForeign(d.pid, to: child) ? nil : child)
        }
    }

    func liveChild(_ id: NodeID, notify fd: Int32) -> LiveChild? {
        if let c = live[id], c.notify?.fd == fd { return c }
        if let c = overlapping[id], c.notify?.fd == fd { return c }
        return nil
    }

    /// A live process outside the child's group: not the child's word. (A sender that is
    /// gone cannot be checked; only processes that can reach the 0700 runtime directory
    /// could have sent it.)
    private func isForeign(_ pid: Int32, to child: LiveChild) -> Bool {
        guard pid > 0, pid != child.pid else { return false }
        let group = getpgid(pid)
        return group > 0 && group != child.pid
    }

    /// At start-up: the per-child sockets a killed vigil left behind (no vigil reads them;
    /// the state lock says no other vigil runs here).
    func removeStaleNotifySockets() {
        let directory = configuration.paths.runtimeDirectory + "/notify"
        guard let dir = opendir(directory) else { return }
        defer { closedir(dir) }
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            if name.hasSuffix(".sock") { unlink(directory + "/" + name) }
        }
    }

    /// A socket of its own for a new incarnation, or nil (shared) when the path is too long.
    func ownNotifySocket(for name: String, incarnation: UInt64) -> NotifySocket? {
        let directory = configuration.paths.runtimeDirectory + "/notify"
        let path = directory + "/\(name).\(incarnation).sock"
        guard path.utf8.count < 108 else { return nil }
        _ = mkdir(directory, 0o700)
        return try? NotifySocket(path: path)
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

    private func handle(_ d: NotifySocket.Datagram, from sender: LiveChild?) {
        var fds = d.fds
        defer { for fd in fds { close(fd) } }  // whatever is not stored is closed
        guard var child = sender else { return }  // not a child: ignored
        let id = child.node
        let name = tree.name(of: id)
        let t = now
        guard let bytes = d.bytes, let m = try? NotifyMessage(parsing: bytes) else {
            log.note("ignored a malformed or oversized (\(d.length) bytes) notification from \(name) pid \(d.pid)", .warning)
            return
        }
        if m.isSet("BARRIER") { return }  // closing its fd (the defer) is the answer
        if let text = m["STATUS"] { child.statusText = Self.displayable(text) }
        if let main = m["MAINPID"] {
            store(child)
            setMainPID(main, of: child, sender: d.pid)
            guard let refreshed = liveChild(id, pid: child.pid) else { return }
            child = refreshed
        }
        if m.isSet("STOPPING") { child.statusText = "stopping" }
        if m.isSet("RELOADING") { child.statusText = "reloading" + (m["STATUS"].map { ": " + Self.displayable($0) } ?? "") }
        if let e = m["ERRNO"].flatMap(Int32.init), e > 0 {
            apply([.record(Record(.report, node: name, pid: d.pid, incarnation: child.incarnation,
                                  detail: "reported ERRNO=\(e) (\(String(cString: strerror(e))))"))])
        }
        store(child)
        if m.isSet("FDSTOREREMOVE") { removeStored(m, of: child, name: name, pid: d.pid) }
        if m.isSet("FDSTORE") {
            keepStored(&fds, m, of: child, name: name, pid: d.pid)
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
    private func keepStored(_ fds: inout [Int32], _ m: NotifyMessage, of child: LiveChild, name: String, pid: Int32) {
        let incarnation = child.incarnation
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
    private func removeStored(_ m: NotifyMessage, of child: LiveChild, name: String, pid: Int32) {
        guard case .success(let fdName?) = m.fdName() else { return }
        let n = fdStore.remove(name: fdName, for: name)
        if n > 0, notifier.isEnabled, let upstream = FDStore.upstreamName(child: name, name: fdName) {
            _ = try? notifier.removeStoredDescriptors(name: upstream)
        }
        if n > 0 {
            apply([.record(Record(.fdStore, node: name, pid: pid, incarnation: child.incarnation,
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
