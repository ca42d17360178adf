import Testing
@testable import Trading

/// What the risk guardian reads from the cache warmer: the book (built the same from fills
/// as from the cache's answer), its parsing, and the choice of source tick by tick.
@Suite("Risk book, GET book and the guardian's choice of source")
struct RiskSourceTests {
    let btc = try! Instrument("BTC-USD"), eth = try! Instrument("ETH-USD"), sol = try! Instrument("SOL-USD")

    func fill(_ id: Int64, _ cid: String, _ i: Instrument, _ side: Side, _ q: Int64, _ price: Int64) throws -> Fill {
        try Fill(fillID: id, clientOrderID: ClientOrderID(cid), instrument: i, side: side, quantity: q, price: Price(units: price))
    }

    func fills() throws -> [Fill] {
        [try fill(1, "strategy-runner.1.1.a.1", btc, .buy, 2, 60_000), try fill(2, "strategy-runner.2.1.b.1", btc, .sell, 1, 60_100),
         try fill(3, "strategy-runner.1.2.c.1", btc, .sell, 1, 60_300), try fill(4, "strategy-runner.2.1.b.2", eth, .sell, 3, 3_000),
         try fill(5, "liquidation.1.1", eth, .buy, 1, 2_990), try fill(6, "strategy-runner.1.2.c.2", btc, .sell, 1, 60_200)]
    }

    @Test func theBookGivesThePortfoliosExposureAndEquity() throws {
        let fs = try fills()
        let book = RiskBook(fills: fs), portfolio = Portfolio(fills: fs)
        for marks in [[:], [btc: Price(units: 59_000)], [btc: Price(units: 61_000), eth: Price(units: 2_500)]] as [[Instrument: Price]] {
            #expect(book.exposure(marks: marks) == portfolio.exposure(marks: marks))
            #expect(book.equity(marks: marks) == portfolio.equity(marks: marks), "marks \(marks)")
        }
        #expect(book.netQuantities == portfolio.netQuantities)
        #expect(book.positions["strategy-runner.1"] == [btc: 0], "a flat holding is kept: its cost is realised P&L")
        #expect(book.holdings["strategy-runner.1"]?[btc]?.cost == Price(units: 120_000 - 60_300 - 60_200))
        #expect(book.holdings[CacheSnapshot.venueOwner]?[eth] == .init(net: 1, cost: Price(units: 2_990)))
        #expect(book.lastFillPrices == [btc: Price(units: 60_200), eth: Price(units: 2_990)])
        #expect(book.fillCount == 6 && book.lastFillID == 6 && book.hasOpenPositions)
    }

    func snapshot(built: Int64 = 1_000_000_000) throws -> CacheSnapshot {
        try CacheSnapshot(generation: 9, instruments: [(btc, Price(units: 60_000)), (eth, Price(units: 3_000)), (sol, Price(units: 150))],
                          lastPrices: [btc: (Price(micros: 60_012_500_000), 1_700_000_000_000_000_000)], fills: fills(), builtNs: built)
    }

    @Test func getBookIsOneLineAndParsesBackToTheSameBook() throws {
        let s = try snapshot()
        let line = s.answer("GET book", now: 1_250_000_000)
        #expect(line.hasPrefix("BOOK generation=9 age_ms=250 fills=6 last_fill=6 | PRICE BTC-USD 60012.5 1700000000000000000 | PRICE ETH-USD 3000 seed"))
        #expect(line.contains(" | LASTFILL BTC-USD 60200 | LASTFILL ETH-USD 2990 | HOLDING strategy-runner.1 BTC-USD 0 -500 |"))
        #expect(line.contains("HOLDING strategy-runner.2 ETH-USD -3 -9000"))
        #expect(!line.contains("\n"))
        let parsed = try CachedBook(parsing: line)
        #expect(parsed.generation == 9 && parsed.ageNs == 250_000_000)
        #expect(parsed.book == s.book)
        #expect(parsed.marks == [btc: Price(micros: 60_012_500_000)], "a seed price is no mark, as in the database")
        #expect(s.answer("GET book").contains("age_ms=0"), "without a clock: as of its build")
        #expect(s.answer("GET book", now: 0).contains("age_ms=0"), "a clock behind the build is no negative age")
    }

    @Test func anEmptyBookParses() throws {
        let s = try CacheSnapshot(generation: 1, instruments: [(btc, Price(units: 1))], lastPrices: [:], fills: [])
        let parsed = try CachedBook(parsing: s.answer("GET book"))
        #expect(parsed.book == RiskBook() && parsed.marks.isEmpty && !parsed.book.hasOpenPositions)
    }

