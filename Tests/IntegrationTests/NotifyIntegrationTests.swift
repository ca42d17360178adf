import CShim
import Foundation
import Testing

/// sd_notify from children with a worker written against libsystemd alone: readiness,
/// status, watchdog pings and the file descriptor store (FDSTORE=1 / LISTEN_FDS).
@Suite("sd_notify and the descriptor store with a libsystemd worker", .serialized)
struct NotifyIntegrationTests {
    static var sdWorker: String { VigilUnderTest.products + "/vigil-sd-test-worker" }

    func tree(readiness: String = "notify", start: Bool = true, extra: String = "") throws -> VigilUnderTest {
        try VigilUnderTest("""
        name: t
        children:
          - worker: daemon
            argv: [\(Self.sdWorker)]
            readiness: \(readiness)
            watchdog: 2s
        \(extra)
        """, start: start)
    }

    @Test func aMemfdStoredWithFDSTOREComesBackAfterKillNine() throws {
        let v = try tree()
        let s0 = v.waitFor("READY=1 through sd_notify") { $0["daemon"]?.state == "ready" && $0["daemon"]?.workerStatus == "restored=none" }
        v.waitFor("stored") { _ in v.events().contains { $0.contains("fd_store") && $0.contains("stored 1 descriptor(s) as 'state'") } }
        kill(s0["daemon"]!.pid!, SIGKILL)
        let s1 = v.waitFor("the next incarnation read its predecessor's memfd") {
            $0["daemon"]?.pid != s0["daemon"]?.pid && $0["daemon"]?.workerStatus == "restored=incarnation 1"
        }
        // Its own store replaced the old one (FDSTOREREMOVE + FDSTORE): one is kept.
        v.waitFor("replaced") { _ in v.events().contains { $0.contains("removed 1 stored descriptor(s) named 'state'") } }
        kill(s1["daemon"]!.pid!, SIGKILL)
        v.waitFor("and again") { $0["daemon"]?.workerStatus == "restored=incarnation 2" }
        #expect(v.interrupt() == 0)
    }

    @Test func anOperatorStopClosesTheStoredDescriptors() throws {
        let v = try tree()
        v.waitFor("ready") { $0["daemon"]?.workerStatus == "restored=none" }
        #expect(try v.control(["stop", "daemon"]).ok)
        #expect(v.events().contains { $0.contains("closed 1 stored descriptor(s): stopped by an operator") })
        #expect(try v.control(["start", "daemon"]).ok)
        v.waitFor("a fresh start has nothing to restore") { $0["daemon"]?.state == "ready" && $0["daemon"]?.workerStatus == "restored=none" }
        #expect(v.interrupt() == 0)
    }

    @Test func aDatagramFromAProcessThatIsNoChildIsIgnored() throws {
        let v = try tree()
        let s0 = v.waitFor("ready") { $0["daemon"]?.workerStatus == "restored=none" }
        // To vigil's shared socket and to the daemon's own: a live process of another group.
        #expect(sendDatagram("READY=1\nSTATUS=forged\nFDSTOREREMOVE=1\nFDNAME=state", to: v.runtimeDirectory + "/notify.sock"))
        #expect(sendDatagram("READY=1\nSTATUS=forged\nFDSTOREREMOVE=1\nFDNAME=state", to: v.runtimeDirectory + "/notify/daemon.1.sock"))
        #expect(v.status()?["daemon"]?.workerStatus != "forged")
        // Datagrams are read in arrival order: everything the next incarnation says comes
        // after the forged one. Had vigil taken its FDSTOREREMOVE, nothing would be restored.
        kill(s0["daemon"]!.pid!, SIGKILL)
        v.waitFor("the store survived the forged removal") {
            $0["daemon"]?.pid != s0["daemon"]?.pid && $0["daemon"]?.workerStatus == "restored=incarnation 1"
        }
        // The first incarnation stored once and removed nothing; only the second removed
        // (its own predecessor's state, replacing it).
        #expect(!v.events().contains { $0.contains("removed") && $0.contains("inc=1 ") })
        #expect(v.interrupt() == 0)
    }

    @Test func errnoIsJournaledAndReloadingShown() throws {
        let v = try tree(extra: """
          - worker: reloader
            argv: [\(Self.sdWorker)]
            readiness: notify
            env: {SDW_SAY: "RELOADING=1\\nSTATUS=re-reading config\\nERRNO=5"}
        """)
        v.waitFor("reloading shown") { $0["reloader"]?.workerStatus == "reloading: re-reading config" }
        v.waitFor("errno journaled") { _ in v.events().contains { $0.contains("reloader") && $0.contains("reported ERRNO=5 (Input/output error)") } }
        #expect(v.interrupt() == 0)
    }

