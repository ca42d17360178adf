import Testing
import VigilWire

@Suite("Frames")
struct FrameTests {
    static let samples: [Frame] = [
        .ready, .heartbeat, .stopping, .status("ok: 3 fills"), .status(""), .status("ünïcødé ✓"),
        .sample(WorkerSample(worker: "strategy-runner.2", pid: 4242, rssKiB: 12_345, cpuMicros: 99,
                             intervalMicros: 5_000_000, restarts: 3)),
        .notice(key: "safe_mode", value: "on"),
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
            if !bytes.isEmpty { bytes[0] = [1, 2, 3, 4, 0x11, 0x12][Int.random(in: 0..<6, using: &rng)] }
            guard let frame = try? Frame(decoding: bytes) else { continue }
            decoded += 1
            #expect(try frame.encoded() == bytes)
        }
        #expect(decoded > 0)
    }
}
