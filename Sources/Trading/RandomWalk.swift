/// A seeded, deterministic random walk: the paper venue's price source.

/// SplitMix64: a tiny, fast, well-distributed generator; the same seed gives the same
/// sequence on every machine, so a paper session can be replayed.
public struct SplitMix64: RandomNumberGenerator, Sendable {
    private var state: UInt64

    public init(seed: UInt64) { self.state = seed }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// Moves a price by a uniformly random number of basis points in
/// `-maxStepBasisPoints...maxStepBasisPoints` each step, rounded to `tickSize`, never below
/// one tick.
public struct RandomWalk: Sendable {
    public private(set) var price: Price
    public let maxStepBasisPoints: Int64
    public let tickSize: Price
    private var rng: SplitMix64

    public enum ConfigurationError: Error, Hashable, Sendable {
        case nonPositiveStart, badStep(Int64), badTick(Int64)
    }

    public init(start: Price, seed: UInt64, maxStepBasisPoints: Int64 = 10,
                tickSize: Price = Price(micros: 10_000)) throws(ConfigurationError) {
        guard start.micros > 0 else { throw .nonPositiveStart }
        guard (0...10_000).contains(maxStepBasisPoints) else { throw .badStep(maxStepBasisPoints) }
        guard tickSize.micros > 0 else { throw .badTick(tickSize.micros) }
        self.maxStepBasisPoints = maxStepBasisPoints
        self.tickSize = tickSize
        self.rng = SplitMix64(seed: seed)
        self.price = RandomWalk.round(start, tick: tickSize)
    }

    /// Advances one step and returns the new price.
    public mutating func step() -> Price {
        let bps = Int64.random(in: -maxStepBasisPoints...maxStepBasisPoints, using: &rng)
        let delta = Int128(price.micros) * Int128(bps) / 10_000
        let moved = Price(micros: Int64(clamping: Int128(price.micros) + delta))
        price = RandomWalk.round(moved, tick: tickSize)
        return price
    }

    /// Rounds to the nearest tick (halves up), and to at least one tick.
    static func round(_ p: Price, tick: Price) -> Price {
        let t = tick.micros
        let r = (p.micros.saturatingAdd(t / 2) / t).saturatingMultiply(t)
        return Price(micros: max(r, t))
    }
}
