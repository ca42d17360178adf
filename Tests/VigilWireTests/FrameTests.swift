import Testing
import VigilWire

@Suite("Frames")
struct FrameTests {
    static let samples: [Frame] = [
        .ready, .heartbeat, .stopping, .status("ok: 3 fills"), .status(""), .status("ünïcødé ✓"),
        .sample(WorkerSample(worker: "strategy-runner.2", pid: 4242, rssKiB: 12_345, cpuMicros: 99,
                             intervalMicros: 5_000_000, restarts: 3)),
        .sample(WorkerSample(worker: "leaky", pid: 7, rssKiB: .max, cpuMicros: 0, intervalMicros: 200_000,
                             restarts: .max, memoryLimitKiB: 262_144, heartbeatJitterMicros: 1_234)),
        .advice(Advice(worker: "strategy-runner.2", pid: 4242, action: .restart, model: "rss-theil-sen", forecastMillis: 12_500,
                       horizonMillis: 30_000, reason: "RSS rising 2048 KiB/s")),
        .advice(Advice(worker: "", pid: -1, action: .watch, model: "", forecastMillis: 0, horizonMillis: .max, reason: "")),
        .notice(key: "safe_mode", value: "on"),
        .checkpoint([]), .checkpoint([0, 1, 2, 0xFF]), .checkpoint([UInt8](repeating: 7, count: Frame.maximumSize - 1)),
        .verdict(requestID: 0, .allow), .verdict(requestID: .max, .deny(reason: "3 crashes in 10s")),
        .verdict(requestID: 42, .delay(milliseconds: 2_500, reason: "exchange reconnecting")),
        .verdict(requestID: 7, .delay(milliseconds: .max, reason: "")),
        .verdict(requestID: 8, .safeMode(reason: "drawdown 4%")), .verdict(requestID: 9, .liquidate(reason: "exposure ✗")),
        .guardianOrder(.safeModeOn(reason: "loss limit")), .guardianOrder(.safeModeOff(reason: "")),
        .guardianOrder(.liquidate(reason: "kill switch")),
        .report(key: "liquidation", text: "sold 3 BTC-USD at 60123.45"), .report(key: "", text: ""),
        .notice(key: Notice.liquidate, value: "start"), .notice(key: Notice.safeMode, value: "off"),
        .restore(nil), .restore([]), .restore([1, 2, 3]), .restore([UInt8](repeating: 0xAB, count: Frame.maximumSize - 2)),
        .restartRequest(RestartRequest(id: 1, child: "strategy-runner.2", reason: "signal SIGKILL",
                                       recentRestarts: 3, incarnation: 17)),
        .restartRequest(RestartRequest(id: .max, child: "", reason: "", recentRestarts: .max, incarnation: .max)),
        .checkpointRequest, .checkpointRefused(reason: "checkpoint of 20000 bytes is too large"),
        .checkpointRefused(reason: ""),
    ]

    @Test(arguments: samples)
    func roundTrips(_ frame: Frame) throws {
        let bytes = try frame.encoded()
        #expect(try Frame(decoding: bytes) == frame)
    }

    @Test func readyIsOneByteSoAnyLanguageCanSpeakIt() throws {
        #expect(try Frame.ready.encoded() == [0x01])
        #expect(try Frame.heartbeat.encoded() == [0x02])
    }

    @Test func rejectsEmptyUnknownTruncatedAndTrailing() {
        #expect(throws: FrameError.empty) { try Frame(decoding: [UInt8]()) }
        #expect(throws: FrameError.unknownKind(0xFF)) { try Frame(decoding: [0xFF]) }
        #expect(throws: FrameError.trailingBytes(kind: 1, count: 2)) { try Frame(decoding: [0x01, 0, 0]) }
        #expect(throws: FrameError.truncated(kind: 3)) { try Frame(decoding: [0x03, 5, 0, 65]) }
        #expect(throws: FrameError.truncated(kind: 3)) { try Frame(decoding: [0x03, 5]) }
        #expect(throws: FrameError.invalidUTF8(kind: 3)) { try Frame(decoding: [0x03, 2, 0, 0xC3, 0x28]) }
    }

