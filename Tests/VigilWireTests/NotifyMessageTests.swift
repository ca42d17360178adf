import Testing
@testable import VigilWire

@Suite("sd_notify datagrams")
struct NotifyMessageTests {
    func parse(_ s: String) throws -> NotifyMessage { try NotifyMessage(parsing: Array(s.utf8)) }

    @Test func assignmentsInOrderAndTheLastWins() throws {
        let m = try parse("READY=1\nSTATUS=warming up\nSTATUS=serving 3 clients\n")
        #expect(m.assignments.map(\.key) == ["READY", "STATUS", "STATUS"])
        #expect(m.isSet("READY"))
        #expect(m["STATUS"] == "serving 3 clients")
        #expect(m["WATCHDOG"] == nil && !m.isSet("WATCHDOG"))
    }

    @Test func valuesMayHoldEqualsSignsAndBeEmpty() throws {
        let m = try parse("STATUS=a=b=c\nERRNO=\nFDNAME=state")
        #expect(m["STATUS"] == "a=b=c")
        #expect(m["ERRNO"] == "")
        #expect(try m.fdName().get() == "state")
    }

    @Test func linesWithoutAKeyAreSkipped() throws {
        let m = try parse("garbage\n=1\n\n\nREADY=1")
        #expect(m.assignments.count == 1 && m.isSet("READY"))
        #expect(try parse("").assignments.isEmpty)
    }

    @Test func onlyOneMeansSet() throws {
        #expect(!(try parse("READY=0")).isSet("READY"))
        #expect(!(try parse("READY=yes")).isSet("READY"))
        #expect(!(try parse("READY=1 ")).isSet("READY"))
    }

    @Test func badDatagramsAreRefusedWhole() {
        #expect(throws: NotifyMessage.ParseError.tooLarge(NotifyMessage.maximumSize + 1)) {
            try NotifyMessage(parsing: [UInt8](repeating: UInt8(ascii: "a"), count: NotifyMessage.maximumSize + 1))
        }
        #expect(throws: NotifyMessage.ParseError.containsNUL) { try NotifyMessage(parsing: Array("READY=1\0".utf8)) }
        #expect(throws: NotifyMessage.ParseError.invalidUTF8) { try NotifyMessage(parsing: [0x52, 0x3D, 0xFF]) }
    }

    @Test func fdNamesAreCheckedAsSystemdDoes() throws {
        #expect(try parse("FDSTORE=1").fdName().get() == nil)
        for bad in ["FDNAME=", "FDNAME=a:b", "FDNAME=tab\there", "FDNAME=" + String(repeating: "n", count: 256)] {
            guard case .failure = try parse(bad).fdName() else { Issue.record("accepted \(bad.prefix(20))"); continue }
        }
        #expect(try parse("FDNAME=" + String(repeating: "n", count: 255)).fdName().get()?.count == 255)
    }

    @Test func randomBytesNeverCrashTheParser() {
        var x: UInt64 = 0x2545_F491_4F6C_DD1D  // xorshift64: the same inputs on every run
        func next() -> UInt64 { x ^= x << 13; x ^= x >> 7; x ^= x << 17; return x }
        for _ in 0..<20_000 {
            let n = Int(next() % 64)
            let bytes = (0..<n).map { _ in UInt8(truncatingIfNeeded: next() % 5 == 0 ? 0x0A : next()) }
            if let m = try? NotifyMessage(parsing: bytes) {
                for a in m.assignments { #expect(!a.key.isEmpty && !a.key.contains("\n") && !a.value.contains("\n")) }
            }
        }
    }
}