    @Test func whatIsNotABookIsRefusedOrMalformed() throws {
        #expect(throws: CachedBook.ParseError.refused("cache_rebuilding")) { try CachedBook(parsing: "ERROR cache_rebuilding") }
        #expect(throws: CachedBook.ParseError.refused("unknown")) { try CachedBook(parsing: "ERROR") }
        let head = "BOOK generation=1 age_ms=5 fills=1 last_fill=1"
        for bad in ["", "CACHE generation=1 instruments=1 fills=0 last_fill=0", "BOOK generation=1 age_ms=5 fills=1",
                    "BOOK generation=x age_ms=5 fills=1 last_fill=1", "BOOK generation=1 age_ms=-5 fills=1 last_fill=1",
                    head + " | PRICE btc 1 seed", head + " | PRICE BTC-USD -1 seed", head + " | PRICE BTC-USD 1 soon",
                    head + " | PRICE BTC-USD 1 5 | PRICE BTC-USD 2 6", head + " | HOLDING bad/owner BTC-USD 1 1",
                    head + " | HOLDING o BTC-USD 1.5 1", head + " | HOLDING o BTC-USD 1 1 | HOLDING o BTC-USD 2 2",
                    head + " | LASTFILL BTC-USD", head + " | WHAT is this", head + " |", head + " | HOLDING o BTC-USD 1 1e3"] {
            #expect(throws: CachedBook.ParseError.self, "\(bad)") { try CachedBook(parsing: bad) }
        }
        let ok = try CachedBook(parsing: head + " | HOLDING strategy-runner.3 SOL-USD -2 -300.5 | LASTFILL SOL-USD 150.25")
        #expect(ok.book.holdings["strategy-runner.3"]?[sol] == .init(net: -2, cost: Price(micros: -300_500_000)))
        #expect(ok.book.exposure(marks: [:]).total == Price(micros: 300_500_000), "marked at the last fill")
    }

    // MARK: - Choosing the source

    func book(generation: Int, ageMs: Int64) -> CacheReading {
        .book(CachedBook(generation: generation, ageNs: ageMs * 1_000_000, marks: [:], book: RiskBook()))
    }

    @Test func aFreshCacheIsUsedFromTheStartAndAnnouncedOnce() {
        var s = RiskSourceSelector(maxAgeNs: 3_000_000_000)
        let first = s.choose(book(generation: 1, ageMs: 10))
        #expect(first.source == .cache && first.book?.generation == 1)
        #expect(first.switched == .init(from: nil, to: .cache, why: "generation 1, \(Duration.milliseconds(10)) old"))
        for g in 2...5 {
            let c = s.choose(book(generation: g, ageMs: 900))
            #expect(c.source == .cache && c.book?.generation == g && c.switched == nil, "no journal record per tick")
        }
    }

    @Test func downWedgedRebuildingOrStaleFallsBackAtOnceAndReturnsAfterThreeFreshReads() {
        for bad in [CacheReading.failed("down (Connection refused)"), .failed("wedged or slow: no answer within 50 ms"),
                    .failed("rebuilding (no snapshot yet)"), book(generation: 4, ageMs: 3_001)] {
            var s = RiskSourceSelector(maxAgeNs: 3_000_000_000)
            _ = s.choose(book(generation: 1, ageMs: 0))
            let down = s.choose(bad)
            #expect(down.source == .database && down.book == nil)
            #expect(down.switched?.from == .cache && down.switched?.to == .database)
            if case .book = bad { #expect(down.switched?.why.hasPrefix("cache stale: generation 4 is") == true) }
            #expect(s.choose(bad).switched == nil, "once per switch")
            #expect(s.choose(book(generation: 5, ageMs: 0)) == .init(source: .database, book: nil, switched: nil))
            #expect(s.choose(book(generation: 6, ageMs: 0)).source == .database)
            let back = s.choose(book(generation: 7, ageMs: 0))
            #expect(back.source == .cache && back.book?.generation == 7 && back.switched?.from == .database)
            #expect(back.switched?.description == "risk data from the cache warmer again (generation 7, \(Duration.seconds(0)) old)")
        }
    }

    @Test func aFlappingCacheKeepsTheDatabase() {
        var s = RiskSourceSelector(maxAgeNs: 1_000_000_000, freshReadsToReturn: 3)
        let first = s.choose(.failed("down (No such file or directory)"))
        #expect(first.source == .database && first.switched?.from == nil)
        #expect(first.switched?.description == "risk data from the database: cache down (No such file or directory)")
        var switches = 0
        for i in 0..<21 {  // ends on a failure
            let c = s.choose(i % 3 == 2 ? .failed("closed the connection before answering") : book(generation: i, ageMs: 0))
            #expect(c.source == .database)
            if c.switched != nil { switches += 1 }
        }
        #expect(switches == 0)
        #expect(s.choose(book(generation: 1, ageMs: 0)).source == .database)
        #expect(s.choose(book(generation: 2, ageMs: 0)).source == .database)
        #expect(s.choose(book(generation: 3, ageMs: 0)).source == .cache, "the third fresh read in a row")
    }
}