    @Test func sampleMissingFieldsIsTruncated() throws {
        var bytes = try Frame.sample(WorkerSample(worker: "w", pid: 1, rssKiB: 2, cpuMicros: 3, intervalMicros: 4, restarts: 5)).encoded()
        bytes.removeLast()
        #expect(throws: FrameError.truncated(kind: 0x11)) { try Frame(decoding: bytes) }
    }

    @Test func adviceWithAnUnknownActionIsRefused() throws {
        var bytes = try Frame.advice(Advice(worker: "w", pid: 0, action: .watch, model: "m", forecastMillis: 1, horizonMillis: 2,
                                            reason: "r")).encoded()
        #expect(bytes[0] == 0x0A && bytes[8] == 2)
        bytes[8] = 9
        #expect(throws: FrameError.invalidField(kind: 0x0A, "advice action 9")) { try Frame(decoding: bytes) }
        bytes.removeLast()
        bytes[8] = 1
        #expect(throws: FrameError.truncated(kind: 0x0A)) { try Frame(decoding: bytes) }
    }

    @Test func sizeLimitsHoldBothWays() {
        let big = String(repeating: "x", count: Frame.maximumSize)
        #expect(throws: FrameError.self) { try Frame.status(big).encoded() }
        #expect(throws: FrameError.tooLarge(Frame.maximumSize + 1)) {
            try Frame(decoding: [UInt8](repeating: 3, count: Frame.maximumSize + 1))
        }
    }

    /// Random bytes either fail to decode or decode to a frame whose encoding is exactly
    /// those bytes: the format has one spelling per frame, so nothing ambiguous gets in.
    @Test func randomBytesDecodeCanonicallyOrNotAtAll() throws {
        var rng = SystemRandomNumberGenerator()
        var decoded = 0
        for _ in 0..<50_000 {
            let count = Int.random(in: 0..<24, using: &rng)
            var bytes = (0..<count).map { _ in UInt8.random(in: 0...255, using: &rng) }
            if !bytes.isEmpty { bytes[0] = Self.kinds[Int.random(in: 0..<Self.kinds.count, using: &rng)] }
            guard let frame = try? Frame(decoding: bytes) else { continue }
            decoded += 1
            #expect(try frame.encoded() == bytes)
        }
        #expect(decoded > 0)
    }

    /// Every kind byte the wire knows.
    static let kinds: [UInt8] = [1, 2, 3, 4, 5, 6, 7, 8, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16]

    /// Random bytes rarely hit a valid verdict or restart request, so also mutate valid
    /// frames (flip, drop, insert, append a byte): still canonical or refused.
    @Test func mutatedFramesDecodeCanonicallyOrNotAtAll() throws {
        var rng = SystemRandomNumberGenerator()
        let valid = try Self.samples.map { try $0.encoded() }.filter { $0.count < 512 }
        var decoded = 0
        for _ in 0..<50_000 {
            var bytes = valid[Int.random(in: 0..<valid.count, using: &rng)]
            for _ in 0..<Int.random(in: 1...3, using: &rng) {
                let at = Int.random(in: 0...bytes.count, using: &rng)
                switch Int.random(in: 0..<4, using: &rng) {
                case 0 where at < bytes.count: bytes[at] = UInt8.random(in: 0...255, using: &rng)
                case 1 where at < bytes.count: bytes.remove(at: at)
                case 2: bytes.insert(UInt8.random(in: 0...255, using: &rng), at: at)
                default: bytes.append(UInt8.random(in: 0...3, using: &rng))
                }
            }
            guard let frame = try? Frame(decoding: bytes) else { continue }
            decoded += 1
            #expect(try frame.encoded() == bytes, "\(bytes) decoded as \(frame)")
        }
        #expect(decoded > 0)
    }

    // MARK: - The issue-3 frames, byte by byte

    @Test func restoreSpellsItsFlag() throws {
        #expect(try Frame.restore(nil).encoded() == [0x13, 0])
        #expect(try Frame.restore([]).encoded() == [0x13, 1])
        #expect(try Frame.restore([9, 8]).encoded() == [0x13, 1, 9, 8])
        #expect(try Frame(decoding: [0x13, 1]) == .restore([]))
        #expect(try Frame(decoding: [0x13, 0]) == .restore(nil))
    }

    @Test func restoreRefusesAMissingOrUnknownFlagAndBytesAfterNone() {
        #expect(throws: FrameError.truncated(kind: 0x13)) { try Frame(decoding: [0x13]) }
        for flag: UInt8 in [2, 3, 0x80, 0xFF] {
            #expect(throws: FrameError.self) { try Frame(decoding: [0x13, flag]) }
            #expect(throws: FrameError.self) { try Frame(decoding: [0x13, flag, 1, 2]) }
        }
        #expect(throws: FrameError.trailingBytes(kind: 0x13, count: 1)) { try Frame(decoding: [0x13, 0, 5]) }
    }

    @Test func bareFramesAreOneByte() throws {
        #expect(try Frame.checkpointRequest.encoded() == [0x15])
        #expect(try Frame.checkpoint([]).encoded() == [0x05])
        #expect(throws: FrameError.trailingBytes(kind: 0x15, count: 1)) { try Frame(decoding: [0x15, 0]) }
    }

    @Test func checkpointAndRestoreSizeLimits() throws {
        // A checkpoint carries at most maximumSize - 1 bytes, a restore maximumSize - 2.
        #expect(throws: FrameError.tooLarge(Frame.maximumSize + 1)) {
            try Frame.checkpoint([UInt8](repeating: 0, count: Frame.maximumSize)).encoded()
        }
        #expect(throws: FrameError.tooLarge(Frame.maximumSize + 1)) {
            try Frame.restore([UInt8](repeating: 0, count: Frame.maximumSize - 1)).encoded()
        }
        #expect(throws: FrameError.tooLarge(Frame.maximumSize + 1)) {
            try Frame(decoding: [0x05] + [UInt8](repeating: 0, count: Frame.maximumSize))
        }
    }

    @Test func verdictBytes() throws {
        #expect(try Frame.verdict(requestID: 0x0102, .allow).encoded() == [0x06, 2, 1, 0, 0, 0, 0, 0, 0, 1, 0, 0])
        #expect(try Frame.verdict(requestID: 1, .delay(milliseconds: 0x0304, reason: "x")).encoded()
            == [0x06, 1, 0, 0, 0, 0, 0, 0, 0, 3, 4, 3, 0, 0, 1, 0, 0x78])
    }

    @Test func verdictRefusesUnknownTagsTruncationAndTrailing() throws {
        let id: [UInt8] = [0x06, 5, 0, 0, 0, 0, 0, 0, 0]
        for tag: UInt8 in [0, 6, 7, 0xFF] {
            #expect(throws: FrameError.self) { try Frame(decoding: id + [tag, 0, 0]) }
        }
        #expect(throws: FrameError.truncated(kind: 6)) { try Frame(decoding: [0x06, 5, 0, 0]) }  // short id
        #expect(throws: FrameError.truncated(kind: 6)) { try Frame(decoding: id) }                // no tag
        #expect(throws: FrameError.truncated(kind: 6)) { try Frame(decoding: id + [1]) }          // no reason
        #expect(throws: FrameError.truncated(kind: 6)) { try Frame(decoding: id + [1, 0]) }       // half a length
        #expect(throws: FrameError.truncated(kind: 6)) { try Frame(decoding: id + [2, 3, 0, 0x61]) }
        #expect(throws: FrameError.truncated(kind: 6)) { try Frame(decoding: id + [3, 1, 2, 3]) } // short delay
        #expect(throws: FrameError.trailingBytes(kind: 6, count: 1)) { try Frame(decoding: id + [1, 0, 0, 9]) }
        #expect(throws: FrameError.trailingBytes(kind: 6, count: 2)) { try Frame(decoding: id + [4, 1, 0, 0x61, 9, 9]) }
        #expect(throws: FrameError.invalidUTF8(kind: 6)) { try Frame(decoding: id + [2, 1, 0, 0xFF]) }
    }

    /// `.allow` has no reason; one on the wire is refused, so no decoded allow re-encodes
    /// to different bytes.
    @Test func allowWithAReasonIsRefused() throws {
        let id: [UInt8] = [0x06, 5, 0, 0, 0, 0, 0, 0, 0]
        #expect(try Frame(decoding: id + [1, 0, 0]) == .verdict(requestID: 5, .allow))
        #expect(throws: FrameError.trailingBytes(kind: 6, count: 2)) { try Frame(decoding: id + [1, 2, 0, 0x6F, 0x6B]) }
        #expect(throws: FrameError.truncated(kind: 6)) { try Frame(decoding: id + [1, 9, 0]) }
    }

    @Test func guardianOrderRefusesUnknownTagsTruncationAndTrailing() throws {
        #expect(try Frame.guardianOrder(.safeModeOff(reason: "ok")).encoded() == [0x07, 2, 2, 0, 0x6F, 0x6B])
        for tag: UInt8 in [0, 4, 0xFF] {
            #expect(throws: FrameError.self) { try Frame(decoding: [0x07, tag, 0, 0]) }
        }
        #expect(throws: FrameError.truncated(kind: 7)) { try Frame(decoding: [0x07]) }
        #expect(throws: FrameError.truncated(kind: 7)) { try Frame(decoding: [0x07, 1]) }
        #expect(throws: FrameError.truncated(kind: 7)) { try Frame(decoding: [0x07, 3, 5, 0, 0x61]) }
        #expect(throws: FrameError.trailingBytes(kind: 7, count: 1)) { try Frame(decoding: [0x07, 1, 0, 0, 0]) }
    }

    @Test func reportAndNoticeNeedBothStrings() throws {
        #expect(try Frame.report(key: "k", text: "v").encoded() == [0x08, 1, 0, 0x6B, 1, 0, 0x76])
        #expect(throws: FrameError.truncated(kind: 8)) { try Frame(decoding: [0x08, 1, 0, 0x6B]) }
        #expect(throws: FrameError.truncated(kind: 8)) { try Frame(decoding: [0x08, 1, 0, 0x6B, 1, 0]) }
        #expect(throws: FrameError.trailingBytes(kind: 8, count: 1)) { try Frame(decoding: [0x08, 0, 0, 0, 0, 0]) }
        #expect(throws: FrameError.invalidUTF8(kind: 8)) { try Frame(decoding: [0x08, 1, 0, 0xC0, 0, 0]) }
        #expect(throws: FrameError.truncated(kind: 0x12)) { try Frame(decoding: [0x12, 0, 0]) }
    }

    @Test func restartRequestRefusesEveryShortfallAndTrailing() throws {
        let bytes = try Frame.restartRequest(RestartRequest(id: 3, child: "s.1", reason: "exit 1",
                                                            recentRestarts: 2, incarnation: 4)).encoded()
        #expect(bytes.count == 1 + 8 + 2 + 3 + 2 + 6 + 4 + 8)
        for n in 1..<bytes.count {
            #expect(throws: FrameError.truncated(kind: 0x14)) { try Frame(decoding: bytes.prefix(n)) }
        }
        #expect(throws: FrameError.trailingBytes(kind: 0x14, count: 1)) { try Frame(decoding: bytes + [0]) }
    }

    @Test func checkpointRefusedNeedsItsReason() throws {
        #expect(throws: FrameError.truncated(kind: 0x16)) { try Frame(decoding: [0x16]) }
        #expect(throws: FrameError.truncated(kind: 0x16)) { try Frame(decoding: [0x16, 4, 0, 0x61]) }
        #expect(throws: FrameError.trailingBytes(kind: 0x16, count: 1)) { try Frame(decoding: [0x16, 0, 0, 0]) }
    }
}
