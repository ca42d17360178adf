import Testing
@testable import Trading

@Suite("Seeded random walk")
struct RandomWalkTests {
    @Test("SplitMix64 reference values")
    func splitMix() {
        var g = SplitMix64(seed: 0)
        #expect(g.next() == 0xE220_A839_7B1D_CDAF)
        #expect(g.next() == 0x6E78_9E6A_A1B9_65F4)
    }

    @Test("same seed, same path; other seed, other path")
    func deterministic() throws {
        var a = try RandomWalk(start: Price(units: 100), seed: 1)
        var b = try RandomWalk(start: Price(units: 100), seed: 1)
        var c = try RandomWalk(start: Price(units: 100), seed: 2)
        let pa = (0..<200).map { _ in a.step() }, pb = (0..<200).map { _ in b.step() }, pc = (0..<200).map { _ in c.step() }
        #expect(pa == pb)
        #expect(pa != pc)
    }

    @Test("steps stay within the bound, on ticks, above zero")
    func bounds() throws {
        let tick = Price(micros: 10_000)
        var w = try RandomWalk(start: Price(parsing: "0.05")!, seed: 3, maxStepBasisPoints: 1000, tickSize: tick)
        var previous = w.price
        var moves = 0
        for _ in 0..<20_000 {
            let p = w.step()
            #expect(p.micros % tick.micros == 0)
            #expect(p.micros >= tick.micros)
            let limit = previous.micros * 1000 / 10_000 + tick.micros  // bps bound plus rounding
            #expect(abs(p.micros - previous.micros) <= limit)
            if p != previous { moves += 1 }
            previous = p
        }
        #expect(moves > 100)
    }

    @Test("a zero step never moves; the start is rounded to a tick")
    func zeroStep() throws {
        var w = try RandomWalk(start: Price(parsing: "100.006")!, seed: 9, maxStepBasisPoints: 0)
        #expect(w.price == Price(parsing: "100.01"))
        for _ in 0..<100 { #expect(w.step() == Price(parsing: "100.01")) }
    }

    @Test func configuration() {
        #expect(throws: RandomWalk.ConfigurationError.nonPositiveStart) { try RandomWalk(start: .zero, seed: 0) }
        #expect(throws: RandomWalk.ConfigurationError.badStep(-1)) { try RandomWalk(start: Price(units: 1), seed: 0, maxStepBasisPoints: -1) }
        #expect(throws: RandomWalk.ConfigurationError.badTick(0)) { try RandomWalk(start: Price(units: 1), seed: 0, tickSize: .zero) }
    }
}
