import Testing
@testable import Trading

@Suite("Gateway line protocol")
struct LineProtocolTests {
    static let order = try! Order(clientOrderID: ClientOrderID("strategy-runner.2.1.kx.17"), instrument: Instrument("BTC-USD"),
                                  side: .buy, quantity: 3)
    static let samples: [(LineMessage, String)] = [
        (.subscribe, "SUB"),
        (.order(order), "ORDER strategy-runner.2.1.kx.17 BTC-USD BUY 3"),
        (.hello(venue: "vigil-paper"), "HELLO PAPER vigil-paper"),
        (.subscribed(instruments: 3), "SUBSCRIBED 3"),
        (.price(try! Instrument("ETH-USD"), Price(parsing: "3001.25")!), "PRICE ETH-USD 3001.25"),
        (.fill(try! Fill(fillID: 42, order: order, price: Price(units: 60000))), "FILL 42 strategy-runner.2.1.kx.17 BTC-USD BUY 3 60000"),
        (.reject(try! ClientOrderID("c-1"), reason: "unknown_instrument"), "REJECT c-1 unknown_instrument"),
        (.error(reason: "bad_quantity"), "ERROR bad_quantity"),
    ]

    @Test("every message encodes to its line and parses back", arguments: samples)
    func roundTrip(message: LineMessage, line: String) throws {
        #expect(message.line == line)
        #expect(try LineMessage(parsing: line) == message)
    }

    @Test("garbage is rejected with a precise error", arguments: [
        ("", LineProtocolError.empty),
        ("SUB ", .badSpacing), (" SUB", .badSpacing), ("ORDER  a BTC-USD BUY 1", .badSpacing),
        ("SUB\r", .notASCII), ("SUB\t", .notASCII), ("PRICE BTC-USD 1\u{0}", .notASCII), ("PRICE BTC-USD 1€", .notASCII),
        ("sub", .unknownVerb("sub")), ("BUY", .unknownVerb("BUY")),
        ("SUB x", .wrongFieldCount(verb: "SUB", expected: 0, got: 1)),
        ("ORDER a BTC-USD BUY", .wrongFieldCount(verb: "ORDER", expected: 4, got: 3)),
        ("ORDER a BTC-USD BUY 1 2", .wrongFieldCount(verb: "ORDER", expected: 4, got: 5)),
        ("ORDER a/b BTC-USD BUY 1", .badField(verb: "ORDER", field: "client_order_id")),
        ("ORDER a btc-usd BUY 1", .badField(verb: "ORDER", field: "symbol")),
        ("ORDER a BTC-USD buy 1", .badField(verb: "ORDER", field: "side")),
        ("ORDER a BTC-USD BUY 0", .badField(verb: "ORDER", field: "quantity")),
        ("ORDER a BTC-USD BUY 01", .badField(verb: "ORDER", field: "quantity")),
        ("ORDER a BTC-USD BUY +1", .badField(verb: "ORDER", field: "quantity")),
        ("ORDER a BTC-USD BUY 1.0", .badField(verb: "ORDER", field: "quantity")),
        ("ORDER a BTC-USD BUY 1000000001", .badField(verb: "ORDER", field: "quantity")),
        ("ORDER a BTC-USD BUY 99999999999999999999", .badField(verb: "ORDER", field: "quantity")),
        ("HELLO LIVE venue", .badField(verb: "HELLO", field: "mode")),
        ("HELLO PAPER ven/ue", .badField(verb: "HELLO", field: "venue")),
        ("PRICE BTC-USD 0", .badField(verb: "PRICE", field: "price")),
        ("PRICE BTC-USD -1", .badField(verb: "PRICE", field: "price")),
        ("PRICE BTC-USD 1.0000001", .badField(verb: "PRICE", field: "price")),
        ("PRICE BTC-USD 1e5", .badField(verb: "PRICE", field: "price")),
        ("FILL 0 a BTC-USD BUY 1 1", .badField(verb: "FILL", field: "fill_id")),
        ("FILL 1 a BTC-USD BUY 1 0", .badField(verb: "FILL", field: "price")),
        ("REJECT a two words", .wrongFieldCount(verb: "REJECT", expected: 2, got: 3)),
        ("REJECT a bad!", .badField(verb: "REJECT", field: "reason")),
        ("SUBSCRIBED -1", .badField(verb: "SUBSCRIBED", field: "count")),
        ("ERROR", .wrongFieldCount(verb: "ERROR", expected: 1, got: 0)),
    ])
    func garbage(line: String, error: LineProtocolError) {
        #expect(throws: error) { try LineMessage(parsing: line) }
    }

    @Test func lengthLimit() {
        let long = "ORDER " + String(repeating: "a", count: LineMessage.maximumLength)
        #expect(throws: LineProtocolError.tooLong(long.utf8.count)) { try LineMessage(parsing: long) }
        #expect(LineProtocolError.tooLong(1).code == "line_too_long")
        #expect(LineProtocolError.badField(verb: "ORDER", field: "side").code == "bad_side")
    }

    @Test("random lines never crash the parser, and whatever parses re-encodes canonically")
    func fuzz() throws {
        var rng = SplitMix64(seed: 1234)
        let words = ["SUB", "ORDER", "PRICE", "FILL", "HELLO", "PAPER", "REJECT", "ERROR", "SUBSCRIBED", "BTC-USD",
                     "btc", "BUY", "SELL", "1", "0", "01", "2.5", "2.50", "-3", "x", "c-1", "", "€", "\t", "7",
                     "99999999999999999999", "1000000000", "1000000001", "a b"]
        var parsed = 0, rejected = 0
        for _ in 0..<50_000 {
            let n = Int.random(in: 0...8, using: &rng)
            let line = (0..<n).map { _ in words.randomElement(using: &rng)! }.joined(separator: " ")
            do {
                let m = try LineMessage(parsing: line)
                parsed += 1
                #expect(try LineMessage(parsing: m.line) == m)
                #expect(m.line == line || line.contains("2.50"))  // the only non-canonical accepted form here
            } catch {
                rejected += 1
                #expect(!error.code.isEmpty)
            }
        }
        #expect(parsed > 100 && rejected > 40_000)
        // Raw bytes, including invalid UTF-8 and controls.
        for _ in 0..<20_000 {
            let bytes = (0..<Int.random(in: 0...300, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
            _ = try? LineMessage(parsing: String(decoding: bytes, as: UTF8.self))
        }
    }
}

@Suite("Line buffer")
struct LineBufferTests {
    @Test func splitsAcrossChunks() {
        var b = LineBuffer()
        #expect(b.append(Array("SU".utf8)).isEmpty)
        #expect(b.append(Array("B\nPRICE A 1\nPR".utf8)) == ["SUB", "PRICE A 1"])
        #expect(b.pendingCount == 2)
        #expect(b.append(Array("ICE B 2\n\n".utf8)) == ["PRICE B 2", ""])
        #expect(b.pendingCount == 0)
    }

    @Test func overflowPoisons() {
        var b = LineBuffer(limit: 8)
        #expect(b.append(Array("12345678\n".utf8)) == ["12345678"])
        #expect(b.append(Array("ok\n123456789".utf8)) == ["ok"])
        #expect(b.overflowed)
        #expect(b.append(Array("\nSUB\n".utf8)).isEmpty)
    }
}
