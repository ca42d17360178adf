// vigil-sdk-test-worker: a well-behaved worker written on the VigilWorker SDK, for the
// integration tests of what the SDK does for a worker (re-adoption above all): it counts
// ticks, and on every tick writes "tick <n>" to stdout, sets its status to
// "tick=<n> restored=<r>" and checkpoints <n>, so a test can see its channel, its output
// and its state all alive.
//
//   SDK_TICK_MS=N   tick every N ms (default 100)
import Glibc
import VigilWorker

/// One line to stdout with one write(2): no stdio buffer to lose when the worker is killed.
func say(_ line: String) {
    let bytes = Array((line + "\n").utf8)
    _ = bytes.withUnsafeBytes { write(1, $0.baseAddress, $0.count) }
}

let worker = Worker.connect()
let tick = Int64(Worker.environment("SDK_TICK_MS").flatMap { Int64($0) } ?? 100)
let restored = worker.restoredState.flatMap { Int(String(decoding: $0, as: UTF8.self)) } ?? 0
var count = restored
worker.ready()
while worker.sleep(for: .milliseconds(tick)) {
    count += 1
    say("tick \(count)")
    worker.status("tick=\(count) restored=\(restored)")
    worker.checkpoint(Array(String(count).utf8))
}
