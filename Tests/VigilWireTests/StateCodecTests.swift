import Testing
import VigilWire

@Suite("State codec")
struct StateCodecTests {
    /// A strategy runner's checkpoint: version, position, P&L, a price window, in-flight ids.
    @Test func roundTripsAStrategyLikeState() throws {
        var w = StateWriter()
        w.append(UInt64(1))
        w.append(Int64(-3))
        w.append(Int64(-1_234_567_890_123))
        w.append([Int64](arrayLiteral: 60_123_450_000, 60_120_000_000, 60_200_000_001))
        w.append(["ord-1", "ord-2", "ünï ✓"])
        w.append(true)
        w.append(false)
        w.append(0.25)
        w.append(bytes: [0, 0xFF, 7])
        w.append([UInt64](), each: { $0.append($1) })
        w.append([1, 2, 3] as [Int])
        w.append([-1.5, .infinity] as [Double])
        w.append([true, false] as [Bool])
        w.append([UInt64.max, 0])
        w.append(Int.min)
        w.append("")

        var r = StateReader(w.bytes)
        #expect(try r.uint64() == 1)
        #expect(try r.int64() == -3)
        #expect(try r.int64() == -1_234_567_890_123)
        #expect(try r.int64s() == [60_123_450_000, 60_120_000_000, 60_200_000_001])
        #expect(try r.strings() == ["ord-1", "ord-2", "ünï ✓"])
        #expect(try r.bool() == true)
        #expect(try r.bool() == false)
        #expect(try r.double() == 0.25)
        #expect(try r.bytes() == [0, 0xFF, 7])
        #expect(try r.array { (r) throws(StateCodecError) in try r.uint64() } == [])
        #expect(try r.ints() == [1, 2, 3])
        #expect(try r.doubles() == [-1.5, .infinity])
        #expect(try r.bools() == [true, false])
        #expect(try r.uint64s() == [.max, 0])
        #expect(try r.int() == .min)
        #expect(try r.string() == "")
        #expect(r.isAtEnd)
        try r.finish()
    }

    @Test(arguments: [Int64.min, .min + 1, -65, -64, -1, 0, 1, 63, 64, 8191, 8192, .max - 1, .max])
    func signedEdgesRoundTrip(_ v: Int64) throws {
        var w = StateWriter()
        w.append(v)
        var r = StateReader(w.bytes)
        #expect(try r.int64() == v)
        try r.finish()
    }

    @Test func varintsAreShortForSmallNumbers() {
        var w = StateWriter()
        w.append(UInt64(127)); #expect(w.bytes == [0x7F])
        w = StateWriter(); w.append(UInt64(128)); #expect(w.bytes == [0x80, 0x01])
        w = StateWriter(); w.append(Int64(-1)); #expect(w.bytes == [0x01])
        w = StateWriter(); w.append(Int64(63)); #expect(w.bytes == [0x7E])
        w = StateWriter(); w.append(UInt64.max); #expect(w.bytes == [UInt8](repeating: 0xFF, count: 9) + [0x01])
        w = StateWriter(); w.append(3.0); #expect(w.count == 8)
    }

    @Test func rejectsTruncation() throws {
        var w = StateWriter()
        w.append("hello")
        w.append(UInt64(300))
        w.append(2.5)
        let full = w.bytes
        for n in 0..<full.count {
            var r = StateReader(full.prefix(n))
            #expect(throws: StateCodecError.self) {
                _ = try r.string(); _ = try r.uint64(); _ = try r.double()
            }
        }
        var empty = StateReader([UInt8]())
        #expect(throws: StateCodecError.truncated(offset: 0)) { try empty.bool() }
    }

    @Test func rejectsOverlongAndOverflowingVarints() {
        var a = StateReader([0x80, 0x00])            // 0 spelled in two bytes
        #expect(throws: StateCodecError.badVarint(offset: 0)) { try a.uint64() }
        var b = StateReader([0xFF, 0x80, 0x00])
        #expect(throws: StateCodecError.badVarint(offset: 0)) { try b.uint64() }
        var c = StateReader([UInt8](repeating: 0xFF, count: 9) + [0x02])   // 65 bits
        #expect(throws: StateCodecError.badVarint(offset: 0)) { try c.uint64() }
        var d = StateReader([UInt8](repeating: 0xFF, count: 10) + [0x01])  // 11 bytes
        #expect(throws: StateCodecError.badVarint(offset: 0)) { try d.uint64() }
        var e = StateReader([0x80])
        #expect(throws: StateCodecError.truncated(offset: 0)) { try e.uint64() }
    }

    @Test func rejectsBadBoolsUTF8AndHugeCounts() {
        var a = StateReader([2])
        #expect(throws: StateCodecError.badBool(offset: 0, byte: 2)) { try a.bool() }
        var b = StateReader([2, 0xC3, 0x28])
        #expect(throws: StateCodecError.invalidUTF8(offset: 0)) { try b.string() }
        // A count of 2^63 must fail before allocating anything.
        var c = StateReader([UInt8](repeating: 0xFF, count: 8) + [0x7F])
        #expect(throws: StateCodecError.truncated(offset: 0)) { try c.int64s() }
        var d = StateReader([5, 1, 2])
        #expect(throws: StateCodecError.truncated(offset: 0)) { try d.bytes() }
    }

    @Test func finishRefusesLeftovers() throws {
        var r = StateReader([1, 2, 3])
        #expect(try r.uint64() == 1)
        #expect(r.remaining == 2)
        #expect(throws: StateCodecError.trailingBytes(count: 2)) { try r.finish() }
    }

    /// One spelling per value: random bytes read as a varint either fail or re-encode to
    /// exactly the bytes consumed.
    @Test func varintsAreCanonical() {
        var rng = SystemRandomNumberGenerator()
        for _ in 0..<20_000 {
            let bytes = (0..<Int.random(in: 1...11, using: &rng)).map { _ in
                Bool.random(using: &rng) ? UInt8.random(in: 0x80...0xFF, using: &rng) : UInt8.random(in: 0...0x7F, using: &rng)
            }
            var r = StateReader(bytes)
            guard let v = try? r.uint64() else { continue }
            var w = StateWriter()
            w.append(v)
            #expect(w.bytes == Array(bytes.prefix(r.offset)))
        }
    }

    @Test func aCheckpointFitsAFrame() throws {
        var w = StateWriter()
        w.append([Int64](repeating: 60_000_000_000, count: 1_000))
        #expect(w.count < Frame.maximumSize - 1)
        let frame = Frame.checkpoint(w.bytes)
        guard case .checkpoint(let back) = try Frame(decoding: try frame.encoded()) else {
            Issue.record("not a checkpoint"); return
        }
        var r = StateReader(back)
        #expect(try r.int64s().count == 1_000)
    }
}
