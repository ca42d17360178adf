import Testing
@testable import Trading

/// The obvious implementation, recomputing both averages from scratch every time.
struct NaiveCrossover {
    let s: Int, l: Int
    var prices: [Int64] = []
    var relation = 0
    mutating func update(_ p: Int64) -> Signal? {
        prices.append(p)
        guard prices.count >= l else { return nil }
        let ss = prices.suffix(s).reduce(Int128(0)) { $0 + Int128($1) }
        let ls = prices.suffix(l).reduce(Int128(0)) { $0 + Int128($1) }
        let a = ss * Int128(l), b = ls * Int128(s)
        let now = a > b ? 1 : a < b ? -1 : 0
        if now == 0 { return nil }
        defer { relation = now }
        if relation == 0 || relation == now { return nil }
        return now > 0 ? .buy : .sell
    }
}

@Suite("Moving-average crossover")
struct SignalTests {
    func prices(_ xs: [Int64]) -> [Price] { xs.map { Price(units: $0) } }

    @Test func configuration() {
        #expect(throws: MovingAverageCrossover.ConfigurationError.windows(short: 3, long: 3)) { try MovingAverageCrossover(shortWindow: 3, longWindow: 3) }
        #expect(throws: MovingAverageCrossover.ConfigurationError.windows(short: 0, long: 3)) { try MovingAverageCrossover(shortWindow: 0, longWindow: 3) }
        #expect(throws: MovingAverageCrossover.ConfigurationError.windows(short: 5, long: 2)) { try MovingAverageCrossover(shortWindow: 5, longWindow: 2) }
    }

    @Test("silent until warm, silent on flat prices")
    func warmAndFlat() throws {
        var m = try MovingAverageCrossover(shortWindow: 2, longWindow: 4)
        for p in prices([10, 10, 10]) { #expect(m.update(p) == nil); #expect(!m.isWarm) }
        for _ in 0..<100 { #expect(m.update(Price(units: 10)) == nil) }
        #expect(m.isWarm)
        #expect(m.averages?.short == Price(units: 10) && m.averages?.long == Price(units: 10))
    }

    @Test("the first warm window establishes the side; a later cross signals")
    func crossings() throws {
        var m = try MovingAverageCrossover(shortWindow: 2, longWindow: 4)
        // Falling: short below long, no signal (nothing crossed yet).
        let out = prices([10, 9, 8, 7, 6, 9, 12, 12, 5, 3]).map { m.update($0) }
        #expect(out == [nil, nil, nil, nil, nil, nil, .buy, nil, .sell, nil])
    }

    @Test("touching is not crossing; crossing after touching is")
    func touching() throws {
        var m = try MovingAverageCrossover(shortWindow: 1, longWindow: 2)
        let out = prices([5, 4, 4, 4, 5, 5, 3]).map { m.update($0) }
        // [5,4]: short 4 < long 4.5 (below). [4,4]: equal. [4,4] equal. [4,5]: above -> buy.
        #expect(out == [nil, nil, nil, nil, .buy, nil, .sell])
    }

    @Test("matches a naive implementation on random walks")
    func againstNaive() throws {
        var rng = SplitMix64(seed: 99)
        for _ in 0..<60 {
            let l = Int.random(in: 2...30, using: &rng), s = Int.random(in: 1..<l, using: &rng)
            var fast = try MovingAverageCrossover(shortWindow: s, longWindow: l)
            var naive = NaiveCrossover(s: s, l: l)
            var walk = try RandomWalk(start: Price(units: 100), seed: rng.next(), maxStepBasisPoints: 50)
            var signals = 0
            for _ in 0..<500 {
                let p = walk.step()
                let a = fast.update(p), b = naive.update(p.micros)
                #expect(a == b)
                if a != nil { signals += 1 }
            }
            #expect(signals > 0)
        }
    }

    @Test("signals alternate")
    func alternate() throws {
        var m = try MovingAverageCrossover(shortWindow: 3, longWindow: 8)
        var walk = try RandomWalk(start: Price(units: 1000), seed: 5, maxStepBasisPoints: 100)
        var last: Signal?
        for _ in 0..<5000 {
            if let s = m.update(walk.step()) {
                #expect(s != last)
                last = s
            }
        }
        #expect(last != nil)
    }
}