    @Test func aThousandReadyFromHelpersThatExitAtOnceAreAllAttributed() throws {
        let n = 1000
        let v = try VigilUnderTest("name: t\nmax_restarts: 0\nchildren:\n  - worker: d\n    argv: [\(Self.sdWorker)]\n"
            + "    readiness: notify\n    instances: \(n)\n    ready_timeout: 60s\n    shutdown: brutal_kill\n    env: {SDW_READY_FROM_HELPER: \"1\"}\n")
        let s = v.waitFor("all \(n) READY", timeout: 90) { s in (1...n).allSatisfy { s["d.\($0)"]?.state == "ready" } }
        #expect((1...n).allSatisfy { s["d.\($0)"]?.workerStatus?.hasPrefix("ready via helper") == true })
        #expect(v.interrupt() == 0)
    }

    @Test func readyOnNotifySocketWithChannelReadinessSaysWhatToChange() throws {
        let v = try tree(readiness: "channel")
        v.waitFor("told") { _ in v.events().contains { $0.contains("set readiness: notify in its spec") } }
        #expect(v.status()?["daemon"]?.state == "starting")
        #expect(v.interrupt() == 0)
    }

    /// Under systemd, what a child stores goes on to systemd's store for vigil, and comes
    /// back through LISTEN_FDS when vigil is started again: state survives vigil's restart.
    @Test func storedDescriptorsGoUpToSystemdAndComeBackWhenVigilRestarts() throws {
        let upstream = NSTemporaryDirectory() + "vigil-up-" + UUID().uuidString.prefix(8) + ".sock"
        let fd = vigil_notify_socket(upstream)
        try #require(fd >= 0)
        defer { close(fd); unlink(upstream) }
        let v = try tree(start: false)
        try v.launch(["up", v.topologyPath], environment: ["NOTIFY_SOCKET": upstream])
        v.waitFor("ready") { $0["daemon"]?.workerStatus == "restored=none" }
        // vigil's own notifications: find the FDSTORE one and read the memfd it carried.
        var kept: String?
        let deadline = Date().addingTimeInterval(10)
        var buffer = [UInt8](repeating: 0, count: 4096)
        var fds = [Int32](repeating: -1, count: 8)
        while kept == nil && Date() < deadline {
            var pid: pid_t = 0, uid: uid_t = 0, count: Int32 = 0
            let n = vigil_notify_receive(fd, &buffer, buffer.count, &pid, &uid, &fds, 8, &count)
            if n < 0 { usleep(10_000); continue }
            let text = String(decoding: buffer.prefix(Int(n)), as: UTF8.self)
            for i in 0..<Int(count) {
                if text == "FDSTORE=1\nFDNAME=vigil/daemon/state" {
                    var content = [UInt8](repeating: 0, count: 64)
                    let got = pread(fds[i], &content, content.count, 0)
                    kept = String(decoding: content.prefix(max(0, got)), as: UTF8.self)
                }
                close(fds[i])
            }
        }
        #expect(kept == "incarnation 1", "systemd would keep what the child stored")
        #expect(v.interrupt() == 0)

        // A vigil that stopped leaves no per-child socket behind.
        #expect((try? FileManager.default.contentsOfDirectory(atPath: v.runtimeDirectory + "/notify"))?.isEmpty ?? true)
        // A new vigil that systemd hands the kept descriptor (a file with a state in it).
        let state = v.directory + "/kept-state"
        try "incarnation 41".write(toFile: state, atomically: true, encoding: .utf8)
        let w = try tree(start: false)
        try w.launch([], shell: "exec 3<'\(state)'; LISTEN_PID=$$ LISTEN_FDS=1 LISTEN_FDNAMES=vigil/daemon/state exec '\(VigilUnderTest.vigil)' up '\(w.topologyPath)'")
        w.waitFor("the child got its state back across vigil's restart") { $0["daemon"]?.workerStatus == "restored=incarnation 41" }
        #expect(w.events().contains { $0.contains("took back 1 stored descriptor(s) from systemd's store") })
        #expect(w.interrupt() == 0)
    }
}

/// Upward: a tree that is slow to come up asks systemd for more start time while it makes
/// progress, then says READY=1.
@Suite("sd_notify upward")
struct UpwardNotifyTests {
    @Test func aSlowTreeAsksForMoreStartTimeWhileItProgresses() throws {
        let upstream = NSTemporaryDirectory() + "vigil-up-" + UUID().uuidString.prefix(8) + ".sock"
        let fd = vigil_notify_socket(upstream)
        try #require(fd >= 0)
        defer { close(fd); unlink(upstream) }
        let v = try VigilUnderTest("""
        name: t
        children:
          - worker: quick
            argv: [WORKER]
          - worker: slow
            argv: [WORKER]
            env: {TW_READY_DELAY_MS: "12000"}
            ready_timeout: 30s
        """, start: false)
        try v.launch(["up", v.topologyPath], environment: ["NOTIFY_SOCKET": upstream])
        var said: [String] = []
        let deadline = Date().addingTimeInterval(25)
        var buffer = [UInt8](repeating: 0, count: 4096)
        var fds = [Int32](repeating: -1, count: 4)
        while !said.contains(where: { $0.hasPrefix("READY=1") }) && Date() < deadline {
            var pid: pid_t = 0, uid: uid_t = 0, count: Int32 = 0
            let n = vigil_notify_receive(fd, &buffer, buffer.count, &pid, &uid, &fds, 4, &count)
            if n < 0 { usleep(20_000); continue }
            said.append(String(decoding: buffer.prefix(Int(n)), as: UTF8.self))
        }
        let extend = said.firstIndex { $0.hasPrefix("EXTEND_TIMEOUT_USEC=30000000") }
        let ready = said.firstIndex { $0.hasPrefix("READY=1") }
        #expect(extend != nil && ready != nil && extend! < ready!, "\(said)")
        #expect(v.interrupt() == 0)
    }
}

