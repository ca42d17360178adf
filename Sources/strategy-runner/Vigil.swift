// The runner's use of vigil's channel beyond READY/status: checkpoints out, the restored
// checkpoint and notices in, reports out. Kept in one place so the main file reads as the
// strategy.
import VigilWorker

/// The last checkpoint vigil kept for this child, or nil (none, or standalone).
func restoredState() -> [UInt8]? {
    worker.restoredState
}

/// Sends a checkpoint; false if it could not be sent (too large, or standalone).
func sendCheckpoint(_ bytes: [UInt8]) -> Bool {
    worker.checkpoint(bytes)
}

/// Answers vigil's checkpoint requests (a planned handoff) on the SDK's channel thread.
func onCheckpointRequest(_ body: @escaping @Sendable () -> [UInt8]) {
    worker.onCheckpointRequest(body)
}

/// Calls `body(key, value)` for every notice from vigil (on the SDK's channel thread).
func listenForNotices(_ body: @escaping @Sendable (String, String) -> Void) {
    worker.onNotice(body)
}

/// A line for vigil's journal (and the log).
func report(_ key: String, _ text: String) {
    worker.log("\(key): \(text)")
    worker.report(key: key, text: text)
}
