// vigil-sdk-test-worker: a well-behaved worker written on the VigilWorker SDK, for the
// integration tests of what the SDK does for a worker (re-adoption above all): it counts
// ticks, and on every tick writes "tick <n>" to stdout, sets its status to
// "tick=<n> restored=<r>" and checkpoints <n>, so a test can see its channel, its output
// and its state all alive.
//
//   SDK_TICK_MS=N          tick every N ms (default 100)
//   TW_LEAK_KIB_PER_S=N    leak N KiB of resident memory per second, steadily (touched
//                          pages, never freed): the predictor's leak to find
//   TW_NOISE_KIB=N         keep a block of a random size in 0...N KiB resident, a new size
//                          every tick: RSS that is noisy but flat
import Glibc
import Synchronization
import VigilWorker

/// Resident memory on purpose: anonymous mappings, every page written so it counts in RSS.
struct Ballast {
    var leaked: [UnsafeMutableRawPointer] = []
    var leakedKiB = 0
    var noise: (UnsafeMutableRawPointer, Int)?
    var random: UInt64 = UInt64(getpid()) &* 0x9E37_79B9_7F4A_7C15 | 1

    static func resident(kib: Int) -> UnsafeMutableRawPointer? {
        guard kib > 0, let p = mmap(nil, kib * 1024, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0),
              p != MAP_FAILED else { return nil }
        memset(p, 0xA5, kib * 1024)
        return p
    }

    /// Leaks `kib` more.
    mutating func leak(kib: Int) {
        guard let p = Ballast.resident(kib: kib) else { return }
        leaked.append(p)
        leakedKiB += kib
    }

    /// Replaces the noise block with one of a random size up to `max` KiB.
    mutating func reshuffle(max: Int) {
        if let (p, kib) = noise { munmap(p, kib * 1024) }
        random ^= random << 13
        random ^= random >> 7
        random ^= random << 17
        let kib = Int(random % UInt64(max + 1))
        noise = Ballast.resident(kib: kib).map { ($0, kib) }
    }
}

/// One line to stdout with one write(2): no stdio buffer to lose when the worker is killed.
func say(_ line: String) {
    let bytes = Array((line + "\n").utf8)
    _ = bytes.withUnsafeBytes { write(1, $0.baseAddress, $0.count) }
}

let worker = Worker.connect()
let tick = Int64(Worker.environment("SDK_TICK_MS").flatMap { Int64($0) } ?? 100)
let restored = worker.restoredState.flatMap { Int(String(decoding: $0, as: UTF8.self)) } ?? 0
var count = restored
/// The count as the channel thread sees it, for a planned handoff's fresh checkpoint.
let shared = Atomic<Int>(restored)
worker.onCheckpointRequest { Array(String(shared.load(ordering: .relaxed)).utf8) }
let leakRate = Worker.environment("TW_LEAK_KIB_PER_S").flatMap { Int($0) } ?? 0
let noiseKiB = Worker.environment("TW_NOISE_KIB").flatMap { Int($0) } ?? 0
var ballast = Ballast()
var owed = 0.0
worker.ready()
while worker.sleep(for: .milliseconds(tick)) {
    count += 1
    shared.store(count, ordering: .relaxed)
    if leakRate > 0 {
        owed += Double(leakRate) * Double(tick) / 1000
        let whole = Int(owed)
        owed -= Double(whole)
        ballast.leak(kib: whole)
    }
    if noiseKiB > 0 { ballast.reshuffle(max: noiseKiB) }
    say("tick \(count)")
    worker.status("tick=\(count) restored=\(restored)" + (leakRate > 0 ? " leaked=\(ballast.leakedKiB)KiB" : ""))
    worker.checkpoint(Array(String(count).utf8))
}
