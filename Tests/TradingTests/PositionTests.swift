import Testing
@testable import Trading

func fill(_ side: Side, _ qty: Int64, _ price: String, _ symbol: String = "BTC-USD", id: Int64 = 1) -> Fill {
    try! Fill(fillID: id, clientOrderID: ClientOrderID("c\(id)"), instrument: Instrument(symbol), side: side,
              quantity: qty, price: Price(parsing: price)!)
}

func px(_ s: String) -> Price { Price(parsing: s, allowNegative: true)! }

@Suite("Positions: average price, realised P&L, flips")
struct PositionTests {
    let btc = try! Instrument("BTC-USD")

    @Test func openAndAdd() throws {
        var p = Position(instrument: btc)
        try p.apply(fill(.buy, 2, "100"))
        #expect(p.netQuantity == 2 && p.averagePrice == px("100") && p.realisedPnL == .zero)
        try p.apply(fill(.buy, 1, "130"))
        #expect(p.netQuantity == 3 && p.averagePrice == px("110"))
        #expect(p.fillCount == 2 && p.lastFillPrice == px("130"))
    }

    @Test func partialReduceRealises() throws {
        var p = Position(instrument: btc)
        try p.apply(fill(.buy, 3, "110"))
        try p.apply(fill(.sell, 1, "120"))
        #expect(p.netQuantity == 2 && p.averagePrice == px("110") && p.realisedPnL == px("10"))
        try p.apply(fill(.sell, 2, "100"))
        #expect(p.netQuantity == 0 && p.averagePrice == .zero && p.realisedPnL == px("-10"))
    }

    @Test func shortSide() throws {
        var p = Position(instrument: btc)
        try p.apply(fill(.sell, 2, "50"))
        #expect(p.netQuantity == -2 && p.averagePrice == px("50"))
        try p.apply(fill(.sell, 2, "60"))
        #expect(p.netQuantity == -4 && p.averagePrice == px("55"))
        try p.apply(fill(.buy, 1, "45"))  // short profits when price falls
        #expect(p.netQuantity == -3 && p.realisedPnL == px("10"))
        #expect(p.unrealisedPnL(at: px("65")) == px("-30"))
        #expect(p.exposure(at: px("65")) == px("195"))
    }

    @Test("a fill through zero closes the old side and opens the rest at the fill price")
    func flip() throws {
        var p = Position(instrument: btc)
        try p.apply(fill(.buy, 2, "100"))
        try p.apply(fill(.sell, 5, "110"))
        #expect(p.netQuantity == -3 && p.averagePrice == px("110") && p.realisedPnL == px("20"))
        try p.apply(fill(.buy, 4, "100"))  // closes 3 short at +10 each, opens 1 long at 100
        #expect(p.netQuantity == 1 && p.averagePrice == px("100") && p.realisedPnL == px("50"))
    }

    @Test("average price rounds to the nearest micro")
    func rounding() throws {
        var p = Position(instrument: btc)
        try p.apply(fill(.buy, 1, "0.000001"))
        try p.apply(fill(.buy, 2, "0.000002"))  // 5/3 micros = 1.67 -> 2
        #expect(p.averagePrice.micros == 2)
        var q = Position(instrument: btc)
        try q.apply(fill(.buy, 2, "0.000001"))
        try q.apply(fill(.buy, 1, "0.000002"))  // 4/3 = 1.33 -> 1
        #expect(q.averagePrice.micros == 1)
    }

    @Test func wrongInstrumentThrows() {
        var p = Position(instrument: btc)
        #expect(throws: TradingError.instrumentMismatch(position: "BTC-USD", fill: "ETH-USD")) {
            try p.apply(fill(.buy, 1, "1", "ETH-USD"))
        }
        #expect(p.fillCount == 0)
    }

    @Test("large quantities at large prices do not trap")
    func large() throws {
        var p = Position(instrument: btc)
        try p.apply(fill(.buy, Order.maximumQuantity, "9000000"))
        try p.apply(fill(.buy, Order.maximumQuantity, "9000000"))
        #expect(p.averagePrice == px("9000000"))
        try p.apply(fill(.sell, Order.maximumQuantity, "1"))
        #expect(p.realisedPnL.micros == .min)  // saturated, not crashed
        #expect(p.exposure(at: px("9000000")).micros == .max)
    }

    @Test("realised plus unrealised equals the cash flows, within the rounding of averages")
    func conservation() throws {
        var rng = SplitMix64(seed: 42)
        for _ in 0..<300 {
            var p = Position(instrument: btc)
            var cash: Int64 = 0  // -sum(signed qty * price)
            var bound: Int64 = 1
            for i in 0..<Int.random(in: 1...40, using: &rng) {
                let side: Side = Bool.random(using: &rng) ? .buy : .sell
                let qty = Int64.random(in: 1...50, using: &rng)
                let price = Price(micros: Int64.random(in: 1...200_000_000, using: &rng))
                try p.apply(Fill(fillID: Int64(i), clientOrderID: ClientOrderID("x\(i)"), instrument: btc, side: side,
                                 quantity: qty, price: price))
                cash -= side.sign * qty * price.micros
                bound += abs(p.netQuantity)
            }
            let mark = Price(micros: Int64.random(in: 1...200_000_000, using: &rng))
            let total = p.realisedPnL.micros + p.unrealisedPnL(at: mark).micros
            let expected = cash + p.netQuantity * mark.micros
            #expect(abs(total - expected) <= bound)
            if p.netQuantity == 0 { #expect(p.averagePrice == .zero) } else { #expect(p.averagePrice.micros > 0) }
        }
    }
}

@Suite("Portfolio exposure and limits")
struct ExposureTests {
    @Test func exposureWithMarksAndFallback() throws {
        var book = Portfolio()
        book.apply(fill(.buy, 2, "100", "BTC-USD", id: 1))
        book.apply(fill(.sell, 3, "10", "ETH-USD", id: 2))
        book.apply(fill(.buy, 1, "5", "SOL-USD", id: 3))
        book.apply(fill(.sell, 1, "6", "SOL-USD", id: 4))  // flat: no exposure
        let report = book.exposure(marks: [try Instrument("BTC-USD"): px("150")])
        #expect(report.perInstrument == [try Instrument("BTC-USD"): px("300"), try Instrument("ETH-USD"): px("30")])
        #expect(report.total == px("330"))
        #expect(report.unpriced.isEmpty)
        #expect(book.realisedPnL == px("1"))
    }

    @Test func limits() throws {
        let btc = try Instrument("BTC-USD"), eth = try Instrument("ETH-USD")
        let report = ExposureReport(perInstrument: [btc: px("300"), eth: px("30")], total: px("330"), unpriced: [])
        #expect(ExposureLimits(total: px("330")).breaches(in: report).isEmpty)  // equal is within
        #expect(ExposureLimits(total: nil).breaches(in: report).isEmpty)
        #expect(ExposureLimits(total: px("329.999999")).breaches(in: report) == [.total(exposure: px("330"), limit: px("329.999999"))])
        let both = ExposureLimits(total: px("100"), perInstrument: px("20")).breaches(in: report)
        #expect(both == [.total(exposure: px("330"), limit: px("100")),
                         .instrument(btc, exposure: px("300"), limit: px("20")),
                         .instrument(eth, exposure: px("30"), limit: px("20"))])
        #expect(both[1].description == "BTC-USD exposure 300 exceeds per-instrument limit 20")
    }
}
