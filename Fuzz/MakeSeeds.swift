// Writes the seed inputs of the frame, notify and state targets into Fuzz/seeds/<target>/
// with the real encoders, so the fuzzers start from well-formed inputs rather than having
// to discover the format. Compiled with Sources/VigilWire by `Scripts/fuzz.sh seeds`; its
// output is committed, so a normal fuzz run does not need it.
#if canImport(Glibc)
import Glibc
#endif

@main
enum MakeSeeds {
    static func main() throws {
        let root = CommandLine.arguments.count > 1 ? CommandLine.arguments[1] : "Fuzz/seeds"
        mkdir(root, 0o755)
        let frames: [Frame] = [
            .ready, .heartbeat, .stopping, .status("ok: 3 fills"), .status("ünïcødé ✓"),
            .sample(WorkerSample(worker: "strategy-runner.2", pid: 4242, rssKiB: 12_345, cpuMicros: 99,
                                 intervalMicros: 5_000_000, restarts: 3)),
            .notice(key: Notice.safeMode, value: "on"), .notice(key: Notice.liquidate, value: "start"),
            .checkpoint([0, 1, 2, 0xFF]), .restore(nil), .restore([1, 2, 3]),
            .verdict(requestID: 1, .allow), .verdict(requestID: 2, .deny(reason: "3 crashes in 10s")),
            .verdict(requestID: 3, .delay(milliseconds: 2_500, reason: "reconnecting")),
            .verdict(requestID: 4, .safeMode(reason: "drawdown")), .verdict(requestID: 5, .liquidate(reason: "x")),
            .guardianOrder(.safeModeOn(reason: "loss limit")), .guardianOrder(.safeModeOff(reason: "")),
            .guardianOrder(.liquidate(reason: "kill switch")),
            .report(key: Notice.liquidationDone, text: "flat"),
            .restartRequest(RestartRequest(id: 7, child: "strategy-runner.1", reason: "signal SIGKILL",
                                           recentRestarts: 2, incarnation: 9)),
            .checkpointRequest, .checkpointRefused(reason: "too large"),
        ]
        for (i, f) in frames.enumerated() { try write(root + "/frame", "seed-\(i)", try f.encoded()) }

        let notifications = [
            "READY=1", "READY=1\nSTATUS=serving 3 clients", "WATCHDOG=1", "STOPPING=1", "RELOADING=1",
            "FDSTORE=1\nFDNAME=listener", "FDSTOREREMOVE=1\nFDNAME=old", "STATUS=warming cache 40%\n",
            "MAINPID=4242\nREADY=1", "BARRIER=1", "EXTEND_TIMEOUT_USEC=5000000", "ERRNO=2\nSTATUS=failed",
        ]
        for (i, n) in notifications.enumerated() { try write(root + "/notify", "seed-\(i)", Array(n.utf8)) }

        // State seeds: an op count, the ops, then a state that matches them.
        var w = StateWriter()
        w.append(UInt64(1)); w.append(Int64(-42)); w.append(Int(7)); w.append(true); w.append(3.5)
        w.append("BTC-USD"); w.append(bytes: [1, 2, 3]); w.append([Int64(-1), 5]); w.append([UInt64(300)])
        w.append([0.25, -1e300]); w.append(["a", "ü"]); w.append([true, false]); w.append([1, -1])
        try write(root + "/state", "seed-all", [13] + Array(0...12) + w.bytes)
        var v = StateWriter()
        v.append(UInt64.max); v.append(Int64.min)
        try write(root + "/state", "seed-extremes", [2, 0, 1] + v.bytes)
    }

    static func write(_ dir: String, _ name: String, _ bytes: [UInt8]) throws {
        mkdir(dir, 0o755)
        let fd = open(dir + "/" + name, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        precondition(fd >= 0, "cannot create \(dir)/\(name)")
        defer { close(fd) }
        precondition(bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) } == bytes.count)
    }
}
