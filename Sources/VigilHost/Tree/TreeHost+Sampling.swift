import CShim
import Glibc
import VigilCore
import VigilWire

extension TreeHost {
    var hasPredictor: Bool {
        tree.nodeIDs.contains { tree.workerSpec(of: $0)?.role == .predictor }
    }

    /// Whether vigil samples at all: for a predictor, or to enforce memory limits.
    var needsSampling: Bool { hasPredictor || hasMemoryLimits }

    /// Reads RSS and CPU time of every live worker from /proc, enforces memory limits, and
    /// sends one sample per worker to each READY worker with role `predictor`.
    func sampleWorkers() {
        let predictors = live.keys.filter { tree.workerSpec(of: $0)?.role == .predictor && tree.isReady($0) }
        let interval = UInt64(configuration.topology.settings.sampleInterval.nanoseconds / 1000)
        let ticksPerSecond = UInt64(max(sysconf(Int32(_SC_CLK_TCK)), 1))
        for (id, var child) in live {
            guard let usage = ProcUsage.read(pid: child.processPID) else { continue }
            let cpuDelta = child.lastCPUTicks.map { usage.cpuTicks &- $0 } ?? 0
            let jitter = UInt64(max(child.heartbeatJitter, 0) / 1000)
            child.lastCPUTicks = usage.cpuTicks
            child.heartbeatJitter = 0
            live[id] = child
            let limitKiB = (tree.workerSpec(of: id)?.memoryLimit ?? 0) / 1024
            let sample = WorkerSample(worker: tree.name(of: id), pid: child.processPID, rssKiB: usage.rssKiB,
                                      cpuMicros: cpuDelta * 1_000_000 / ticksPerSecond, intervalMicros: interval,
                                      restarts: UInt32(clamping: tree.restarts(of: id)),
                                      memoryLimitKiB: limitKiB, heartbeatJitterMicros: jitter)
            for p in predictors { send(.sample(sample), to: p) }
            predictorSamplesSent += predictors.count
            enforceMemoryLimit(id, child, rssKiB: usage.rssKiB)
        }
    }
}

/// Resource use of one process from /proc/PID/stat and /proc/PID/statm.
struct ProcUsage {
    var cpuTicks: UInt64
    var rssKiB: UInt64

    static func read(pid: Int32) -> ProcUsage? {
        guard let stat = ProcStat.read(pid: pid), let statm = readSmallFile("/proc/\(pid)/statm") else { return nil }
        let pages = statm.split(separator: " ")
        guard pages.count > 1, let resident = UInt64(pages[1]) else { return nil }
        let pageKiB = UInt64(max(sysconf(Int32(_SC_PAGESIZE)), 4096)) / 1024
        return ProcUsage(cpuTicks: stat.cpuTicks, rssKiB: resident * pageKiB)
    }
}

/// The contents of a small file (under 4 KiB, as /proc stat files are), or nil.
func readSmallFile(_ path: String) -> String? {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    var buffer = [UInt8](repeating: 0, count: 4096)
    let n = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
    guard n > 0 else { return nil }
    return String(decoding: buffer[0..<n], as: UTF8.self)
}
