import Testing
@testable import Trading

private let btc = try! Instrument("BTC-USD")
private let eth = try! Instrument("ETH-USD")

private func order(_ id: String, _ side: Side, _ qty: Int64, _ i: Instrument = btc) -> Order {
    try! Order(clientOrderID: ClientOrderID(id), instrument: i, side: side, quantity: qty)
}

private func filled(_ o: Order, _ price: String, fillID: Int64 = 1) -> Fill {
    try! Fill(fillID: fillID, order: o, price: Price(parsing: price)!)
}

/// A book with positions in two instruments, an order in flight and warm indicators.
private func sampleCheckpoint() -> RunnerCheckpoint {
    var book = RunnerBook()
    let a = order("strategy-runner.1.3.k1.1", .buy, 2)
    let b = order("strategy-runner.1.3.k1.2", .sell, 1, eth)
    let c = order("strategy-runner.1.3.k1.3", .sell, 1)
    for o in [a, b, c] { book.send(o); _ = book.nextSequence() }
    do { let r = book.apply(filled(a, "60000.5", fillID: 7)); #expect(r == .applied) }
    do { let r = book.apply(filled(b, "3000", fillID: 8)); #expect(r == .applied) }
    var m = try! MovingAverageCrossover(shortWindow: 2, longWindow: 4)
    for p in ["10", "11", "12", "9", "8", "13"] { _ = m.update(Price(parsing: p)!) }
    return RunnerCheckpoint(book: book, indicators: [btc: IndicatorState(m)])
}

@Suite("Strategy runner: idempotent fills and checkpoints")
struct RunnerStateTests {
    @Test func fillIsAppliedOnceByClientOrderID() {
        var book = RunnerBook()
        let o = order("r.1", .buy, 1)
        do { let r = book.send(o); #expect(r) }
        do { let r = book.send(o); #expect(!r) }  // the same id is in flight once
        #expect(book.netIncludingInFlight(btc) == 1)
        let f = filled(o, "100")
        do { let r = book.apply(f); #expect(r == .applied) }
        do { let r = book.apply(f); #expect(r == .notInFlight) }  // the gateway's replay changes nothing
        do { let r = book.apply(filled(o, "100", fillID: 2)); #expect(r == .notInFlight) }
        #expect(book.portfolio.positions[btc]?.netQuantity == 1)
        #expect(book.inFlight.isEmpty)
    }

    @Test func mismatchedFillIsNotApplied() {
        var book = RunnerBook()
        let o = order("r.1", .buy, 1)
        book.send(o)
        let wrong = filled(order("r.1", .sell, 1), "100")
        do { let r = book.apply(wrong); #expect(r == .mismatch(expected: o)) }
        #expect(book.isInFlight(o.clientOrderID) && book.portfolio.positions.isEmpty)
    }

    @Test func rejectTakesOutOfFlightWithoutFilling() {
        var book = RunnerBook()
        let o = order("r.1", .buy, 1)
        book.send(o)
        do { let r = book.reject(o.clientOrderID); #expect(r) }
        do { let r = book.reject(o.clientOrderID); #expect(!r) }
        do { let r = book.apply(filled(o, "1")); #expect(r == .notInFlight) }
        #expect(book.portfolio.positions.isEmpty)
    }

    /// Kill at any point of send -> fill: whichever checkpoint was last, restoring it and
    /// applying the gateway's replay ends with the same book as no crash at all.
    @Test func everyCrashPointConverges() throws {
        let o = order("r.1", .buy, 2)
        let f = filled(o, "50")
        var reference = RunnerBook()
        reference.send(o)
        _ = reference.apply(f)
        var beforeSend = RunnerBook()
        let checkpoints = [beforeSend.encodedCheckpoint()]
        beforeSend.send(o)
        let afterSend = beforeSend.encodedCheckpoint()
        _ = beforeSend.apply(f)
        let afterFill = beforeSend.encodedCheckpoint()
        for bytes in checkpoints + [afterSend, afterFill] {
            var book = try RunnerCheckpoint(decoding: bytes).book
            // Reconcile: re-send every id in flight; the venue answers with the original fill.
            for inFlight in book.inFlight where inFlight.clientOrderID == f.clientOrderID { _ = book.apply(f) }
            _ = book.apply(f)  // and a late replay on the old connection changes nothing
            if bytes != checkpoints[0] { #expect(book.portfolio == reference.portfolio) }
            #expect(book.inFlight.isEmpty)
        }
    }

    @Test func checkpointRoundTrip() throws {
        let c = sampleCheckpoint()
        let bytes = c.encoded()
        let d = try RunnerCheckpoint(decoding: bytes)
        #expect(d == c)
        #expect(d.book.sequence == 3 && d.book.inFlight.count == 1)
        #expect(d.book.portfolio.positions[btc]?.averagePrice == Price(parsing: "60000.5"))
        #expect(d.encoded() == bytes)
        // The restored indicator continues exactly like the original.
        var original = try MovingAverageCrossover(shortWindow: 2, longWindow: 4)
        for p in ["10", "11", "12", "9", "8", "13"] { _ = original.update(Price(parsing: p)!) }
        var restored = try #require(d.indicators[btc]?.indicator)
        for p in ["7", "20", "3", "3", "30", "1", "1"] {
            #expect(original.update(Price(parsing: p)!) == restored.update(Price(parsing: p)!))
        }
    }

    @Test func emptyCheckpointRoundTrip() throws {
        let c = RunnerCheckpoint(book: RunnerBook(), indicators: [:])
        #expect(try RunnerCheckpoint(decoding: c.encoded()) == c)
    }

    @Test func everyTruncationAndBitFlipIsRejected() {
        let bytes = sampleCheckpoint().encoded()
        for n in 0..<bytes.count {
            #expect(throws: CheckpointError.self) { try RunnerCheckpoint(decoding: Array(bytes.prefix(n))) }
        }
        for i in 0..<bytes.count {
            for bit in [0, 3, 7] {
                var b = bytes
                b[i] ^= UInt8(1 << bit)
                #expect(throws: CheckpointError.self) { try RunnerCheckpoint(decoding: b) }
            }
        }
        #expect(throws: CheckpointError.self) { try RunnerCheckpoint(decoding: bytes + [0]) }
    }

    @Test func validChecksumButImpossibleValuesAreRejected() {
        // A flat position with an average price, correctly checksummed: still refused.
        var w = ByteWriter()
        w.bytes = RunnerCheckpoint.magic
        w.u8(1); w.u64(0)
        w.u16(1); w.string("BTC-USD"); w.i64(0); w.i64(5); w.i64(0); w.u8(0); w.u64(1)
        w.u16(0); w.u16(0)
        w.u32(crc32(w.bytes))
        #expect(throws: CheckpointError.invalid("position in BTC-USD")) { try RunnerCheckpoint(decoding: w.bytes) }
        // Version 2 is not read as version 1.
        var v2 = sampleCheckpoint().encoded()
        v2[4] = 2
        #expect(throws: CheckpointError.unsupportedVersion(2)) { try RunnerCheckpoint(decoding: v2) }
    }

    @Test func randomBytesNeverCrashTheDecoder() {
        var rng = SplitMix(seed: 42)
        for _ in 0..<2000 {
            let n = Int(rng.next() % 200)
            var bytes = (0..<n).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            if n > 5 && rng.next() % 2 == 0 { bytes.replaceSubrange(0..<5, with: RunnerCheckpoint.magic + [1]) }
            _ = try? RunnerCheckpoint(decoding: bytes)
        }
    }

    @Test func crc32MatchesZlib() {
        #expect(crc32(Array("123456789".utf8)) == 0xCBF4_3926)
        #expect(crc32([]) == 0)
    }

    @Test func portfolioFromFillsEqualsIncrementalBook() {
        var orders: [Order] = []
        for k in 1...6 {
            let side: Side = k % 3 == 0 ? .sell : .buy
            orders.append(order("r.\(k)", side, Int64(k % 2 + 1), k % 2 == 0 ? eth : btc))
        }
        var book = RunnerBook()
        var fills: [Fill] = []
        for (k, o) in orders.enumerated() {
            book.send(o)
            let f = filled(o, "\(100 + k)", fillID: Int64(k + 1))
            fills.append(f)
            _ = book.apply(f)
        }
        #expect(Portfolio(fills: fills) == book.portfolio)
        #expect(netQuantities(fills) == book.portfolio.netQuantities)
    }
}

private extension RunnerBook {
    func encodedCheckpoint() -> [UInt8] { RunnerCheckpoint(book: self, indicators: [:]).encoded() }
}

struct SplitMix {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