/// Sends one datagram to a Unix socket path from this (non-child) process.
func sendDatagram(_ text: String, to path: String) -> Bool {
    let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
    guard fd >= 0 else { return false }
    defer { close(fd) }
    var addr = sockaddr_un()
    addr.sun_family = sa_family_t(AF_UNIX)
    let bytes = Array(path.utf8)
    guard bytes.count < MemoryLayout.size(ofValue: addr.sun_path) else { return false }
    withUnsafeMutableBytes(of: &addr.sun_path) { raw in
        for (i, b) in bytes.enumerated() { raw[i] = b }
    }
    let payload = Array(text.utf8)
    let sent = withUnsafePointer(to: &addr) { p in
        p.withMemoryRebound(to: sockaddr.self, capacity: 1) { sa in
            sendto(fd, payload, payload.count, 0, sa, socklen_t(MemoryLayout<sockaddr_un>.size))
        }
    }
    return sent == payload.count
}

/// `MAINPID=`: a forking daemon's real process, not its first one, is the child.
@Suite("MAINPID: forking daemons", .serialized)
struct MainPIDIntegrationTests {
    /// One forking daemon: vigil-sd-test-worker's first process forks the real one, says
    /// MAINPID= and exits.
    static let forkingDaemon = """
        name: t
        children:
          - worker: daemon
            argv: [\(NotifyIntegrationTests.sdWorker)]
            env: {SDW_FORK: "1"}
            readiness: notify
            shutdown: 2s
        """

    @Test func aForkingDaemonLivesInTheProcessItNamedAndIsRestartedWhenThatDies() throws {
        let v = try VigilUnderTest(Self.forkingDaemon)
        v.waitFor("READY from the forked process") { $0["daemon"]?.state == "ready" }
        v.waitFor("MAINPID taken") { _ in v.events().contains { $0.contains("its main process is now pid") } }
        let line = v.events().first { $0.contains("its main process is now pid") } ?? ""
        let main = Int32(line.split(separator: " ").drop { $0 != "pid" }.dropFirst().first ?? "") ?? 0
        let leader = procStat(main)?.group ?? 0  // the first process, whose group the child is
        #expect(main > 0 && leader > 0 && main != leader)
        #expect(v.status()?["daemon"]?.pid == main, "status shows the main process, as systemctl does")
        #expect(!processAlive(leader), "the first process exited")
        Thread.sleep(forTimeInterval: 0.5)
        let still = v.waitFor("still up") { $0["daemon"]?.state == "ready" }
        #expect(still["daemon"]?.restarts == 0, "the leader's exit 0 is not the child's exit")
        #expect(processAlive(main))
        guard main > 0 else { return }
        kill(main, SIGKILL)
        let healed = v.waitFor("restarted when its main process died") {
            $0["daemon"]?.state == "ready" && $0["daemon"]?.pid != main && $0["daemon"]?.restarts == 1
        }
        #expect(healed["daemon"]?.restarts == 1)
        #expect(healed["daemon"]?.lastExit == "signal SIGKILL", "the main process's status is the child's")
        let line2 = v.events().last { $0.contains("its main process is now pid") } ?? ""
        let main2 = Int32(line2.split(separator: " ").drop { $0 != "pid" }.dropFirst().first ?? "") ?? 0
        #expect(v.interrupt() == 0)
        #expect(main2 > 0 && !processAlive(main2), "a stop reaches the main process")
    }

    @Test func aMainPIDOutsideTheChildsGroupIsIgnored() throws {
        let v = try VigilUnderTest("""
        name: t
        children:
          - worker: liar
            argv: [\(NotifyIntegrationTests.sdWorker)]
            env: {SDW_SAY: "MAINPID=1"}
            readiness: notify
        """)
        v.waitFor("ready") { $0["liar"]?.state == "ready" }
        v.waitFor("refused") { _ in v.events().contains { $0.contains("MAINPID=1, which is not") } }
        #expect(v.interrupt() == 0)
    }
}
