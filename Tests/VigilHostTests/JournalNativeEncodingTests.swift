#if canImport(Glibc)
import Glibc
#endif
import Testing
import VigilCore
@testable import VigilHost

/// The native journal protocol's wire format, byte for byte, and the JOURNAL_STREAM check
/// that decides whether vigil speaks it at all.
@Suite("journald native protocol")
struct JournalNativeEncodingTests {
    @Test func singleLineValuesAreNameEqualsValueNewline() {
        let bytes = JournalNativeEncoding.encode([JournalField("MESSAGE", "hello world"), JournalField("PRIORITY", "6")])
        #expect(bytes == Array("MESSAGE=hello world\nPRIORITY=6\n".utf8))
    }

    @Test func aValueWithANewlineUsesTheLengthPrefixedBinaryForm() {
        let value = "line one\nline two"  // 17 bytes
        let bytes = JournalNativeEncoding.encode([JournalField("VIGIL_DETAIL", value), JournalField("PRIORITY", "4")])
        var expected = Array("VIGIL_DETAIL\n".utf8)
        expected += [17, 0, 0, 0, 0, 0, 0, 0]  // 64-bit little-endian length
        expected += Array(value.utf8) + [0x0A]
        expected += Array("PRIORITY=4\n".utf8)
        #expect(bytes == expected)
    }

    @Test func anEmptyValueAndUTF8AreKeptAsBytes() {
        let bytes = JournalNativeEncoding.encode([JournalField("VIGIL_DETAIL", ""), JournalField("MESSAGE", "prix: 12 €")])
        #expect(bytes == Array("VIGIL_DETAIL=\nMESSAGE=prix: 12 €\n".utf8))
    }

    @Test func namesJournaldWouldDropAreLeftOut() {
        #expect(JournalNativeEncoding.isValidName("VIGIL_NODE"))
        #expect(JournalNativeEncoding.isValidName("A1"))
        for bad in ["", "_PID", "1ABC", "message", "VIGIL-NODE", "A=B", String(repeating: "A", count: 65)] {
            #expect(!JournalNativeEncoding.isValidName(bad), "\(bad)")
        }
        #expect(JournalNativeEncoding.encode([JournalField("_PID", "1"), JournalField("OK", "1")]) == Array("OK=1\n".utf8))
    }

    @Test func aRecordCarriesItsKindNodePidIncarnationAndDetail() {
        let r = Record(.exited, node: "db-watchdog", pid: 4242, incarnation: 3, detail: "signal SIGKILL after 2.1s")
        let fields = Dictionary(uniqueKeysWithValues: VigilLog.fields(of: r).map { ($0.name, $0.value) })
        #expect(fields == [
            "MESSAGE": "exited        db-watchdog          pid=4242 inc=3   signal SIGKILL after 2.1s",
            "PRIORITY": "4", "SYSLOG_IDENTIFIER": "vigil", "VIGIL_KIND": "exited", "VIGIL_NODE": "db-watchdog",
            "VIGIL_PID": "4242", "VIGIL_INCARNATION": "3", "VIGIL_DETAIL": "signal SIGKILL after 2.1s",
        ])
        let ready = VigilLog.fields(of: Record(.treeReady, node: "t"))
        #expect(ready.map(\.name) == ["MESSAGE", "PRIORITY", "SYSLOG_IDENTIFIER", "VIGIL_KIND", "VIGIL_NODE"], "absent fields are not sent empty")
    }

    @Test func prioritiesSeparateCrashesFromRoutine() {
        #expect(SyslogPriority.of(Record(.spawned, node: "a")) == .info)
        #expect(SyslogPriority.of(Record(.exited, node: "a", detail: "exit 0 after 1s")) == .notice)
        #expect(SyslogPriority.of(Record(.exited, node: "a", detail: "exit 1 after 1s")) == .warning)
        #expect(SyslogPriority.of(Record(.watchdog, node: "a")) == .warning)
        #expect(SyslogPriority.of(Record(.escalate, node: "a")) == .error)
        #expect(SyslogPriority.of(Record(.treeFailed, node: "a")) == .critical)
    }

    @Test func aChildLineGoesUnderTheChildsNameWithoutTheSDKPrefix() {
        let fields = VigilLog.fields(ofChildLine: "feed[77]: connected", child: "feed", pid: 77)
        #expect(fields == [JournalField("MESSAGE", "connected"), JournalField("PRIORITY", "6"),
                           JournalField("SYSLOG_IDENTIFIER", "feed"), JournalField("SYSLOG_PID", "77"),
                           JournalField("VIGIL_CHILD", "feed"), JournalField("VIGIL_PID", "77")])
    }

    @Test func journalStreamMustNameTheDescriptorItself() throws {
        var template = Array("/tmp/vigil-journal-stream-XXXXXX".utf8CString)
        let fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
        try #require(fd >= 0)
        defer { close(fd); unlink(String(cString: template)) }
        var st = stat()
        try #require(fstat(fd, &st) == 0)
        let mine = "\(st.st_dev):\(st.st_ino)"
        #expect(JournaldSocket.names(mine, descriptor: fd))
        #expect(!JournaldSocket.names("\(st.st_dev):\(st.st_ino + 1)", descriptor: fd), "another inode: stderr was redirected")
        for malformed in ["", "\(st.st_dev)", "\(st.st_dev):\(st.st_ino):1", "x:\(st.st_ino)"] {
            #expect(!JournaldSocket.names(malformed, descriptor: fd), "\(malformed)")
        }
        #expect(JournaldSocket.forStderr(environment: ["JOURNAL_STREAM": mine], stderr: fd) != nil)
        #expect(JournaldSocket.forStderr(environment: [:], stderr: fd) == nil, "no JOURNAL_STREAM: text lines")
    }
}
