import Testing
@testable import Trading

@Suite("Price: integer micros, strict decimal text")
struct MoneyTests {
    @Test("canonical formatting", arguments: [
        (Int64(0), "0"), (1, "0.000001"), (10, "0.00001"), (1_000_000, "1"), (1_500_000, "1.5"),
        (60_123_450_000, "60123.45"), (-12_500_000, "-12.5"), (-1, "-0.000001"), (123_456_789, "123.456789"),
        (Int64.max, "9223372036854.775807"), (Int64.min + 1, "-9223372036854.775807"),
    ])
    func format(micros: Int64, text: String) {
        #expect(Price(micros: micros).description == text)
    }

    @Test("parsing accepts the strict form", arguments: [
        ("0", Int64(0)), ("7", 7_000_000), ("0.5", 500_000), ("0.000001", 1), ("60123.45", 60_123_450_000),
        ("1.50", 1_500_000), ("9223372036854.775807", Int64.max),
    ])
    func parse(text: String, micros: Int64) {
        #expect(Price(parsing: text)?.micros == micros)
    }

    @Test("parsing rejects everything else", arguments: [
        "", ".", "1.", ".5", "01", "00", "+1", "-1", "1e3", "1.0000001", " 1", "1 ", "1,5", "1..2", "1.2.3",
        "0x10", "١", "１", "99999999999999", "NaN", "inf", "-0", "1-",
    ])
    func reject(text: String) {
        #expect(Price(parsing: text) == nil)
    }

    @Test("negative only when allowed")
    func negative() {
        #expect(Price(parsing: "-2.5", allowNegative: true)?.micros == -2_500_000)
        #expect(Price(parsing: "-0", allowNegative: true) == nil)
        #expect(Price(parsing: "--1", allowNegative: true) == nil)
        #expect(Price(parsing: "-2.5") == nil)
    }

    @Test("overflow is rejected, not wrapped")
    func overflow() {
        #expect(Price(parsing: "9223372036854.775807")?.micros == .max)
        #expect(Price(parsing: "9223372036854.775808") == nil)
        #expect(Price(parsing: "9223372036855") == nil)
        #expect(Price(parsing: "9999999999999.999999") == nil)
    }

    @Test("format then parse round-trips for many values")
    func roundTrip() {
        var rng = SplitMix64(seed: 7)
        for _ in 0..<20_000 {
            let v = Int64.random(in: -1_000_000_000_000_000...1_000_000_000_000_000, using: &rng)
            let p = Price(micros: v)
            #expect(Price(parsing: p.description, allowNegative: true) == p || v == 0)
        }
        #expect(Price(parsing: Price.zero.description) == .zero)
    }

    @Test("saturating arithmetic and notional")
    func arithmetic() {
        #expect(Price(units: 3).micros == 3_000_000)
        #expect((Price(micros: .max) + Price(micros: 1)).micros == .max)
        #expect((Price(micros: .min) - Price(micros: 1)).micros == .min)
        #expect((Price(micros: 5) - Price(micros: 7)).micros == -2)
        #expect(notional(-3, at: Price(units: 100)) == Price(units: 300))
        #expect(notional(0, at: Price(units: 100)) == .zero)
        #expect(notional(.max, at: Price(units: 2)).micros == .max)
        #expect(notional(.min, at: Price(units: 2)).micros == .max)
        #expect(Int64.min.saturatingNegate() == .max)
        #expect(Int64(-5).saturatingMultiply(.max) == .min)
        #expect(Int64(-5).saturatingMultiply(-5) == 25)
        #expect(Int64.max.saturatingAdd(1) == .max && Int64.min.saturatingAdd(-1) == .min)
    }
}

@Suite("Instruments, ids, orders, fills")
struct OrdersTests {
    @Test func instruments() throws {
        for ok in ["BTC-USD", "A", "X1", "ABCDEFGHIJKLMNOP", "SOL-USD-PERP"] { #expect(Instrument.isValid(ok), "\(ok)") }
        for bad in ["", "btc-usd", "1BTC", "-BTC", "BTC USD", "ABCDEFGHIJKLMNOPQ", "BTC/USD", "BTÇ"] {
            #expect(!Instrument.isValid(bad), "\(bad)")
            #expect(throws: TradingError.invalidSymbol(bad)) { try Instrument(bad) }
        }
        #expect(try Instrument("A") < Instrument("B"))
    }

    @Test func clientOrderIDs() {
        for ok in ["a", "strategy-runner.2.3.kx9.17", "A_b:c-1.2", String(repeating: "x", count: 64)] {
            #expect(ClientOrderID.isValid(ok), "\(ok)")
        }
        for bad in ["", "a b", "a/b", "é", String(repeating: "x", count: 65), "a\n"] {
            #expect(!ClientOrderID.isValid(bad), "\(bad)")
        }
    }

    @Test func ordersAndFills() throws {
        let id = try ClientOrderID("c1"), btc = try Instrument("BTC-USD")
        #expect(throws: TradingError.invalidQuantity(0)) { try Order(clientOrderID: id, instrument: btc, side: .buy, quantity: 0) }
        #expect(throws: TradingError.invalidQuantity(-1)) { try Order(clientOrderID: id, instrument: btc, side: .buy, quantity: -1) }
        #expect(throws: TradingError.invalidQuantity(Order.maximumQuantity + 1)) {
            try Order(clientOrderID: id, instrument: btc, side: .sell, quantity: Order.maximumQuantity + 1)
        }
        let order = try Order(clientOrderID: id, instrument: btc, side: .sell, quantity: 4)
        let fill = try Fill(fillID: 9, order: order, price: Price(units: 10))
        #expect(fill.matches(order))
        #expect(fill.signedQuantity == -4)
        #expect(!fill.matches(try Order(clientOrderID: id, instrument: btc, side: .buy, quantity: 4)))
        #expect(!fill.matches(try Order(clientOrderID: id, instrument: btc, side: .sell, quantity: 5)))
        #expect(!fill.matches(try Order(clientOrderID: ClientOrderID("c2"), instrument: btc, side: .sell, quantity: 4)))
        #expect(throws: TradingError.invalidPrice(0)) { try Fill(fillID: 1, order: order, price: .zero) }
        #expect(Side.buy.sign == 1 && Side.sell.sign == -1)
    }
}
