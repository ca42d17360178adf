// vigil-bench-sdk-worker: the benchmarks' worker written with the Swift SDK (VigilWorker),
// to measure what a Swift worker's restart costs beside the C one (vigil-bench-worker).
// First thing in main: one "<pid> <CLOCK_REALTIME ns>" line appended to $BENCH_LOG (as
// shared/bench's worker does); then Worker.connect() (which waits for vigil's restore
// frame), READY, and heartbeats until stopped.
//   BENCH_CHECKPOINT_BYTES=N  after READY, checkpoint N bytes on the channel (at most
//                             the frame limit, 16,000), so the next start restores them.
import CShim
import Glibc
import VigilWorker

let started = vigil_realtime_ns()
if let p = getenv("BENCH_LOG"), p.pointee != 0 {
    let line = Array("\(getpid()) \(started)\n".utf8)
    let fd = open(p, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o644)
    if fd < 0 || line.withUnsafeBytes({ write(fd, $0.baseAddress, $0.count) }) != line.count { exit(111) }
    close(fd)
}
let worker = Worker.connect()
if let n = getenv("BENCH_CHECKPOINT_BYTES").flatMap({ Int(String(cString: $0)) }), n > 0 {
    if let restored = worker.restoredState, restored.count != n { exit(113) }
}
worker.ready()
if let n = getenv("BENCH_CHECKPOINT_BYTES").flatMap({ Int(String(cString: $0)) }), n > 0 {
    _ = worker.checkpoint([UInt8](repeating: UInt8(truncatingIfNeeded: worker.incarnation), count: n))
}
while worker.sleep(for: .seconds(1)) {}
