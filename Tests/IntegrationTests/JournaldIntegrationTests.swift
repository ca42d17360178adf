import Foundation
import Testing

/// An AF_UNIX datagram socket standing in for systemd-journald's native socket; decodes
/// each datagram back into its fields (both the `NAME=value` and the binary form).
final class FakeJournald {
    let path: String
    let fd: Int32
    private(set) var entries: [[String: String]] = []

    init(directory: String) {
        path = directory + "/journal.sock"
        fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        precondition(fd >= 0)
        var sa = sockaddr_un()
        sa.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        precondition(bytes.count < 108)
        withUnsafeMutableBytes(of: &sa.sun_path) { raw in for (i, b) in bytes.enumerated() { raw[i] = b } }
        let rc = withUnsafePointer(to: &sa) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        precondition(rc == 0, "bind \(path): \(errno)")
    }

    deinit { close(fd) }

    /// Reads every datagram waiting now.
    func drain() {
        var buffer = [UInt8](repeating: 0, count: 1 << 17)
        while true {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
            if n <= 0 { return }
            entries.append(Self.decode(buffer[0..<n]))
        }
    }

    /// Polls (every 10 ms) until an entry satisfies `match`, or `timeout` seconds pass.
    func waitFor(timeout: Double = 15, _ match: ([String: String]) -> Bool) -> [String: String]? {
        let deadline = Date().addingTimeInterval(timeout)
        repeat {
            drain()
            if let e = entries.first(where: match) { return e }
            var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            _ = poll(&p, 1, 10)
        } while Date() < deadline
        return nil
    }

    /// The native protocol's payload as fields (a repeated field keeps its last value).
    static func decode(_ data: ArraySlice<UInt8>) -> [String: String] {
        var fields: [String: String] = [:]
        var i = data.startIndex
        while i < data.endIndex {
            guard let end = data[i...].firstIndex(where: { $0 == 0x0A || $0 == UInt8(ascii: "=") }) else { break }
            let name = String(decoding: data[i..<end], as: UTF8.self)
            if data[end] == UInt8(ascii: "=") {
                let nl = data[end...].firstIndex(of: 0x0A) ?? data.endIndex
                fields[name] = String(decoding: data[(end + 1)..<nl], as: UTF8.self)
                i = nl + 1
            } else {
                var length: UInt64 = 0
                for k in 0..<8 { length |= UInt64(data[end + 1 + k]) << (8 * UInt64(k)) }
                let start = end + 9
                fields[name] = String(decoding: data[start..<(start + Int(length))], as: UTF8.self)
                i = start + Int(length) + 1
            }
        }
        return fields
    }
}

/// vigil's own log as journald entries when `JOURNAL_STREAM` names its stderr, text lines
/// on stderr otherwise; a real vigil, a real worker killed with SIGKILL, a real socket.
@Suite("journald logging")
struct JournaldIntegrationTests {
    static let topology = """
    name: t
    children:
      - worker: feed
        argv: [/bin/sh, -c, "echo feed says hello; exec WORKER"]
    """

    /// Starts vigil with `JOURNAL_STREAM` set, as systemd would, to the `DEV:INODE` of the
    /// stderr it is given (the test's log file), through a shell that then execs vigil.
    func launchWithJournalStream(_ v: VigilUnderTest, socket: String) throws {
        try v.launch([], environment: ["VIGIL_JOURNAL_SOCKET": socket],
                     shell: "JOURNAL_STREAM=$(stat -L -c %d:%i /proc/self/fd/2) exec \(VigilUnderTest.vigil) up \(v.topologyPath)")
    }

