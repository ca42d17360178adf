import Foundation
import Testing

/// Children's stdout and stderr kept line by line in per-child files, read back with
/// `vigil logs`.
@Suite("child logs")
struct LogsIntegrationTests {
    func logs(_ v: VigilUnderTest, _ args: [String]) -> (Int32, String) {
        runVigil(["logs", "--runtime-dir", v.runtimeDirectory] + args)
    }

    @Test func tenThousandLinesWrittenInATERMHandlerAllArriveWithTheLastWithoutNewline() throws {
        let v = try VigilUnderTest("""
        name: t
        children:
          - worker: talker
            argv: [WORKER]
            env: {TW_TERM_LINES: "10000"}
        """)
        let s = v.waitFor("ready", v.allReady(["talker"]))
        let pid = s["talker"]!.pid!
        #expect(try v.control(["stop", "talker"]).ok)
        let (code, out) = logs(v, ["talker"])
        #expect(code == 0)
        let lines = out.split(separator: "\n").map(String.init)
        let said = lines.filter { $0.contains(" [\(pid)] line ") }
        #expect(said.count == 10_000, "every line arrived")
        #expect(said.enumerated().allSatisfy { k, l in l.hasSuffix(" line \(k)") }, "in order")
        #expect(lines.last?.hasSuffix(" [\(pid)] last words, no newline") == true, "the final line without a newline is kept")
        // -n: the last lines only.
        let (_, tail) = logs(v, ["-n", "2", "talker"])
        #expect(tail.split(separator: "\n").count == 2 && tail.contains("line 9999") && tail.contains("last words"))
        #expect(v.interrupt() == 0)
    }

    @Test func unknownNamesAndPoolsSayWhereToLook() throws {
        let v = try VigilUnderTest("""
        name: t
        children:
          - worker: p
            argv: [WORKER]
            instances: 2
            env: {TW_TERM_LINES: "1"}
        """)
        v.waitFor("ready", v.allReady(["p.1", "p.2"]))
        #expect(try v.control(["stop", "p"]).ok)
        let (code, out) = logs(v, ["p"])
        #expect(code == 0 && out.contains("==> p.1 <==") && out.contains("==> p.2 <==") && out.contains("last words"), "a pool: every instance's lines, \(out)")
        let (code2, out2) = logs(v, ["nobody"])
        #expect(code2 == 1 && out2.contains("children with logs: p.1, p.2"), "\(out2)")
        #expect(v.interrupt() == 0)
    }
}
