import Foundation
import Testing

/// `vigil reload` and SIGHUP with real processes: only what changed is touched.
@Suite("reload without disruption")
struct ReloadIntegrationTests {
    static let before = """
    name: t
    children:
      - worker: a
        argv: [WORKER]
      - worker: b
        argv: [WORKER]
        depends_on: [a]
      - worker: c
        argv: [WORKER]
    """

    func rewrite(_ v: VigilUnderTest, _ text: String) throws {
        try text.replacingOccurrences(of: "WORKER", with: VigilUnderTest.testWorker)
            .write(toFile: v.topologyPath, atomically: true, encoding: .utf8)
    }

    @Test func onlyChangedAddedAndRemovedChildrenAreTouched() throws {
        let v = try VigilUnderTest(Self.before)
        let s0 = v.waitFor("ready", v.allReady(["a", "b", "c"]))
        try rewrite(v, """
        name: t
        children:
          - worker: a
            argv: [WORKER]
          - worker: b
            argv: [WORKER]
            env: {CHANGED: "yes"}
            depends_on: [a]
          - worker: d
            argv: [WORKER]
        """)
        let answer = try v.control(["reload"], timeout: .seconds(15))
        #expect(answer.ok && answer.body.contains("restarting (spec changed): b") && answer.body.contains("starting (added): d")
                && answer.body.contains("stopping (removed): c"), "\(answer)")
        #expect(answer.body.contains("done in"), "it answers once the reload's work is done")
        let s1 = v.status()!
        #expect(s1["b"]?.state == "ready" && s1["b"]?.pid != s0["b"]?.pid && s1["d"]?.state == "ready")
        // A second reload right away is fine: the first is finished.
        #expect(try v.control(["reload"]).body.contains("no child changed"))
        #expect(s1["a"]?.pid == s0["a"]?.pid, "an unchanged child keeps its process")
        #expect(s1["a"]?.restarts == 0 && s1["b"]?.restarts == 0, "a reload is not a failure")
        #expect(s1["c"] == nil && !processAlive(s0["c"]!.pid!), "a removed child is stopped and gone from the tree")
        #expect(v.events().contains { $0.contains("reload complete: 1 restarted, 1 added, 1 removed") })
        // The reloaded tree supervises as before: kill -9 a, it comes back.
        kill(s1["a"]!.pid!, SIGKILL)
        v.waitFor("a back") { $0["a"]?.state == "ready" && $0["a"]?.pid != s1["a"]?.pid }
        #expect(v.interrupt() == 0)
    }

    @Test func aBrokenFileIsRefusedWithItsProblemsAndTheTreeIsUntouched() throws {
        let v = try VigilUnderTest(Self.before)
        let s0 = v.waitFor("ready", v.allReady(["a", "b", "c"]))
        try rewrite(v, Self.before + "\n    restrat: always\n")
        let answer = try v.control(["reload"])
        #expect(!answer.ok && answer.message.contains("1 problem; nothing was changed")
                && answer.body.contains("topology.yaml:") && answer.body.contains("unknown key 'restrat'"), "\(answer)")
        let (rc, text) = runVigil(["reload", "--runtime-dir", v.runtimeDirectory])
        #expect(rc == 2, "a refused file is bad input, as for vigil up: \(text)")
        #expect(text.contains("unknown key 'restrat'"))
        let s1 = v.status()!
        for n in ["a", "b", "c"] { #expect(s1[n]?.pid == s0[n]?.pid) }
        #expect(v.events().contains { $0.contains("refused") && $0.contains("the running tree is untouched") })
        #expect(v.interrupt() == 0)
    }

    @Test func sighupReloadsToo() throws {
        let v = try VigilUnderTest(Self.before)
        let s0 = v.waitFor("ready", v.allReady(["a", "b", "c"]))
        try rewrite(v, Self.before.replacingOccurrences(of: "  - worker: c\n    argv: [WORKER]", with: "  - worker: c\n    argv: [WORKER, --changed]"))
        kill(v.process.processIdentifier, SIGHUP)
        let s1 = v.waitFor("c restarted") { $0["c"]?.state == "ready" && $0["c"]?.pid != s0["c"]?.pid }
        #expect(s1["a"]?.pid == s0["a"]?.pid && s1["b"]?.pid == s0["b"]?.pid)
        #expect(v.interrupt() == 0)
    }
}