    @Test func aKilledWorkerIsAStructuredEntryWhenStderrIsTheJournal() throws {
        let v = try VigilUnderTest(Self.topology, start: false)
        let journald = FakeJournald(directory: v.directory)
        try launchWithJournalStream(v, socket: journald.path)
        let s = v.waitFor("feed ready", v.allReady(["feed"]))
        let pid = try #require(s["feed"]?.pid)
        let ready = journald.waitFor { $0["VIGIL_KIND"] == "ready" && $0["VIGIL_NODE"] == "feed" }
        #expect(ready?["PRIORITY"] == "6" && ready?["VIGIL_PID"] == "\(pid)" && ready?["VIGIL_INCARNATION"] == "1",
                "\(String(describing: ready))")
        let hello = journald.waitFor { $0["VIGIL_CHILD"] == "feed" }
        #expect(hello == ["MESSAGE": "feed says hello", "PRIORITY": "6", "SYSLOG_IDENTIFIER": "feed",
                          "SYSLOG_PID": "\(pid)", "VIGIL_CHILD": "feed", "VIGIL_PID": "\(pid)"],
                "a child's line is an entry under its own name: \(String(describing: hello))")

        kill(pid, SIGKILL)
        let exited = journald.waitFor { $0["VIGIL_KIND"] == "exited" && $0["VIGIL_NODE"] == "feed" }
        let e = try #require(exited, "no exited entry; got \(journald.entries)\n--- vigil log ---\n\(v.log)")
        #expect(e["PRIORITY"] == "4", "a crash is a warning")
        #expect(e["SYSLOG_IDENTIFIER"] == "vigil")
        #expect(e["VIGIL_PID"] == "\(pid)" && e["VIGIL_INCARNATION"] == "1")
        #expect(e["VIGIL_DETAIL"]?.hasPrefix("signal SIGKILL after ") == true, "\(e)")
        #expect(e["MESSAGE"]?.hasPrefix("exited ") == true && e["MESSAGE"]?.contains("signal SIGKILL") == true,
                "MESSAGE is the line without its clock: \(e)")
        let respawned = journald.waitFor { $0["VIGIL_KIND"] == "spawned" && $0["VIGIL_INCARNATION"] == "2" }
        #expect(respawned?["VIGIL_NODE"] == "feed")
        // What journald took is not written to stderr a second time.
        #expect(!v.log.contains("signal SIGKILL"), "\(v.log)")
        #expect(v.interrupt() == 0)
    }

    @Test func aRedirectedStderrKeepsTheTextLines() throws {
        let v = try VigilUnderTest(Self.topology, start: false)
        let journald = FakeJournald(directory: v.directory)
        // Inherited from a unit whose stderr was the journal, but vigil's stderr is now a file.
        var st = stat()
        #expect(stat(v.directory, &st) == 0)
        try v.launch(["up", v.topologyPath], environment: ["JOURNAL_STREAM": "\(st.st_dev):\(st.st_ino)",
                                                          "VIGIL_JOURNAL_SOCKET": journald.path])
        let s = v.waitFor("feed ready", v.allReady(["feed"]))
        let pid = try #require(s["feed"]?.pid)
        kill(pid, SIGKILL)
        v.waitFor("feed restarted", { $0["feed"]?.incarnation == 2 && $0["feed"]?.state == "ready" })
        #expect(v.log.contains("signal SIGKILL"), "the exit is a text line on stderr: \(v.log)")
        #expect(v.log.contains("feed[\(pid)]: feed says hello"))
        journald.drain()
        #expect(journald.entries.isEmpty, "nothing went to the journal socket: \(journald.entries)")
        #expect(v.interrupt() == 0)
    }

    @Test func anUnreachableJournaldFallsBackToStderr() throws {
        let v = try VigilUnderTest(Self.topology, start: false)
        try launchWithJournalStream(v, socket: v.directory + "/nobody-listens.sock")
        let s = v.waitFor("feed ready", v.allReady(["feed"]))
        let pid = try #require(s["feed"]?.pid)
        kill(pid, SIGKILL)
        v.waitFor("feed restarted", { $0["feed"]?.incarnation == 2 && $0["feed"]?.state == "ready" })
        #expect(v.log.contains("signal SIGKILL"), "no line is lost when journald does not take it: \(v.log)")
        #expect(v.log.contains("feed[\(pid)]: feed says hello"))
        #expect(v.interrupt() == 0)
    }
}
