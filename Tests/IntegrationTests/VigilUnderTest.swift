import Foundation
import Testing
import VigilHost

/// A real `vigil up` process on a topology written for one test, with its own runtime and
/// state directories, steered over its real control socket. Waits are for a condition
/// with a deadline, never a bare sleep.
final class VigilUnderTest {
    static let products: String = {
        let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        return (exe as NSString).deletingLastPathComponent
    }()
    static var vigil: String { products + "/vigil" }
    static var testWorker: String { products + "/vigil-test-worker" }
    static var sdkTestWorker: String { products + "/vigil-sdk-test-worker" }

    let directory: String
    let topologyPath: String
    private(set) var process = Process()
    let logPath: String

    var runtimeDirectory: String { directory + "/run" }
    var stateDirectory: String { directory + "/state" }
    var controlSocket: String { runtimeDirectory + "/control.sock" }

    /// Writes `topology` (with `WORKER` and `SDKWORKER` replaced by the test workers' paths) and, unless
    /// `start` is false, starts vigil on it.
    init(_ topology: String, start: Bool = true) throws {
        #expect(FileManager.default.isExecutableFile(atPath: Self.vigil), "build vigil first: \(Self.vigil)")
        directory = NSTemporaryDirectory() + "vigil-it-" + UUID().uuidString.prefix(8)
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        topologyPath = directory + "/topology.yaml"
        logPath = directory + "/vigil.log"
        try topology.replacingOccurrences(of: "SDKWORKER", with: Self.sdkTestWorker)
            .replacingOccurrences(of: "WORKER", with: Self.testWorker)
            .write(toFile: topologyPath, atomically: true, encoding: .utf8)
        if start { try launch(["up", topologyPath]) }
    }

    /// Starts vigil; `environment` adds to (or overrides) the test process's own. With
    /// `shell`, runs `/bin/sh -c shell` instead (which must `exec` vigil, so the process
    /// under test is vigil itself), for what only a shell sets up: inherited descriptors,
    /// `LISTEN_PID=$$`.
    func launch(_ arguments: [String], environment extra: [String: String] = [:], shell: String? = nil) throws {
        _ = FileManager.default.createFile(atPath: logPath, contents: nil)
        let log = FileHandle(forWritingAtPath: logPath)!
        process.executableURL = URL(fileURLWithPath: shell == nil ? Self.vigil : "/bin/sh")
        process.arguments = shell.map { ["-c", $0] } ?? arguments
        var env = ProcessInfo.processInfo.environment
        env["VIGIL_RUNTIME_DIR"] = runtimeDirectory
        env["VIGIL_STATE_DIR"] = stateDirectory
        env.removeValue(forKey: "NOTIFY_SOCKET")
        env.removeValue(forKey: "WATCHDOG_USEC")
        for (k, v) in extra { env[k] = v }
        process.environment = env
        process.standardOutput = log
        process.standardError = log
        try process.run()
    }

    /// Starts a new vigil on the same topology and directories (after the last one died).
    func relaunch() throws {
        process = Process()
        try launch(["up", topologyPath])
    }

    deinit {
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
        // VIGIL_KEEP_TEST_DIRS=1 keeps each test's runtime, state and vigil.log for a post-mortem.
        if ProcessInfo.processInfo.environment["VIGIL_KEEP_TEST_DIRS"] == nil {
            try? FileManager.default.removeItem(atPath: directory)
        }
    }

