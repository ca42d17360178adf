import Testing
@testable import VigilWorker

/// The SDK's heartbeat instants: aligned on the monotonic clock so a thousand workers'
/// beats reach vigil in one wake-up.
@Suite("Heartbeat schedule")
struct HeartbeatScheduleTests {
    let second: Int64 = 1_000_000_000

    @Test func beatsFallOnMultiplesOfTheInterval() {
        for now in [Int64(12_300_000_000), 12_999_999_999, 13_000_000_001, 47_100_000_000] {
            let next = Worker.nextBeat(after: now, every: second)
            #expect(next % second == 0, "\(now) -> \(next)")
            #expect(next > now)
        }
    }

    @Test func neverSoonerThanHalfAnIntervalAndNeverABurst() {
        // Just before a boundary: the one after it, not one a millisecond away.
        #expect(Worker.nextBeat(after: 12_999_000_000, every: second) == 14_000_000_000)
        // Far behind (the worker was stopped for a minute): one beat, at the next boundary.
        let behind = Worker.nextBeat(after: 75_400_000_000, every: second)
        #expect(behind == 76_000_000_000)
        // Workers started at different times with the same interval beat together.
        let a = Worker.nextBeat(after: Worker.nextBeat(after: 10_100_000_000, every: second), every: second)
        let b = Worker.nextBeat(after: Worker.nextBeat(after: 10_450_000_000, every: second), every: second)
        #expect(a == b)
    }
}
