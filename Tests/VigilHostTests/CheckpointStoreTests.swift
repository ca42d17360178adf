#if canImport(Glibc)
import Glibc
#endif
import CShim
import Synchronization
import Testing
@testable import VigilHost

/// A fresh private directory under /tmp.
private func checkpointTempDir() -> String {
    var template = Array("/tmp/vigil-checkpoint-test-XXXXXX".utf8CString)
    let p = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
    return String(cString: p!)
}

private func removeTree(_ path: String) {
    _ = system("rm -rf '\(path)'")
}

private func fileMode(_ path: String) -> mode_t? {
    var st = stat()
    return stat(path, &st) == 0 ? st.st_mode & 0o777 : nil
}

/// Runs `body` on a thread of its own (real concurrency, whatever the test pool's size).
private func startThread(_ body: @escaping @Sendable () -> Void) -> pthread_t {
    final class Box: @unchecked Sendable { let body: @Sendable () -> Void; init(_ b: @escaping @Sendable () -> Void) { body = b } }
    var thread = pthread_t()
    let rc = pthread_create(&thread, nil, { raw in
        Unmanaged<Box>.fromOpaque(raw!).takeRetainedValue().body()
        return nil
    }, Unmanaged.passRetained(Box(body)).toOpaque())
    precondition(rc == 0, "pthread_create: \(rc)")
    return thread
}

/// `count` bytes that encode `seed` everywhere, so a torn read would show.
private func pattern(_ seed: UInt64, count: Int) -> [UInt8] {
    (0..<count).map { UInt8(truncatingIfNeeded: seed &+ UInt64($0 % 7)) }
}

@Suite("Checkpoint store")
struct CheckpointStoreTests {
    @Test func saveLastOverwriteRemove() throws {
        let dir = checkpointTempDir()
        defer { removeTree(dir) }
        let path = dir + "/nested/state/checkpoints.db"
        let store = try CheckpointStore(path: path)
        #expect(fileMode(path) == 0o600)
        #expect(fileMode(dir + "/nested/state") == 0o700)

        #expect(try store.last(node: "strategy-runner.1") == nil)
        try store.save(node: "strategy-runner.1", incarnation: 1, state: [1, 2, 3], at: 1_000)
        try store.save(node: "strategy-runner.2", incarnation: 4, state: [9], at: 1_500)
        var got = try #require(try store.last(node: "strategy-runner.1"))
        #expect(got.state == [1, 2, 3] && got.incarnation == 1 && got.wallNanoseconds == 1_000)

        // Only the last checkpoint per node is kept.
        try store.save(node: "strategy-runner.1", incarnation: 2, state: [4, 5], at: 2_000)
        got = try #require(try store.last(node: "strategy-runner.1"))
        #expect(got.state == [4, 5] && got.incarnation == 2 && got.wallNanoseconds == 2_000)
        #expect(try store.nodes() == ["strategy-runner.1", "strategy-runner.2"])

        try store.remove(node: "strategy-runner.1")
        #expect(try store.last(node: "strategy-runner.1") == nil)
        try store.remove(node: "strategy-runner.1")  // absent: not an error
        #expect(try store.last(node: "strategy-runner.2")?.state == [9])
    }

    @Test func emptyStateIsACheckpointNotNone() throws {
        let dir = checkpointTempDir()
        defer { removeTree(dir) }
        let store = try CheckpointStore(path: dir + "/checkpoints.db")
        try store.save(node: "w", incarnation: 3, state: [], at: 5)
        let got = try #require(try store.last(node: "w"))
        #expect(got.state == [] && got.incarnation == 3)
    }

    @Test func extremeValuesSurvive() throws {
        let dir = checkpointTempDir()
        defer { removeTree(dir) }
        let store = try CheckpointStore(path: dir + "/checkpoints.db")
        try store.save(node: "ünï ✓'; DROP TABLE checkpoints; --", incarnation: .max, state: [0, 0, 0xFF, 0], at: .min)
        let got = try #require(try store.last(node: "ünï ✓'; DROP TABLE checkpoints; --"))
        #expect(got.state == [0, 0, 0xFF, 0] && got.incarnation == .max && got.wallNanoseconds == .min)
    }

    @Test func durableAcrossReopen() throws {
        let dir = checkpointTempDir()
        defer { removeTree(dir) }
        let path = dir + "/checkpoints.db"
        do {
            let store = try CheckpointStore(path: path)
            try store.save(node: "a", incarnation: 7, state: pattern(7, count: 300), at: 70)
            try store.save(node: "b", incarnation: 1, state: [1], at: 10)
            try store.remove(node: "b")
        }
        let again = try CheckpointStore(path: path)
        let got = try #require(try again.last(node: "a"))
        #expect(got.state == pattern(7, count: 300) && got.incarnation == 7 && got.wallNanoseconds == 70)
        #expect(try again.last(node: "b") == nil)
        again.close()
        #expect(throws: CheckpointStoreError.self) { try again.last(node: "a") }
    }