    var log: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }

    /// One command over the control socket.
    func control(_ words: [String], timeout: Duration = .seconds(5)) throws -> ControlResponse {
        try ControlClient.send(words, to: controlSocket, timeout: timeout)
    }

    struct Node {
        var name: String
        var state: String
        var pid: Int32?
        var restarts: Int
        var incarnation: Int
        var lastExit: String?
        /// The worker's own status line.
        var workerStatus: String?
    }

    /// `vigil status --json` as parsed JSON (tree-level fields such as `safe_mode`).
    func rawStatus() -> [String: Any]? {
        guard let response = try? control(["status", "--json"]), response.ok else { return nil }
        return try? JSONSerialization.jsonObject(with: Data(response.body.utf8)) as? [String: Any]
    }

    /// `vigil status --json`, or nil while vigil is not answering yet.
    func status() -> [String: Node]? {
        guard let object = rawStatus(), let nodes = object["nodes"] as? [[String: Any]] else { return nil }
        var result: [String: Node] = [:]
        for n in nodes {
            let name = n["name"] as! String
            result[name] = Node(name: name, state: n["state"] as! String, pid: (n["pid"] as? Int).map { Int32($0) },
                                restarts: n["restarts"] as! Int, incarnation: n["incarnation"] as! Int,
                                lastExit: n["last_exit"] as? String, workerStatus: n["status"] as? String)
        }
        return result
    }

    /// Polls every 20 ms until `condition` holds on the status, or fails the test after
    /// `timeout` with vigil's log attached.
    @discardableResult
    func waitFor(_ what: String, timeout: Double = 15, _ condition: ([String: Node]) -> Bool,
                 sourceLocation: SourceLocation = #_sourceLocation) -> [String: Node] {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if let s = status(), condition(s) { return s }
            usleep(20_000)
        }
        Issue.record("timed out waiting for \(what)\n--- vigil log ---\n\(log)", sourceLocation: sourceLocation)
        return status() ?? [:]
    }

    func allReady(_ names: [String]) -> ([String: Node]) -> Bool {
        { s in names.allSatisfy { s[$0]?.state == "ready" } }
    }

    /// Waits for vigil to exit and returns its exit status.
    func waitForExit(timeout: Double = 20, sourceLocation: SourceLocation = #_sourceLocation) -> Int32? {
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning && Date() < deadline { usleep(10_000) }
        if process.isRunning {
            Issue.record("vigil did not exit\n--- vigil log ---\n\(log)", sourceLocation: sourceLocation)
            return nil
        }
        return process.terminationStatus
    }

    /// SIGINT, as Ctrl-C would, and the exit status.
    func interrupt() -> Int32? {
        kill(process.processIdentifier, SIGINT)
        return waitForExit()
    }

    /// Journal lines (`vigil events`), for order assertions.
    func events() -> [String] {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: Self.vigil)
        p.arguments = ["events", "-n", "1000", "--state-dir", stateDirectory]
        let pipe = Pipe()
        p.standardOutput = pipe
        try? p.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return String(decoding: data, as: UTF8.self).split(separator: "\n").map(String.init)
    }
}

/// Runs the vigil CLI once; its exit status and its stdout and stderr together.
func runVigil(_ args: [String], env: [String: String] = [:]) -> (Int32, String) {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: VigilUnderTest.vigil)
    p.arguments = args
    var e = ProcessInfo.processInfo.environment
    for (k, v) in env { e[k] = v }
    p.environment = e
    let pipe = Pipe()
    p.standardOutput = pipe
    p.standardError = pipe
    try? p.run()
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    return (p.terminationStatus, String(decoding: data, as: UTF8.self))
}

/// True while any process is in process group `pgid`.
func groupAlive(_ pgid: Int32) -> Bool {
    kill(-pgid, 0) == 0
}

/// True while a process of group `pgid` is alive: zombies do not count (an adopted
/// worker's parent is not vigil, and reaps it when it gets round to it).
func groupHasLiveMembers(_ pgid: Int32) -> Bool {
    allPIDs().contains { pid in procStat(pid).map { $0.group == pgid && $0.state != "Z" } ?? false }
}

/// State, parent and process group of a live process, from /proc/PID/stat (nil if gone).
func procStat(_ pid: Int32) -> (state: Substring, parent: Int32, group: Int32)? {
    guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
          let close = stat.lastIndex(of: ")") else { return nil }
    let f = stat[stat.index(after: close)...].split(separator: " ")
    guard f.count > 3, let parent = Int32(f[1]), let group = Int32(f[2]) else { return nil }
    return (f[0], parent, group)
}

/// Every pid on the machine.
func allPIDs() -> [Int32] {
    ((try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []).compactMap { Int32($0) }
}

/// True while a process with this pid exists and is not a zombie.
func processAlive(_ pid: Int32) -> Bool {
    procStat(pid).map { $0.state != "Z" } ?? false
}

/// Every live child of `parent`.
func childrenOf(_ parent: Int32) -> [Int32] {
    allPIDs().filter { procStat($0).map { $0.parent == parent && $0.state != "Z" } ?? false }
}

/// Every pid whose process group is `pgid`.
func members(ofGroup pgid: Int32) -> [Int32] {
    allPIDs().filter { procStat($0)?.group == pgid }
}
