/// An invariant the core broke: everything needed to reproduce and read it.
public struct Violation: Error, Sendable, CustomStringConvertible {
    public var seed: UInt64
    /// The number of the event after which the check failed (1 is the first event).
    public var step: Int
    /// Which invariant: `single-instance`, `intensity`, `start-order`, `stop-order`, ...
    public var invariant: String
    public var detail: String

    public var description: String {
        "seed \(seed), step \(step): invariant \(invariant) broken: \(detail)"
    }
}

/// Counts of what happened, printed with the progress and at the end.
public struct SimulationStats: Sendable, Equatable {
    public var events = 0
    public var spawns = 0
    public var exits = 0
    public var restartDecisions = 0
    public var escalations = 0
    public var planTerminationsChecked = 0
    public var questions = 0
    public var verdicts = 0
    public var commands = 0
    public var safeModeEntries = 0
    public var shutdowns = 0
    public var treeFailures = 0
    /// Trees run (a new one starts after each shutdown or failure of the last).
    public var epochs = 0
}

/// FNV-1a over a compact spelling of every event and effect: two runs of one seed must
/// end with the same digest, in any process (a Dictionary's order would show up here).
struct Digest {
    private(set) var value: UInt64 = 0xcbf2_9ce4_8422_2325

    mutating func add(_ x: UInt64) {
        var v = x
        for _ in 0..<8 {
            value = (value ^ (v & 0xFF)) &* 0x100_0000_01b3
            v >>= 8
        }
    }

    mutating func add(_ s: String) {
        for b in s.utf8 { value = (value ^ UInt64(b)) &* 0x100_0000_01b3 }
    }
}