    /// The largest state a checkpoint frame can carry, and then some.
    @Test(arguments: [15 * 1024, 16 * 1024 - 1, 64 * 1024])
    func bigBlobs(_ size: Int) throws {
        let dir = checkpointTempDir()
        defer { removeTree(dir) }
        let path = dir + "/checkpoints.db"
        let blob = (0..<size).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) }
        do {
            let store = try CheckpointStore(path: path)
            try store.save(node: "big", incarnation: 1, state: [1], at: 1)
            try store.save(node: "big", incarnation: 2, state: blob, at: 2)
            #expect(try store.last(node: "big")?.state == blob)
        }
        #expect(try CheckpointStore(path: path).last(node: "big")?.state == blob)
    }

    @Test func refusesAFileThatIsNotADatabase() throws {
        let dir = checkpointTempDir()
        defer { removeTree(dir) }
        let path = dir + "/checkpoints.db"
        _ = system("head -c 8192 /dev/urandom > '\(path)'")
        #expect(throws: CheckpointStoreError.self) { try CheckpointStore(path: path) }
    }

    /// A second connection (another thread, or a CLI) reads while vigil writes: every read
    /// sees one whole checkpoint, never a torn one, and never an older one than before.
    @Test func concurrentReaderSeesWholeCheckpoints() throws {
        let dir = checkpointTempDir()
        defer { removeTree(dir) }
        let path = dir + "/checkpoints.db"
        let writer = try CheckpointStore(path: path)
        try writer.save(node: "s", incarnation: 0, state: pattern(0, count: 4096), at: 0)
        _ = try CheckpointStore(path: path)  // the schema exists before the reader starts

        let done = Atomic<Bool>(false)
        let reads = Atomic<Int>(0)
        let problems = Mutex<[String]>([])
        let reader = startThread {
            do {
                let store = try CheckpointStore(path: path)
                var seen: UInt64 = 0
                while !done.load(ordering: .acquiring) {
                    guard let got = try store.last(node: "s") else {
                        problems.withLock { $0.append("checkpoint vanished") }
                        return
                    }
                    if got.state != pattern(got.incarnation, count: 4096) || got.wallNanoseconds != Int64(got.incarnation) {
                        problems.withLock { $0.append("torn checkpoint at incarnation \(got.incarnation)") }
                    }
                    if got.incarnation < seen { problems.withLock { $0.append("went back from \(seen) to \(got.incarnation)") } }
                    seen = got.incarnation
                    reads.add(1, ordering: .relaxed)
                }
            } catch {
                problems.withLock { $0.append("\(error)") }
            }
        }
        for i in UInt64(1)...2_000 {
            try writer.save(node: "s", incarnation: i, state: pattern(i, count: 4096), at: Int64(i))
        }
        done.store(true, ordering: .releasing)
        pthread_join(reader, nil)
        #expect(problems.withLock { $0 } == [])
        #expect(reads.load(ordering: .relaxed) > 0)
        #expect(try writer.last(node: "s")?.incarnation == 2_000)
    }

    /// The cost of one save of a 1 KiB state on vigil's event loop (printed, not asserted:
    /// it depends on the disk).
    @Test func measureSaveOf1KiB() throws {
        let dir = checkpointTempDir()
        defer { removeTree(dir) }
        let store = try CheckpointStore(path: dir + "/checkpoints.db")
        let count = 10_000
        var costs: [Int64] = []
        costs.reserveCapacity(count)
        let states = (0..<8).map { pattern(UInt64($0), count: 1024) }
        let start = vigil_monotonic_ns()
        for i in 0..<count {
            let t0 = vigil_monotonic_ns()
            try store.save(node: "strategy-runner.\(i % 3 + 1)", incarnation: UInt64(i), state: states[i % 8], at: Int64(i))
            costs.append(vigil_monotonic_ns() - t0)
        }
        let total = vigil_monotonic_ns() - start
        costs.sort()
        func us(_ ns: Int64) -> String {
            let tenths = (ns + 50) / 100
            return "\(tenths / 10).\(tenths % 10) us"
        }
        print("CheckpointStore.save of 1 KiB x \(count): total \(total / 1_000_000) ms, mean \(us(total / Int64(count))), p50 \(us(costs[count / 2])), p99 \(us(costs[count * 99 / 100])), max \(us(costs[count - 1]))")
        #expect(try store.last(node: "strategy-runner.1") != nil)
    }
}
