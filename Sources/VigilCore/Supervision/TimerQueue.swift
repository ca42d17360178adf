/// What a core deadline is for. Each is checked against the node's current state when it
/// fires, so a deadline that no longer applies (the child became READY, exited, was
/// restarted) is simply dropped: nothing has to be cancelled.
enum TimerPurpose: Hashable, Sendable {
    case readyTimeout(NodeID, incarnation: UInt64)
    case shutdownTimeout(NodeID, incarnation: UInt64)
    case backoff(NodeID)
    case watchdog(NodeID, incarnation: UInt64)
    case guardianTimeout(UInt64)
    /// A forecast's horizon (see SupervisionTree+Prediction).
    case predictionHorizon(UInt64)
}

/// A binary min-heap of deadlines: O(log n) per timer however many children the tree has.
struct TimerQueue: Sendable {
    private struct Entry: Sendable {
        var deadline: Instant
        var sequence: UInt64
        var purpose: TimerPurpose
        func precedes(_ o: Entry) -> Bool {
            deadline != o.deadline ? deadline < o.deadline : sequence < o.sequence
        }
    }

    private var heap: [Entry] = []
    private var sequence: UInt64 = 0

    var count: Int { heap.count }
    var earliest: Instant? { heap.first?.deadline }

    mutating func schedule(_ purpose: TimerPurpose, at deadline: Instant) {
        sequence += 1
        heap.append(Entry(deadline: deadline, sequence: sequence, purpose: purpose))
        var i = heap.count - 1
        while i > 0 {
            let parent = (i - 1) / 2
            guard heap[i].precedes(heap[parent]) else { break }
            heap.swapAt(i, parent)
            i = parent
        }
    }

    /// Removes and returns the earliest timer due at or before `now`, with when it was due.
    mutating func popDue(at now: Instant) -> (purpose: TimerPurpose, deadline: Instant)? {
        guard let first = heap.first, first.deadline <= now else { return nil }
        let last = heap.removeLast()
        if !heap.isEmpty {
            heap[0] = last
            var i = 0
            while true {
                let l = 2 * i + 1, r = l + 1
                var m = i
                if l < heap.count && heap[l].precedes(heap[m]) { m = l }
                if r < heap.count && heap[r].precedes(heap[m]) { m = r }
                if m == i { break }
                heap.swapAt(i, m)
                i = m
            }
        }
        return (first.purpose, first.deadline)
    }
}
