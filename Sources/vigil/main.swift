// vigil: the command line. `vigil up FILE` runs a supervision tree in the foreground; the
// other commands talk to it over its control socket, or read its journal.
import CShim
import Glibc
import VigilCore
import VigilHost

/// Exit codes, stable for scripts and systemd (`RestartPreventExitStatus=2`).
enum ExitCode {
    static let ok: Int32 = 0
    /// A command failed, or vigil could not run (socket in use, journal unwritable).
    static let failure: Int32 = 1
    /// Bad usage or a bad topology file: nothing was started.
    static let usage: Int32 = 2
    /// The root supervisor exceeded its restart intensity: the tree is down.
    static let treeFailed: Int32 = 3
}

let usage = """
usage: vigil <command> [arguments]

Run a tree:
  up FILE                 start the tree in FILE in the foreground; Ctrl-C stops it in
                          reverse start order (a second Ctrl-C kills what is left)
  check FILE              validate FILE; print every problem as file:line:column

Steer a running tree (over its control socket):
  status [--json]         every node: state, pid, uptime, restarts, last exit, reason
  metrics                 the tree as Prometheus metrics (what metrics: serves over HTTP)
  stop NAME               terminate a child (or pool, or supervisor) and keep it down
  start NAME              start a stopped child
  restart NAME            terminate and start again (not counted as a failure)
                          stop/start/restart return once done (READY, or stopped);
                          --no-block returns at once
  restart --handoff NAME  ask NAME for a fresh checkpoint and replace it from it:
                          handoff: overlap starts the replacement beside it and
                          stops it once that is READY; stop_first stops it first
  kill NAME [SIGNAL]      send SIGNAL (default TERM) to the child's process group
  reload                  read the topology file again (also SIGHUP): a file with
                          problems is refused (exit 2), the tree untouched; otherwise only
                          changed children restart, added ones start, removed stop

Capital safety:
  safe-mode on|off [WHY]  enter or leave safe mode (an operator override, journaled):
                          guarded children are not restarted, safe_mode: stop
                          workers are stopped, gateways go cancel-only
  liquidate --confirm     order the gateways to flatten every position at market
                          (puts the tree in safe mode)

Read the journal and the logs (work whether or not vigil runs):
  events [-n N] [NAME]    the last N (default 50) decisions and child runs
  logs [-n N] [-f] NAME   NAME's stdout and stderr, line by line with time and pid
                          (the last N lines; -f: then follow)

Options (any command):
  --runtime-dir DIR       control socket directory (env VIGIL_RUNTIME_DIR;
                          default /run/vigil as root, else $XDG_RUNTIME_DIR/vigil)
  --state-dir DIR         journal directory (env VIGIL_STATE_DIR;
                          default /var/lib/vigil as root, else ~/.local/state/vigil)
  -h, --help              this help
  --version               vigil's version

Exit codes: 0 ok; 1 command failed or vigil could not run; 2 bad usage or topology
(nothing started); 3 the root supervisor exceeded its restart intensity.
"""

func fail(_ message: String, code: Int32 = ExitCode.failure) -> Never {
    writeStderr("vigil: \(message)\n")
    exit(code)
}

func writeStderr(_ s: String) {
    var bytes = Array(s.utf8)
    _ = bytes.withUnsafeMutableBytes { write(2, $0.baseAddress, $0.count) }
}

func writeStdout(_ s: String) {
    var bytes = Array(s.utf8)
    var offset = 0
    while offset < bytes.count {
        let n = bytes.withUnsafeMutableBytes { write(1, $0.baseAddress! + offset, $0.count - offset) }
        if n <= 0 { return }
        offset += n
    }
}

func processEnvironment() -> [String: String] {
    var env: [String: String] = [:]
    var p = environ
    while let entry = p.pointee {
        let s = String(cString: entry)
        if let eq = s.firstIndex(of: "=") { env[String(s[..<eq])] = String(s[s.index(after: eq)...]) }
        p += 1
    }
    return env
}

/// The directory of this executable: where `swift build` put the worker executables too.
func productsDirectory() -> String {
    var buffer = [CChar](repeating: 0, count: 4096)
    let n = readlink("/proc/self/exe", &buffer, buffer.count - 1)
    guard n > 0 else { return "." }
    let path = String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    return String(path[..<(path.lastIndex(of: "/") ?? path.endIndex)])
}

// MARK: Arguments

var arguments = Array(CommandLine.arguments.dropFirst())
var environment = processEnvironment()

func takeOption(_ name: String, from arguments: inout [String]) -> String? {
    guard let i = arguments.firstIndex(of: name) else { return nil }
    guard i + 1 < arguments.count else { fail("\(name) needs a value", code: ExitCode.usage) }
    let value = arguments[i + 1]
    arguments.removeSubrange(i...(i + 1))
    return value
}

