/// A moving-average crossover signal.

/// What a signal asks for.
public enum Signal: Hashable, Sendable {
    case buy, sell

    public var side: Side { self == .buy ? .buy : .sell }
}

/// Simple moving averages over the last `shortWindow` and `longWindow` prices. When the
/// short average crosses above the long one the signal is `.buy`; below, `.sell`. Nothing
/// is emitted until the long window is full; the first full window only establishes which
/// side the short average is on. Touching (equal averages) is not a crossing: the signal
/// fires when the short average moves strictly to the other side.
public struct MovingAverageCrossover: Sendable {
    public let shortWindow: Int
    public let longWindow: Int

    private var ring: [Int64]
    private var next = 0
    private var count = 0
    private var shortSum: Int128 = 0
    private var longSum: Int128 = 0
    /// +1 short above long, -1 below, 0 unknown or never off the line.
    private var relation = 0

    public enum ConfigurationError: Error, Hashable, Sendable { case windows(short: Int, long: Int) }

    /// Requires 1 <= short < long <= 100_000.
    public init(shortWindow: Int, longWindow: Int) throws(ConfigurationError) {
        guard shortWindow >= 1, shortWindow < longWindow, longWindow <= 100_000 else {
            throw .windows(short: shortWindow, long: longWindow)
        }
        self.shortWindow = shortWindow
        self.longWindow = longWindow
        self.ring = Array(repeating: 0, count: longWindow)
    }

    /// Whether the long window is full.
    public var isWarm: Bool { count >= longWindow }

    /// The current averages (rounded toward zero), once warm.
    public var averages: (short: Price, long: Price)? {
        guard isWarm else { return nil }
        return (Price(micros: Int64(shortSum / Int128(shortWindow))), Price(micros: Int64(longSum / Int128(longWindow))))
    }

    /// The prices in the window, oldest first (at most `longWindow`): with `relation`, the
    /// whole state, so a checkpoint can carry the indicator across restarts.
    public var window: [Price] {
        (0..<count).map { k in Price(micros: ring[(next - count + k + longWindow) % longWindow]) }
    }

    /// +1 when the short average was last above the long one, -1 below, 0 not yet known.
    public var lastRelation: Int { relation }

    /// An indicator exactly as `window` and `lastRelation` describe it. Throws on bad
    /// windows; returns nil if the window is longer than `longWindow` or the relation is
    /// not -1, 0 or 1.
    public init?(shortWindow: Int, longWindow: Int, window: [Price], lastRelation: Int) throws(ConfigurationError) {
        try self.init(shortWindow: shortWindow, longWindow: longWindow)
        guard window.count <= longWindow, (-1...1).contains(lastRelation) else { return nil }
        for p in window { _ = update(p) }
        relation = lastRelation
    }

    /// Feeds one price; returns a signal when the averages cross.
    public mutating func update(_ price: Price) -> Signal? {
        let v = price.micros
        // The value leaving the short window is `shortWindow` places back.
        if count >= shortWindow {
            shortSum -= Int128(ring[(next - shortWindow + longWindow) % longWindow])
        }
        if count >= longWindow { longSum -= Int128(ring[next]) }
        ring[next] = v
        next = (next + 1) % longWindow
        shortSum += Int128(v)
        longSum += Int128(v)
        count = min(count + 1, longWindow)
        guard isWarm else { return nil }
        // Compare shortSum/short with longSum/long without division.
        let lhs = shortSum * Int128(longWindow), rhs = longSum * Int128(shortWindow)
        let now = lhs > rhs ? 1 : lhs < rhs ? -1 : 0
        guard now != 0 else { return nil }
        defer { relation = now }
        if relation == 0 || relation == now { return nil }
        return now > 0 ? .buy : .sell
    }
}
