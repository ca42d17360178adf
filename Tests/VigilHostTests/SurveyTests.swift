#if canImport(Glibc)
import Glibc
#endif
import CShim
import Foundation
import Testing
import VigilCore
@testable import VigilHost

/// What a starting vigil finds of the previous one's runs, with real processes standing in
/// for workers (sleeps it starts in groups of their own) and a real journal.
@Suite("Leftovers survey", .serialized)
struct SurveyTests {
    /// A `sleep` in a session and process group of its own, spawned as vigil spawns its
    /// children (so no shell or `setsid(1)` decides whether to fork).
    final class Sleeper {
        let processIdentifier: Int32
        init() throws {
            var pid: pid_t = 0
            let argv: [UnsafeMutablePointer<CChar>?] = [strdup("sleep"), strdup("60"), nil]
            let envp: [UnsafeMutablePointer<CChar>?] = [nil]
            defer { for p in argv { free(p) } }
            let rc = argv.withUnsafeBufferPointer { a in
                envp.withUnsafeBufferPointer { e in
                    vigil_spawn("/bin/sleep", UnsafeMutablePointer(mutating: a.baseAddress!), UnsafeMutablePointer(mutating: e.baseAddress!),
                                nil, nil, 0, -1, &pid)
                }
            }
            guard rc == 0 else { throw HostError("spawn sleep: errno \(rc)") }
            processIdentifier = pid
        }
        func terminate() {
            kill(processIdentifier, SIGKILL)
            var status: Int32 = 0
            _ = waitpid(processIdentifier, &status, 0)
        }
    }

    func sleeper() throws -> Sleeper { try Sleeper() }

    func journal() throws -> (Journal, String) {
        let dir = NSTemporaryDirectory() + "vigil-survey-" + UUID().uuidString.prefix(8)
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        return (try Journal(path: dir + "/journal.db"), dir)
    }

    @Test func duringAHandoffTheReadyProcessIsTheChildAndTheOtherIsExtra() throws {
        let (j, dir) = try journal()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let outgoing = try sleeper(), incoming = try sleeper()
        defer { outgoing.terminate(); incoming.terminate() }
        let now = vigil_realtime_ns()
        try j.append([Record(.spawned, node: "a", pid: outgoing.processIdentifier, incarnation: 1)], at: now)
        try j.append([Record(.ready, node: "a", pid: outgoing.processIdentifier, incarnation: 1)], at: now)
        try j.append([Record(.spawned, node: "a", pid: incoming.processIdentifier, incarnation: 2)], at: now)
        let s = Leftovers.survey(j)
        #expect(s.current["a"]?.pid == outgoing.processIdentifier, "the incoming one had not taken over")
        #expect(s.extra.map(\.pid) == [incoming.processIdentifier])
        #expect(s.ended.isEmpty && s.remnants.isEmpty)
    }

    @Test func aPidWhoseStartTimeDoesNotMatchIsNeverTheRuns() throws {
        let (j, dir) = try journal()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let p = try sleeper()
        defer { p.terminate() }
        // The journal says the run started a minute before this process did: a reused pid.
        try j.append([Record(.spawned, node: "a", pid: p.processIdentifier, incarnation: 1)], at: vigil_realtime_ns() - 60_000_000_000)
        let s = Leftovers.survey(j)
        #expect(s.current.isEmpty)
        #expect(s.ended.map(\.node) == ["a"])
        #expect(s.remnants.isEmpty, "a group with no member carrying the run's VIGIL_NAME is not the run's")
    }

    @Test func aGroupThatOutlivedItsLeaderIsARemnantWhenAMemberCarriesTheRunsName() throws {
        let (j, dir) = try journal()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        // A leader that forks a member of its group and exits: a forking daemon's shape.
        let leader = Process()
        leader.executableURL = URL(fileURLWithPath: "/bin/sh")
        leader.arguments = ["-c", "exec setsid sh -c 'sleep 60 & echo $! > \(dir)/member; exit 0'"]
        var e = ProcessInfo.processInfo.environment
        e["VIGIL_NAME"] = "daemon"
        e["VIGIL_INCARNATION"] = "4"
        leader.environment = e
        try leader.run()
        var member: Int32 = 0
        let deadline = Date().addingTimeInterval(5)
        while (member == 0 || ProcStat.read(pid: leader.processIdentifier) != nil) && Date() < deadline {
            member = Int32((try? String(contentsOfFile: dir + "/member", encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines) ?? "") ?? 0
            usleep(2000)
        }
        #expect(ProcStat.read(pid: leader.processIdentifier) == nil, "the leader exited")
        #expect(member > 0)
        guard member > 0, let group = ProcStat.read(pid: member)?.processGroup else { return }
        defer { kill(member, SIGKILL) }
        try j.append([Record(.spawned, node: "daemon", pid: group, incarnation: 4)], at: vigil_realtime_ns())
        let s = Leftovers.survey(j)
        #expect(s.current.isEmpty, "its leader is gone")
        #expect(s.remnants.map(\.pid) == [group])
        try j.append([Record(.spawned, node: "other", pid: group, incarnation: 4)], at: vigil_realtime_ns())
        #expect(Leftovers.survey(j).remnants.map(\.run.node) == ["daemon"], "a member must carry the run's own name")
    }
}
