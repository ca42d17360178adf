import VigilCore

/// The simulation's only source of randomness: a seeded SplitMix64, so that one seed is
/// one run, in any process, on any machine. Nothing in the simulation may iterate a
/// Dictionary or a Set to make a choice (their order changes with every process), and
/// nothing may read a clock: every decision comes from here.
public struct SimulationRandom: RandomNumberGenerator, Sendable {
    private var inner: SplitMix64

    public init(seed: UInt64) { inner = SplitMix64(seed: seed) }

    public mutating func next() -> UInt64 { inner.next() }

    /// Uniform in `0..<n` (n > 0); the modulo bias is far below what matters here.
    public mutating func below(_ n: Int) -> Int { Int(next() % UInt64(n)) }

    /// True with probability `percent` / 100.
    public mutating func chance(_ percent: Int) -> Bool { below(100) < percent }

    /// One element of a non-empty array.
    public mutating func pick<T>(_ items: [T]) -> T { items[below(items.count)] }

    /// A seed for a derived stream (a new tree's jitter), drawn from this one.
    public mutating func derivedSeed() -> UInt64 { next() }
}

/// A set with O(1) insert, remove and uniform random pick, whose order depends only on
/// the operations done (an array, with a position index beside it).
struct PickableSet<Element: Hashable> {
    private(set) var items: [Element] = []
    private var position: [Element: Int] = [:]

    var isEmpty: Bool { items.isEmpty }
    var count: Int { items.count }

    func contains(_ x: Element) -> Bool { position[x] != nil }

    mutating func insert(_ x: Element) {
        guard position[x] == nil else { return }
        position[x] = items.count
        items.append(x)
    }

    mutating func remove(_ x: Element) {
        guard let i = position.removeValue(forKey: x) else { return }
        let last = items.removeLast()
        if i < items.count {
            items[i] = last
            position[last] = i
        }
    }

    func random(using rng: inout SimulationRandom) -> Element? {
        items.isEmpty ? nil : items[rng.below(items.count)]
    }

    mutating func removeAll() {
        items.removeAll()
        position.removeAll()
    }
}
