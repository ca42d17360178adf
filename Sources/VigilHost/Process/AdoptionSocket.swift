import CShim
import Glibc
import VigilWire

/// Where workers that outlived a vigil find the next one: a SOCK_SEQPACKET socket at
/// `runtime/adopt.sock`, listened on only while vigil starts. A worker connects and says
/// `.adopt(name, incarnation)`; the connection becomes its channel if the kernel's pid for
/// it (SO_PEERCRED, which the worker cannot forge) is the pid the journal holds for that
/// run, and the process started when the journal says (checked by the caller before).
enum AdoptionSocket {
    /// A worker vigil expects back: the run the journal and /proc vouch for.
    struct Expected {
        var name: String
        var incarnation: UInt64
    }

    struct Result {
        /// The new channel of each worker that proved who it is, by pid.
        var channels: [Int32: Int32] = [:]
        /// Connections turned away, in words for the log.
        var refused: [String] = []
    }

    /// Accepts connections until every pid in `required` has proved who it is, or until
    /// `deadline` (monotonic ns), and in any case for `minimumWait` (every SDK worker
    /// retries every 10 ms, whatever its readiness: this lets the ones not `required`
    /// come too); then takes whoever else is already queued and stops listening. Connections from unexpected pids or other users, and frames other than a
    /// matching `.adopt`, are closed.
    static func collect(at path: String, expected: [Int32: Expected], required: Set<Int32>,
                        until deadline: Int64, minimumWait: Duration = .milliseconds(100)) -> Result {
        var result = Result()
        guard !expected.isEmpty else { return result }
        let listener = vigil_seqpacket_listen(path, 1024)
        guard listener >= 0 else {
            result.refused.append("cannot listen on \(path): \(String(cString: strerror(-listener)))")
            return result
        }
        defer {
            close(listener)
            unlink(path)
        }
        var waiting: [Int32: Int32] = [:]  // fd -> peer pid, until its first frame
        var finalRound = false
        var finalRounds = 0
        let earliestEnd = vigil_monotonic_ns() + minimumWait.nanoseconds
        while true {
            let done = required.isSubset(of: Set(result.channels.keys))
                && (result.channels.count == expected.count || vigil_monotonic_ns() >= earliestEnd)
            let left = deadline - vigil_monotonic_ns()
            if done || left <= 0 { finalRound = true }
            var set = [pollfd(fd: listener, events: Int16(POLLIN), revents: 0)]
                + waiting.keys.sorted().map { pollfd(fd: $0, events: Int16(POLLIN), revents: 0) }
            // The final round only looks at what is already there.
            let timeout: Int32 = finalRound ? (waiting.isEmpty ? 0 : 20) : Int32(min(max(left / 1_000_000, 1), 50))
            let n = poll(&set, nfds_t(set.count), timeout)
            if n < 0 && errno != EINTR { break }
            while true {
                let fd = vigil_accept(listener)
                guard fd >= 0 else { break }
                var pid: pid_t = 0, uid: uid_t = 0, gid: gid_t = 0
                guard vigil_peer_credentials(fd, &pid, &uid, &gid) == 0, uid == getuid() || uid == 0,
                      expected[pid] != nil, result.channels[pid] == nil else {
                    result.refused.append("pid \(pid) (uid \(uid)): not a run vigil left running")
                    close(fd)
                    continue
                }
                waiting[fd] = pid
            }
            for p in set.dropFirst() where p.revents != 0 {
                guard let pid = waiting.removeValue(forKey: p.fd) else { continue }
                if let claim = readClaim(p.fd), let e = expected[pid], claim.name == e.name, claim.incarnation == e.incarnation {
                    result.channels[pid] = p.fd
                } else {
                    result.refused.append("pid \(pid): its adopt frame does not match the journal's run for it")
                    close(p.fd)
                }
            }
            if finalRound {
                finalRounds += 1
                if n == 0 || waiting.isEmpty || finalRounds >= 10 { break }
            }
        }
        for fd in waiting.keys { close(fd) }
        return result
    }

    /// The `.adopt` frame a new connection starts with, or nil.
    private static func readClaim(_ fd: Int32) -> (name: String, incarnation: UInt64)? {
        var buffer = [UInt8](repeating: 0, count: Frame.maximumSize + 1)
        let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT) | Int32(MSG_TRUNC)) }
        guard n > 0, n <= Frame.maximumSize, case .adopt(let name, let inc)? = try? Frame(decoding: buffer[0..<n]) else { return nil }
        return (name, inc)
    }
}
