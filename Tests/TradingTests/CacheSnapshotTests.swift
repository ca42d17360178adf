import Testing
@testable import Trading

/// The cache warmer's snapshot: built whole from one read, answered by line.
@Suite("Cache snapshot")
struct CacheSnapshotTests {
    let btc = try! Instrument("BTC-USD"), eth = try! Instrument("ETH-USD")

    func fill(_ id: Int64, _ cid: String, _ i: Instrument, _ side: Side, _ q: Int64) throws -> Fill {
        try Fill(fillID: id, clientOrderID: ClientOrderID(cid), instrument: i, side: side, quantity: q, price: Price(units: 10))
    }

    func snapshot() throws -> CacheSnapshot {
        try CacheSnapshot(generation: 3, instruments: [(btc, Price(units: 60_000)), (eth, Price(units: 3_000))],
                          lastPrices: [btc: (Price(micros: 60_012_500_000), 1_700_000_000_000_000_000)],
                          fills: [fill(1, "strategy-runner.1.1.a.1", btc, .buy, 2), fill(2, "strategy-runner.1.2.b.1", btc, .sell, 1),
                                  fill(3, "strategy-runner.2.1.c.1", eth, .sell, 3), fill(7, "liquidation.1.1", eth, .buy, 3)])
    }

    @Test func positionsAreNetPerOwnerAcrossIncarnations() throws {
        let s = try snapshot()
        #expect(s.positions["strategy-runner.1"] == [btc: 1])
        #expect(s.positions["strategy-runner.2"] == [eth: -3])
        #expect(s.positions[CacheSnapshot.venueOwner] == [eth: 3], "fills without an owner are the venue's")
        #expect(s.fillCount == 4 && s.lastFillID == 7)
    }

    @Test func lookupsAnswerOneLineEach() throws {
        let s = try snapshot()
        #expect(s.answer("GET position strategy-runner.1 BTC-USD") == "POSITION strategy-runner.1 BTC-USD 1")
        #expect(s.answer("GET position strategy-runner.9 BTC-USD") == "POSITION strategy-runner.9 BTC-USD 0", "no fills: flat")
        #expect(s.answer("GET price BTC-USD") == "PRICE BTC-USD \(Price(micros: 60_012_500_000)) 1700000000000000000")
        #expect(s.answer("GET price ETH-USD") == "PRICE ETH-USD \(Price(units: 3_000)) seed", "no gateway price yet: the seed")
        #expect(s.answer("GET instrument ETH-USD") == "INSTRUMENT ETH-USD \(Price(units: 3_000))")
        #expect(s.answer("GET price DOGE-USD") == "NOTFOUND instrument DOGE-USD")
        #expect(s.answer("GET position strategy-runner.1 doge") == "NOTFOUND instrument doge")
        #expect(s.answer("GET position bad/owner BTC-USD") == "ERROR bad_owner")
        #expect(s.answer("INFO") == "CACHE generation=3 instruments=2 fills=4 last_fill=7")
        #expect(s.answer("GET colour BTC-USD") == "ERROR unknown_lookup")
        #expect(s.answer("") == "ERROR unknown_request")
    }

    @Test func noInstrumentsIsNotWarm() {
        #expect(throws: CacheSnapshot.BuildError.noInstruments) {
            _ = try CacheSnapshot(generation: 1, instruments: [], lastPrices: [:], fills: [])
        }
    }
}