if let dir = takeOption("--runtime-dir", from: &arguments) { environment["VIGIL_RUNTIME_DIR"] = dir }
if let dir = takeOption("--state-dir", from: &arguments) { environment["VIGIL_STATE_DIR"] = dir }
// A relative directory is relative to where vigil was started, never silently dropped.
for key in ["VIGIL_RUNTIME_DIR", "VIGIL_STATE_DIR"] {
    if let dir = environment[key], !dir.isEmpty, !dir.hasPrefix("/") {
        var buffer = [CChar](repeating: 0, count: 4096)
        guard getcwd(&buffer, buffer.count) != nil else { fail("cannot resolve \(key)=\(dir): no current directory") }
        let cwd = String(decoding: buffer.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)
        environment[key] = cwd + "/" + dir
    }
}
if arguments.first == "--version" || arguments.first == "version" {
    writeStdout("vigil \(vigilVersion)\n")
    exit(ExitCode.ok)
}
if arguments.isEmpty || arguments.contains("-h") || arguments.contains("--help") || arguments.first == "help" {
    writeStdout(usage + "\n")
    exit(arguments.isEmpty ? ExitCode.usage : ExitCode.ok)
}

let paths = RuntimePaths.resolve(environment: environment)
let command = arguments.removeFirst()

/// Refuses options a command does not know, instead of silently ignoring a typo.
func rejectUnknownOptions(_ arguments: [String], _ command: String, allowed: Set<String>) {
    for a in arguments where a.hasPrefix("-") && !allowed.contains(a) {
        fail("\(command): unknown option '\(a)'; `vigil --help` lists the options", code: ExitCode.usage)
    }
}

func loadTopology(_ file: String) -> Topology {
    let loader = TopologyLoader(programSearchPath: [productsDirectory()])
    switch loader.load(path: file) {
    case .success(let topology):
        return topology
    case .failure(let error):
        writeStderr("\(error)\n")
        let count = error.diagnostics.count
        fail("\(file): \(count) problem\(count == 1 ? "" : "s"); nothing was started", code: ExitCode.usage)
    }
}

func control(_ words: [String], timeout: Duration = .seconds(10)) -> Never {
    do {
        let response = try ControlClient.send(words, to: paths.controlSocket, timeout: timeout)
        if response.ok {
            writeStdout(response.body)
            exit(ExitCode.ok)
        }
        // The first line says what failed; the rest (a reload's file:line:column list) follows.
        if !response.body.isEmpty {
            writeStderr("vigil: \(response.message.isEmpty ? "request failed" : response.message)\n" + response.body
                        + (response.body.hasSuffix("\n") ? "" : "\n"))
            // A reload refused for a bad file is bad input, as for `vigil up` and `check`.
            exit(words.first == "reload" && response.message.hasPrefix("reload refused") ? ExitCode.usage : ExitCode.failure)
        }
        fail(response.message.isEmpty ? "request failed" : response.message)
    } catch {
        fail("\(error)")
    }
}

