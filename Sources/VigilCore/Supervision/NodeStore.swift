/// The tree's nodes, in start order, with an index of those `reconcile` (run after every
/// event) must look at, so that it visits only nodes that could start instead of all of
/// them. Measured by the deterministic simulation: scanning every node cost more than
/// everything else an event does (3,500 events/s at 5,000 children), and while a large
/// tree starts, thousands of children wait for their dependencies' READY; re-checking each
/// of them after every event made starting 100,000 children quadratic.
///
/// - Idle: bit i is set exactly when node i's state is `idle`. Every change goes through
///   the subscript's `_modify`, which compares the state before and after, so no code path
///   can set a node idle without the index noticing. Reads go through `_read` and never
///   copy a `Node`.
/// - Parked: an idle node that cannot start, because its supervisor is not active (not
///   running, or terminating children) or a dependency is not READY, is parked on that
///   node and skipped until something the answer depends on changes: the state,
///   `finished`, `held`, `lastExit` or whether a plan runs, of that node or of any node
///   below it (`isReady` and the supervisor check read nothing else). `_modify` notes
///   every such change; `wakeWaiters` then unparks whoever waits on the changed node or
///   one of its ancestors. A wake-up may be spurious (the node is checked again and parked
///   again), never missed.
struct NodeStore: RandomAccessCollection, Sendable {
    private var storage: [Node] = []
    /// Bit i of word i / 64 is set exactly when node i is idle.
    private var idleBits: [UInt64] = []
    /// Bit i set: node i waits for its supervisor or a dependency (only while idle).
    private var parkedBits: [UInt64] = []
    /// Parked nodes by the node they wait for.
    private var waiters: [Int: [Int]] = [:]
    /// Nodes whose readiness inputs changed since `wakeWaiters` last ran.
    private var changed: [Int] = []

    var startIndex: Int { 0 }
    var endIndex: Int { storage.count }

    subscript(i: Int) -> Node {
        _read { yield storage[i] }
        _modify {
            let before = (storage[i].state, storage[i].finished, storage[i].held, storage[i].lastExit, storage[i].plan == nil)
            yield &storage[i]
            guard before.0 != storage[i].state || before.1 != storage[i].finished || before.2 != storage[i].held
                    || before.3 != storage[i].lastExit || before.4 != (storage[i].plan == nil) else { return }
            if !waiters.isEmpty { changed.append(i) }
            let isIdle = storage[i].state == .idle
            if (before.0 == .idle) != isIdle {
                Self.set(&idleBits, i, isIdle)
                Self.set(&parkedBits, i, false)  // idle again: checked afresh
            }
        }
    }

    mutating func append(_ node: Node) {
        storage.append(node)
        if idleBits.count * 64 < storage.count {
            idleBits.append(0)
            parkedBits.append(0)
        }
        if node.state == .idle { Self.set(&idleBits, storage.count - 1, true) }
    }

    /// The first idle, unparked node at or after `i`, in start order.
    func nextStartable(from i: Int) -> Int? {
        var word = i >> 6
        guard word < idleBits.count else { return nil }
        var bits = idleBits[word] & ~parkedBits[word] & (~0 << UInt64(i & 63))
        while true {
            if bits != 0 { return word << 6 | bits.trailingZeroBitCount }
            word += 1
            guard word < idleBits.count else { return nil }
            bits = idleBits[word] & ~parkedBits[word]
        }
    }

    /// Skips idle node `i` until `dependency` (or something below it) changes.
    mutating func park(_ i: Int, on dependency: Int) {
        Self.set(&parkedBits, i, true)
        waiters[dependency, default: []].append(i)
    }

    /// Unparks the nodes waiting on a node that changed, or on one of its ancestors.
    mutating func wakeWaiters() {
        guard !changed.isEmpty else { return }
        let nodes = changed
        changed.removeAll(keepingCapacity: true)
        guard !waiters.isEmpty else { return }
        for c in nodes {
            var a: Int? = c
            while let x = a {
                if let ws = waiters.removeValue(forKey: x) {
                    for w in ws { Self.set(&parkedBits, w, false) }
                }
                a = storage[x].parent?.index
            }
        }
    }

    /// Every idle node, in start order (for tests: must equal the nodes whose state is idle).
    var idleIndices: [Int] { indices(of: idleBits) }
    /// Every parked node, in start order (for tests: always idle ones).
    var parkedIndices: [Int] { indices(of: parkedBits) }

    private func indices(of bits: [UInt64]) -> [Int] {
        var out: [Int] = []
        for (w, word) in bits.enumerated() {
            var b = word
            while b != 0 {
                out.append(w << 6 | b.trailingZeroBitCount)
                b &= b - 1
            }
        }
        return out
    }

    private static func set(_ bits: inout [UInt64], _ i: Int, _ on: Bool) {
        let mask: UInt64 = 1 << UInt64(i & 63)
        if on { bits[i >> 6] |= mask } else { bits[i >> 6] &= ~mask }
    }
}
