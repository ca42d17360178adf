// The gateway's use of vigil's channel beyond READY/status: notices in, reports out.
import VigilWorker

/// Calls `body(key, value)` for every notice from vigil (on the SDK's channel thread).
func listenForNotices(_ body: @escaping @Sendable (String, String) -> Void) {
    worker.onNotice(body)
}

/// A line for vigil's journal (and the log).
func report(_ key: String, _ text: String) {
    worker.log("\(key): \(text)")
    worker.report(key: key, text: text)
}