switch command {
case "up":
    rejectUnknownOptions(arguments, command, allowed: [])
    guard arguments.count == 1 else { fail("usage: vigil up FILE", code: ExitCode.usage) }
    let topology = loadTopology(arguments[0])
    let host: TreeHost
    var configuration = TreeHost.Configuration(topology: topology, paths: paths, environment: environment)
    let file = arguments[0]
    let searchPath = [productsDirectory()]
    configuration.reloadTopology = {
        switch TopologyLoader(programSearchPath: searchPath).load(path: file) {
        case .success(let t): .success(t)
        case .failure(let e): .failure(ReloadRefused(e.diagnostics.map { "\($0)" }))
        }
    }
    do {
        host = try TreeHost(configuration)
    } catch {
        fail("\(error)")
    }
    switch host.run() {
    case .stopped:
        exit(ExitCode.ok)
    case .treeFailed(let why):
        fail("the tree failed: \(why)", code: ExitCode.treeFailed)
    }

case "check":
    rejectUnknownOptions(arguments, command, allowed: [])
    guard arguments.count == 1 else { fail("usage: vigil check FILE", code: ExitCode.usage) }
    let topology = loadTopology(arguments[0])
    let tree = SupervisionTree(topology: topology)
    let workers = tree.nodeIDs.filter { tree.workerSpec(of: $0) != nil }.count
    let supervisors = tree.nodeIDs.count - workers
    writeStdout("\(arguments[0]): ok (\(supervisors) supervisor\(supervisors == 1 ? "" : "s"), \(workers) worker\(workers == 1 ? "" : "s"))\n")

case "status":
    rejectUnknownOptions(arguments, command, allowed: ["--json"])
    guard arguments.allSatisfy({ $0 == "--json" }) else { fail("usage: vigil status [--json]", code: ExitCode.usage) }
    control(["status"] + arguments.filter { $0 == "--json" })

case "metrics":
    rejectUnknownOptions(arguments, command, allowed: [])
    guard arguments.isEmpty else { fail("usage: vigil metrics", code: ExitCode.usage) }
    control(["metrics"])

case "stop", "start", "restart":
    rejectUnknownOptions(arguments, command, allowed: command == "restart" ? ["--no-block", "--handoff"] : ["--no-block"])
    let flags = arguments.filter { $0.hasPrefix("--") }
    arguments.removeAll { $0.hasPrefix("--") }
    guard arguments.count == 1 else { fail("usage: vigil \(command) [--no-block\(command == "restart" ? "|--handoff" : "")] NAME", code: ExitCode.usage) }
    // vigil answers once the work is done, or with an error after the child's own
    // shutdown and ready timeouts; the client waits at least that long.
    control([command, arguments[0]] + flags, timeout: .seconds(600))

case "reload":
    rejectUnknownOptions(arguments, command, allowed: [])
    guard arguments.isEmpty else { fail("usage: vigil reload", code: ExitCode.usage) }
    control(["reload"])

case "safe-mode":
    rejectUnknownOptions(arguments, command, allowed: [])
    guard let mode = arguments.first, mode == "on" || mode == "off" else {
        fail("usage: vigil safe-mode on|off [WHY...]", code: ExitCode.usage)
    }
    control(["safe-mode"] + arguments.flatMap { $0.split(separator: " ").map(String.init) })

case "liquidate":
    rejectUnknownOptions(arguments, command, allowed: ["--confirm"])
    guard arguments.contains("--confirm") else {
        fail("liquidation flattens every position with market orders and puts the tree in safe mode; to do it: vigil liquidate --confirm", code: ExitCode.usage)
    }
    control(["liquidate", "--confirm"])

case "kill":
    if arguments.count == 2, arguments[1].hasPrefix("-"), let n = Int32(arguments[1].dropFirst()) {
        arguments[1] = String(n)  // `kill NAME -9`, as kill(1) spells it
    }
    rejectUnknownOptions(arguments, command, allowed: [])
    guard arguments.count == 1 || arguments.count == 2 else { fail("usage: vigil kill NAME [SIGNAL]", code: ExitCode.usage) }
    if arguments.count == 2, SignalName.number(arguments[1]) == nil {
        fail("unknown signal '\(arguments[1])'; use a name like TERM, KILL, HUP, STOP or a number", code: ExitCode.usage)
    }
    control(["kill"] + arguments)

case "events":
    var limit = 50
    if let n = takeOption("-n", from: &arguments) {
        guard let v = Int(n), v > 0 else { fail("-n needs a positive number", code: ExitCode.usage) }
        limit = v
    }
    rejectUnknownOptions(arguments, command, allowed: [])
    guard arguments.count <= 1 else { fail("usage: vigil events [-n N] [NAME]", code: ExitCode.usage) }
    let node = arguments.first
    do {
        let journal = try Journal(readOnlyPath: paths.journal)
        let events = try journal.events(limit: limit, node: node)
        if let node, events.isEmpty {
            fail("no events for '\(node)' in \(paths.journal) (names are as `vigil status` shows them, e.g. strategy-runner.2)")
        }
        writeStdout(EventsReport.text(events))
    } catch {
        fail("cannot read the journal at \(paths.journal): \(JournalAdvice.explain(error))")
    }

case "logs":
    var count: Int?
    if let n = takeOption("-n", from: &arguments) {
        guard let v = Int(n), v > 0 else { fail("-n needs a positive number", code: ExitCode.usage) }
        count = v
    }
    rejectUnknownOptions(arguments, command, allowed: ["-f", "--follow"])
    let followOutput = arguments.contains("-f") || arguments.contains("--follow")
    arguments.removeAll { $0 == "-f" || $0 == "--follow" }
    guard arguments.count == 1 else { fail("usage: vigil logs [-n N] [-f] NAME", code: ExitCode.usage) }
    let child = arguments[0]
    let directory = paths.logDirectory
    if ChildLogFiles.files(directory: directory, child: child).isEmpty && !followOutput {
        let known = ChildLogFiles.children(directory: directory)
        let instances = known.filter { $0.hasPrefix(child + ".") && Int($0.dropFirst(child.count + 1)) != nil }
        if !instances.isEmpty {
            // A pool: each instance's lines, under its name (follow one with `logs -f NAME.N`).
            for instance in instances.sorted(by: { Int($0.dropFirst(child.count + 1))! < Int($1.dropFirst(child.count + 1))! }) {
                writeStdout("==> \(instance) <==\n")
                for line in ChildLogFiles.tail(directory: directory, child: instance, count: count) { writeStdout(line + "\n") }
            }
            exit(ExitCode.ok)
        }
        let hint = known.isEmpty ? "no child has written anything there yet" : "children with logs: " + known.joined(separator: ", ")
        fail("no log for '\(child)' in \(directory); \(hint)")
    }
    for line in ChildLogFiles.tail(directory: directory, child: child, count: count) { writeStdout(line + "\n") }
    if followOutput { ChildLogFiles.follow(directory: directory, child: child, write: writeStdout) }

default:
    fail("unknown command '\(command)'; `vigil --help` lists the commands", code: ExitCode.usage)
}
