#if canImport(Glibc)
import Glibc
#endif
import Testing
import VigilCore
@testable import VigilHost

/// Fixture files live beside this file (found through #filePath, so Package.swift needs no
/// resources); program checks that need a non-executable file build one in a temp dir.
private enum LoaderFixture {
    static let directory: String = {
        let file = #filePath
        return String(file[..<file.lastIndex(of: "/")!]) + "/Fixtures"
    }()

    static func path(_ name: String) -> String { directory + "/" + name }

    /// A loader whose PATH is just /usr/bin, so "not found" messages are the same everywhere.
    static let loader = TopologyLoader(programSearchPath: [], pathVariable: "/usr/bin")

    /// The diagnostics of loading fixture `name`, as `file:line:column: message` lines with
    /// the fixture directory shown as `F/`.
    static func errors(_ name: String, loader: TopologyLoader = loader) -> [String] {
        errors(of: loader.load(path: path(name)))
    }

    static func errors(of result: Result<Topology, TopologyLoadError>) -> [String] {
        switch result {
        case .success: return ["(loaded without errors)"]
        case .failure(let e): return e.diagnostics.map { shorten($0.description) }
        }
    }

    static func shorten(_ s: String) -> String {
        s.replacingAll(directory + "/", with: "F/")
    }

    static func load(_ text: String, file: String = "/etc/vigil/t.yaml",
                     loader: TopologyLoader = loader) -> [String] {
        errors(of: loader.load(text: text, file: file))
    }
}

/// A fresh directory under /tmp, removed by `remove()`.
private struct TempDir {
    let path: String

    init() {
        var template = Array("/tmp/vigil-topology-test-XXXXXX".utf8CString)
        let p = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        path = String(cString: p!)
    }

    func write(_ name: String, _ text: String, mode: mode_t = 0o644) {
        let full = path + "/" + name
        let fd = open(full, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        precondition(fd >= 0)
        let bytes = Array(text.utf8)
        _ = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
        close(fd)
        chmod(full, mode)
    }

    func mkdir(_ name: String) { _ = Glibc.mkdir(path + "/" + name, 0o755) }

    func remove() { _ = system("rm -rf '\(path)'") }
}

extension String {
    fileprivate func replacingAll(_ target: String, with replacement: String) -> String {
        guard !target.isEmpty else { return self }
        var out = ""
        var rest = Substring(self)
        while let r = rest.range(of: target) {
            out += rest[..<r.lowerBound] + replacement
            rest = rest[r.upperBound...]
        }
        return out + rest
    }
}

extension Substring {
    fileprivate func range(of target: String) -> Range<Substring.Index>? {
        var i = startIndex
        while i < endIndex {
            if self[i...].hasPrefix(target) { return i..<index(i, offsetBy: target.count) }
            i = index(after: i)
        }
        return nil
    }
}

private func workers(_ s: SupervisorSpec) -> [String: WorkerSpec] {
    var out: [String: WorkerSpec] = [:]
    for c in s.children {
        switch c {
        case .worker(let w): out[w.name] = w
        case .supervisor(let sub): out.merge(workers(sub)) { a, _ in a }
        }
    }
    return out
}

@Suite("Topology loader")
struct TopologyLoaderTests {
    // MARK: The good topology

    @Test func goodTopologyLoadsToTheExpectedModel() throws {
        let file = LoaderFixture.path("good.yaml")
        let t = try LoaderFixture.loader.load(path: file).get()
        let dir = LoaderFixture.directory

        #expect(t.file == file)
        #expect(t.root.name == "trading")
        #expect(t.root.location == VigilCore.SourceLocation(file: file, line: 2, column: 7))
        #expect(t.root.strategy == .oneForAll)
        #expect(t.root.intensity == Intensity(maxRestarts: 3, period: .seconds(30)))
        #expect(t.settings == TreeSettings(heartbeatInterval: .milliseconds(500), sampleInterval: .seconds(2)))
        #expect(t.root.children.map(\.name) == ["data", "risk-guardian", "markets", "ml-predictor"])

        guard case .supervisor(let data) = t.root.children[0], case .supervisor(let markets) = t.root.children[2] else {
            Issue.record("expected supervisors data and markets"); return
        }
        #expect(data.strategy == .restForOne)
        #expect(data.intensity == Intensity(maxRestarts: 5, period: .seconds(10)))
        #expect(data.backoff == BackoffPolicy(initial: .seconds(1), multiplier: 3, max: .seconds(120), jitter: 0.1, resetAfter: .seconds(300)))
        #expect(data.children.map(\.name) == ["db-watchdog", "cache-warmer"])
        #expect(markets.strategy == .oneForOne)  // default
        #expect(markets.intensity == Intensity())  // defaults: 5 in 10s
        #expect(markets.backoff == BackoffPolicy())

        let w = workers(t.root)
        let db = try #require(w["db-watchdog"])
        // A bare name found in PATH becomes absolute; the other arguments are untouched.
        #expect(db.argv == ["/usr/bin/true", "--interval", "2s"])
        // env merged from defaults, the worker's own value wins.
        #expect(db.env == ["TRADING_DB": "trading.db", "LOG_LEVEL": "debug", "WATCHDOG": "1"])
        #expect(db.shutdown == .brutalKill)
        #expect(db.restart == .permanent)
        #expect(db.readyTimeout == .seconds(20))  // from defaults
        #expect(db.workingDirectory == dir)  // defaults '.', relative to the topology file
        // backoff: defaults.max over the built-in policy.
        #expect(db.backoff == BackoffPolicy(max: .seconds(60)))
        #expect(db.location == VigilCore.SourceLocation(file: file, line: 21, column: 17))

        let cache = try #require(w["cache-warmer"])
        #expect(cache.argv == ["/bin/true"])  // absolute stays as written
        #expect(cache.env == ["TRADING_DB": "trading.db", "LOG_LEVEL": "info"])
        #expect(cache.restart == .transient)
        #expect(cache.shutdown == .timeout(.seconds(3)))  // from defaults
        #expect(cache.dependsOn == [Dependency("db-watchdog", at: VigilCore.SourceLocation(file: file, line: 28, column: 21))])
        // backoff merged field by field: worker initial and jitter, defaults max, built-in rest.
        #expect(cache.backoff == BackoffPolicy(initial: .milliseconds(250), multiplier: 2, max: .seconds(60), jitter: 0, resetAfter: .seconds(60)))

        let guardian = try #require(w["risk-guardian"])
        #expect(guardian.argv == [dir + "/bin/fake-worker", "--guardian"])  // relative to the file
        #expect(guardian.role == .guardian)
        #expect(guardian.shutdown == .infinity)
        #expect(guardian.workingDirectory == "/tmp")
        #expect(guardian.dependsOn.map(\.name) == ["data"])

        let gateway = try #require(w["exchange-gateway"])
        #expect(gateway.argv == ["/usr/bin/true"])
        #expect(gateway.readyTimeout == .seconds(5))
        #expect(gateway.dependsOn.map(\.name) == ["risk-guardian", "cache-warmer"])

        let runner = try #require(w["strategy-runner"])
        #expect(runner.instances == 3)  // quoted "3" is accepted
        #expect(runner.restart == .temporary)
        #expect(runner.argv == ["/usr/bin/true", "--symbol", "AAPL"])

        let predictor = try #require(w["ml-predictor"])
        #expect(predictor.role == .predictor)
        #expect(predictor.instances == 1)
        #expect(predictor.dependsOn.map(\.name) == ["strategy-runner", "markets"])
    }

    @Test func minimalTopologyGetsTheModelDefaults() throws {
        let t = try LoaderFixture.loader.load(text: """
            name: tiny
            children:
              - worker: only
                argv: [true]
            """, file: "/etc/vigil/tiny.yaml").get()
        #expect(t.root.strategy == .oneForOne)
        #expect(t.root.intensity == Intensity(maxRestarts: 5, period: .seconds(10)))
        #expect(t.settings == TreeSettings())
        let w = try #require(workers(t.root)["only"])
        let expected = WorkerSpec(name: "only", argv: ["/usr/bin/true"], location: w.location)
        #expect(w == expected)
        #expect(w.shutdown == .timeout(.seconds(5)))
        #expect(w.readyTimeout == .seconds(10))
        #expect(w.workingDirectory == nil)
    }

    // MARK: One fixture per kind of problem, exact messages

    @Test func unknownKey() {
        #expect(LoaderFixture.errors("unknown-key.yaml") == [
            "F/unknown-key.yaml:5:5: unknown key 'restarts' in worker 'gateway' (did you mean 'restart'? expected one of: argv, backoff, depends_on, env, guarded, handoff, instances, max_checkpoint_bytes, memory_limit, readiness, ready_timeout, restart, role, safe_mode, shutdown, watchdog, worker, working_directory)",
            "F/unknown-key.yaml:6:5: unknown key 'colour' in worker 'gateway' (expected one of: argv, backoff, depends_on, env, guarded, handoff, instances, max_checkpoint_bytes, memory_limit, readiness, ready_timeout, restart, role, safe_mode, shutdown, watchdog, worker, working_directory)",
        ])
    }

    @Test func wrongTypes() {
        #expect(LoaderFixture.errors("wrong-type.yaml") == [
            "F/wrong-type.yaml:2:15: max_restarts: expected a whole number, got 'lots'",
            "F/wrong-type.yaml:5:11: argv: expected a list like [db-watchdog, --interval, 2s], got the string 'true --port 9000'; vigil runs no shell, so write each argument as its own item: argv: [true, --port, 9000]",
            "F/wrong-type.yaml:6:10: env: expected a mapping of NAME: value, like {TRADING_DB: trading.db}, got a list",
            "F/wrong-type.yaml:7:17: depends_on: expected a list of names like [db-watchdog, cache-warmer], got a mapping",
            "F/wrong-type.yaml:8:16: instances: expected a whole number, got '2.5'",
        ])
    }

    @Test func metricsTakesALoopbackAddressAndPort() throws {
        let ok = TopologyLoader(programSearchPath: [], pathVariable: "/usr/bin").load(text: """
        name: t
        metrics: 127.0.0.1:9464
        children:
          - worker: a
            argv: [/bin/true]
        """, file: "/etc/vigil/t.yaml")
        #expect((try? ok.get())?.settings.metrics?.description == "127.0.0.1:9464")
        #expect(LoaderFixture.load("""
        name: t
        metrics: 0.0.0.0:9464
        children:
          - worker: a
            argv: [/bin/true]
        """) == ["/etc/vigil/t.yaml:2:10: metrics: vigil serves metrics on loopback only (127.0.0.0/8 or localhost), got '0.0.0.0:9464'; to scrape from another host, put a proxy in front of 127.0.0.1:9464"])
        #expect(LoaderFixture.load("""
        name: t
        metrics: localhost:99999
        children:
          - worker: a
            argv: [/bin/true]
        """) == ["/etc/vigil/t.yaml:2:10: metrics: the port must be a number from 1 to 65535, got '99999' in 'localhost:99999'"])
        #expect(LoaderFixture.load("""
        name: t
        metrics: 9464
        children:
          - worker: a
            argv: [/bin/true]
        """) == ["/etc/vigil/t.yaml:2:10: metrics: expected a loopback address and port like 127.0.0.1:9464, got '9464' (no port)"])
    }

    @Test func badDurations() {
        #expect(LoaderFixture.errors("bad-duration.yaml") == [
            "F/bad-duration.yaml:2:9: period: expected a duration like 500ms, 5s or 2m, got 'fast'",
            "F/bad-duration.yaml:6:20: ready_timeout: expected a duration like 500ms, 5s or 2m, got '10' (a number needs a unit: 10s or 10ms?)",
            "F/bad-duration.yaml:7:15: shutdown: expected a duration like 5s, or brutal_kill, or infinity, got 'soon'",
            "F/bad-duration.yaml:8:36: backoff.max: expected a duration like 500ms, 5s or 2m, got 'forever'",
        ])
    }

    @Test func duplicateNames() {
        #expect(LoaderFixture.errors("duplicate-names.yaml") == [
            "F/duplicate-names.yaml:7:17: duplicate name 'gateway' (first defined at F/duplicate-names.yaml:3:13): every worker and supervisor needs its own name",
            "F/duplicate-names.yaml:9:17: duplicate name 'trading' (first defined at F/duplicate-names.yaml:1:7): every worker and supervisor needs its own name",
        ])
    }

    @Test func unknownDependency() {
        #expect(LoaderFixture.errors("unknown-dependency.yaml") == [
            "F/unknown-dependency.yaml:7:18: 'cache-warmer' depends on 'db-watchdg', but no worker, pool or supervisor has that name (did you mean 'db-watchdog'?)",
            "F/unknown-dependency.yaml:7:30: 'cache-warmer' depends on 'postgres', but no worker, pool or supervisor has that name",
        ])
    }

    @Test func cyclicDependency() {
        #expect(LoaderFixture.errors("cyclic-dependency.yaml") == [
            "F/cyclic-dependency.yaml:5:18: dependency cycle: gateway -> guardian -> gateway; no start order can satisfy it: remove one of these depends_on entries",
        ])
    }

    @Test func dependencyDeclaredLater() {
        #expect(LoaderFixture.errors("dependency-declared-later.yaml") == [
            "F/dependency-declared-later.yaml:5:18: 'gateway' depends on 'guardian', which is declared later (at F/dependency-declared-later.yaml:6:13): vigil starts children in declaration order and stops them in reverse, so a dependency must be declared before the workers that depend on it; move 'guardian' above 'gateway'",
        ])
    }

    @Test func missingPrograms() {
        #expect(LoaderFixture.errors("missing-program.yaml") == [
            "F/missing-program.yaml:4:12: program 'no-such-program-vigil' not found (looked in: /usr/bin); build it, or write its path in argv[0]",
            "F/missing-program.yaml:6:12: program './bin/missing' (F/bin/missing) not found; a program path with '/' is relative to the topology file's directory",
            "F/missing-program.yaml:8:12: program '/nonexistent/vigil-worker' not found",
            "F/missing-program.yaml:10:12: program '/tmp' is a directory, not an executable file",
        ])
    }

    @Test func yamlSyntaxError() {
        #expect(LoaderFixture.errors("syntax-error.yaml") == [
            "F/syntax-error.yaml:5:11: YAML syntax error: did not find expected ',' or ']' (while parsing a flow sequence at line 4, column 11)",
        ])
    }

    @Test func emptyFile() {
        #expect(LoaderFixture.errors("empty.yaml") == [
            "F/empty.yaml:1:1: the topology file is empty: it needs at least the root supervisor's name: and its children:",
        ])
        #expect(LoaderFixture.load("# only a comment\n") == [
            "/etc/vigil/t.yaml:1:1: the topology file is empty: it needs at least the root supervisor's name: and its children:",
        ])
    }

    @Test func unreadableFile() {
        #expect(LoaderFixture.errors("no-such-file.yaml") == [
            "F/no-such-file.yaml:1:1: cannot read: No such file or directory",
        ])
        #expect(LoaderFixture.errors(of: LoaderFixture.loader.load(path: "/tmp")) == [
            "/tmp:1:1: cannot read: Is a directory",
        ])
    }

    @Test func everyProblemInOneFileIsReportedSortedByLine() {
        #expect(LoaderFixture.errors("many-errors.yaml") == [
            "F/many-errors.yaml:2:11: strategy: expected one of one_for_one, rest_for_one, one_for_all, got 'one_for_everyone'",
            "F/many-errors.yaml:6:18: 'gateway' depends on 'guardian', which is declared later (at F/many-errors.yaml:8:13): vigil starts children in declaration order and stops them in reverse, so a dependency must be declared before the workers that depend on it; move 'guardian' above 'gateway'",
            "F/many-errors.yaml:7:5: unknown key 'readyTimeout' in worker 'gateway' (did you mean 'ready_timeout'? expected one of: argv, backoff, depends_on, env, guarded, handoff, instances, max_checkpoint_bytes, memory_limit, readiness, ready_timeout, restart, role, safe_mode, shutdown, watchdog, worker, working_directory)",
            "F/many-errors.yaml:10:23: backoff.jitter must be between 0 and 1 (a fraction of the delay), got 1.5",
            "F/many-errors.yaml:11:16: instances must be between 1 and 1000, got 0",
            "F/many-errors.yaml:12:13: duplicate name 'gateway' (first defined at F/many-errors.yaml:4:13): every worker and supervisor needs its own name",
            "F/many-errors.yaml:13:11: worker 'gateway' has no argv: write the program to run and its arguments, e.g. argv: [gateway, --flag]",
            "F/many-errors.yaml:14:15: shutdown must be longer than 0s, got 0s (write brutal_kill to kill at once)",
        ])
    }

    @Test func errorDescriptionIsOneDiagnosticPerLine() throws {
        let result = LoaderFixture.loader.load(text: "name: x\nperiod: 0s\nchildren: []\n", file: "t.yaml")
        guard case .failure(let e) = result else { Issue.record("expected failure"); return }
        #expect(e.description == """
            t.yaml:2:9: period must be longer than 0s, got 0s
            t.yaml:3:11: the root supervisor 'x' has no children: list its workers and supervisors under children:
            """)
    }

    // MARK: Program checks on the file system

    @Test func nonExecutableProgram() {
        let tmp = TempDir()
        defer { tmp.remove() }
        tmp.mkdir("bin")
        tmp.write("bin/worker", "#!/bin/sh\n", mode: 0o644)
        tmp.write("topology.yaml", """
            name: trading
            children:
              - worker: relative
                argv: [bin/worker]
              - worker: absolute
                argv: [\(tmp.path)/bin/worker, --x]
              - worker: searched
                argv: [worker]
            """)
        let loader = TopologyLoader(programSearchPath: [tmp.path + "/bin"], pathVariable: "/usr/bin")
        let errors = LoaderFixture.errors(of: loader.load(path: tmp.path + "/topology.yaml"))
            .map { $0.replacingAll(tmp.path, with: "T") }
        #expect(errors == [
            "T/topology.yaml:4:12: program 'bin/worker' (T/bin/worker) is not executable (mode 644): run chmod +x T/bin/worker",
            "T/topology.yaml:6:12: program 'T/bin/worker' is not executable (mode 644): run chmod +x T/bin/worker",
            "T/topology.yaml:8:12: program 'worker' (found at T/bin/worker) is not executable (mode 644): run chmod +x T/bin/worker",
        ])
    }

    @Test func programSearchPathComesBeforePATHInOrder() throws {
        let tmp = TempDir()
        defer { tmp.remove() }
        tmp.mkdir("empty")
        tmp.mkdir("build")
        tmp.mkdir("later")
        tmp.write("build/true", "#!/bin/sh\n", mode: 0o755)
        tmp.write("later/true", "#!/bin/sh\n", mode: 0o755)
        tmp.write("build/only-here", "#!/bin/sh\n", mode: 0o755)
        let text = """
            name: trading
            children:
              - worker: a
                argv: [true]
              - worker: b
                argv: [only-here, "x y"]
            """
        let loader = TopologyLoader(programSearchPath: [tmp.path + "/empty", tmp.path + "/build", tmp.path + "/later"],
                                    pathVariable: "/usr/bin:/bin")
        let t = try loader.load(text: text, file: tmp.path + "/t.yaml").get()
        let w = workers(t.root)
        #expect(w["a"]?.argv == [tmp.path + "/build/true"])
        #expect(w["b"]?.argv == [tmp.path + "/build/only-here", "x y"])

        // Without the search path, PATH is used.
        let plain = TopologyLoader(programSearchPath: [], pathVariable: "/nonexistent:/usr/bin")
        #expect(workers(try plain.load(text: text.replacingAll("only-here", with: "true"), file: "/etc/t.yaml").get().root)["b"]?.argv
            == ["/usr/bin/true", "x y"])
    }

    @Test func workingDirectoryMustExistAndBeADirectory() {
        let tmp = TempDir()
        defer { tmp.remove() }
        tmp.write("file", "")
        tmp.mkdir("run")
        let errors = LoaderFixture.load("""
            name: trading
            defaults:
              working_directory: nowhere
            children:
              - worker: a
                argv: [true]
              - worker: b
                argv: [true]
              - worker: c
                argv: [true]
                working_directory: file
              - worker: d
                argv: [true]
                working_directory: run
            """, file: tmp.path + "/t.yaml").map { $0.replacingAll(tmp.path, with: "T") }
        // The bad default is reported once, at the defaults line, not once per worker.
        #expect(errors == [
            "T/t.yaml:3:22: working_directory 'T/nowhere' does not exist: create it, or fix the path (a relative path is relative to the topology file's directory)",
            "T/t.yaml:11:24: working_directory 'T/file' is not a directory",
        ])
    }

    // MARK: Smaller YAML and schema cases

    @Test func topLevelMustBeAMapping() {
        #expect(LoaderFixture.load("- worker: a\n") == [
            "/etc/vigil/t.yaml:1:1: the top level must be a mapping with name:, children: and other settings, got a list",
        ])
    }

    @Test func missingNameAndChildren() {
        #expect(LoaderFixture.load("strategy: one_for_one\n") == [
            "/etc/vigil/t.yaml:1:1: missing name: the top level needs the root supervisor's name, e.g. name: trading",
            "/etc/vigil/t.yaml:1:1: the root supervisor has no children: list its workers and supervisors under children:",
        ])
    }

    @Test func tabsAreExplained() {
        #expect(LoaderFixture.load("name: x\nchildren:\n\t- worker: a\n") == [
            "/etc/vigil/t.yaml:3:1: YAML syntax error: found character that cannot start any token (while scanning for the next token at line 3, column 1); YAML does not allow tabs for indentation, use spaces",
        ])
    }

    @Test func onlyOneDocument() {
        #expect(LoaderFixture.load("name: x\nchildren: [{worker: a, argv: [true]}]\n---\nname: y\n") == [
            "/etc/vigil/t.yaml:3:1: a topology file holds one YAML document, but a second one starts here (remove the '---' line and what follows, or merge it into the first)",
        ])
    }

    @Test func invalidUTF8() {
        let bytes: [UInt8] = Array("name: x\nchildren: []\n# ".utf8) + [0xFF, 0x0A]
        let r = LoaderFixture.loader.load(bytes: bytes, file: "t.yaml")
        #expect(LoaderFixture.errors(of: r) == [
            "t.yaml:3:3: cannot read the file as YAML: invalid leading UTF-8 octet (the file must be UTF-8 text)",
        ])
    }

    @Test func duplicateKeys() {
        #expect(LoaderFixture.load("""
            name: trading
            children:
              - worker: a
                argv: [true]
                env: {A: "1", A: "2"}
                argv: [false]
            name: again
            """) == [
            "/etc/vigil/t.yaml:5:19: duplicate key 'A' in env (first given at line 5): keep only one",
            "/etc/vigil/t.yaml:6:5: duplicate key 'argv' in worker 'a' (first given at line 4): keep only one",
            "/etc/vigil/t.yaml:7:1: duplicate key 'name' in the top level (first given at line 1): keep only one",
        ])
    }

    @Test func childEntriesMustSayWhatTheyAre() {
        #expect(LoaderFixture.load("""
            name: trading
            children:
              - db-watchdog
              - argv: [true]
              - worker: a
                supervisor: b
              - worker: [a, b]
                argv: [true]
            children2: x
            """) == [
            "/etc/vigil/t.yaml:3:5: expected a child like `- worker: NAME` or `- supervisor: NAME`, got 'db-watchdog' (write `- worker: db-watchdog` followed by its argv:)",
            "/etc/vigil/t.yaml:4:5: this child has neither worker: nor supervisor:; start the entry with `- worker: NAME` or `- supervisor: NAME`",
            "/etc/vigil/t.yaml:6:5: a child is either a worker or a supervisor, not both: this entry already has worker: at line 5; split it into two entries",
            "/etc/vigil/t.yaml:7:13: worker: expected the worker's name, like `- worker: db-watchdog`, got a list",
            "/etc/vigil/t.yaml:9:1: unknown key 'children2' in the top level (did you mean 'children'? expected one of: adopt_window, children, defaults, guardian_timeout, heartbeat_interval, max_restarts, metrics, name, period, sample_interval, strategy)",
        ])
    }

    @Test func valuesOfTheWrongShape() {
        #expect(LoaderFixture.load("""
            name: trading
            heartbeat_interval: [1s]
            children:
              - worker: a
                argv: [true, {x: 1}]
                env: {EMPTY: , LIST: [1]}
                backoff: 5s
                role: guard
                restart: always
              - worker: b
                argv:
                depends_on: [a, [c]]
                backoff: {multiplier: inf, jitter: lots, reset: 1m}
            """) == [
            "/etc/vigil/t.yaml:2:21: heartbeat_interval: expected a duration like 500ms, 5s or 2m, got a list",
            "/etc/vigil/t.yaml:5:18: argv[1]: expected a string, got a mapping",
            "/etc/vigil/t.yaml:6:18: env.EMPTY: expected a value, got nothing (write EMPTY: \"\" for an empty string)",
            "/etc/vigil/t.yaml:6:26: env.LIST: expected a value, got a list",
            "/etc/vigil/t.yaml:7:14: backoff: expected a mapping like {initial: 100ms, multiplier: 2, max: 30s, jitter: 0.2, reset_after: 1m}, got '5s'",
            "/etc/vigil/t.yaml:8:11: role: expected one of guardian, predictor, gateway, got 'guard' (did you mean 'guardian'?)",
            "/etc/vigil/t.yaml:9:14: restart: expected one of permanent, transient, temporary, got 'always'",
            "/etc/vigil/t.yaml:11:10: argv: expected a list like [db-watchdog, --interval, 2s], got nothing",
            "/etc/vigil/t.yaml:12:21: depends_on[1]: expected a name, got a list",
            "/etc/vigil/t.yaml:13:27: backoff.multiplier: expected a number like 2 or 0.5, got 'inf'",
            "/etc/vigil/t.yaml:13:40: backoff.jitter: expected a number like 2 or 0.5, got 'lots'",
            "/etc/vigil/t.yaml:13:46: unknown key 'reset' in backoff of worker 'b' (did you mean 'reset_after'? expected one of: initial, jitter, max, multiplier, reset_after)",
        ])
    }

    @Test func keysInTheWrongPlaceGetAHint() {
        #expect(LoaderFixture.load("""
            name: trading
            backoff: {max: 1s}
            defaults:
              argv: [true]
            children:
              - supervisor: data
                depends_on: [x]
                children:
                  - worker: a
                    command: true
                    <<: {restart: permanent}
            """) == [
            "/etc/vigil/t.yaml:2:1: unknown key 'backoff' in the top level: the root supervisor is never restarted, so it has no backoff (expected one of: adopt_window, children, defaults, guardian_timeout, heartbeat_interval, max_restarts, metrics, name, period, sample_interval, strategy)",
            "/etc/vigil/t.yaml:4:3: unknown key 'argv' in defaults: argv cannot have a default: set it on each worker (expected one of: backoff, env, ready_timeout, restart, shutdown, watchdog, working_directory)",
            "/etc/vigil/t.yaml:7:5: unknown key 'depends_on' in supervisor 'data': only workers have depends_on: put it on the workers under this supervisor (expected one of: backoff, children, max_restarts, period, strategy, supervisor)",
            "/etc/vigil/t.yaml:9:17: worker 'a' has no argv: write the program to run and its arguments, e.g. argv: [a, --flag]",
            "/etc/vigil/t.yaml:10:9: unknown key 'command' in worker 'a': the program and its arguments go in argv: [program, arg, ...] (expected one of: argv, backoff, depends_on, env, guarded, handoff, instances, max_checkpoint_bytes, memory_limit, readiness, ready_timeout, restart, role, safe_mode, shutdown, watchdog, worker, working_directory)",
            "/etc/vigil/t.yaml:11:9: unknown key '<<' in worker 'a': YAML merge keys are not supported; use defaults: for settings shared by all workers (expected one of: argv, backoff, depends_on, env, guarded, handoff, instances, max_checkpoint_bytes, memory_limit, readiness, ready_timeout, restart, role, safe_mode, shutdown, watchdog, worker, working_directory)",
        ])
    }

    @Test func memoryLimitTakesASizeWithAUnit() throws {
        let t = try LoaderFixture.loader.load(text: """
            name: t
            children:
              - worker: a
                argv: [true]
                memory_limit: 256MiB
              - worker: b
                argv: [true]
            """, file: "/etc/t.yaml").get()
        #expect(workers(t.root)["a"]?.memoryLimit == 256 << 20)
        #expect(workers(t.root)["b"]?.memoryLimit == nil)
        #expect(LoaderFixture.load("""
            name: t
            children:
              - worker: a
                argv: [true]
                memory_limit: 256
              - worker: b
                argv: [true]
                memory_limit: 512KiB
              - worker: c
                argv: [true]
                memory_limit: lots
              - supervisor: s
                memory_limit: 1GiB
                children:
                  - worker: d
                    argv: [true]
            """) == [
            "/etc/vigil/t.yaml:5:19: memory_limit: expected a size like 256MiB or 2GiB, got '256' (a number needs a unit: 256MiB?)",
            "/etc/vigil/t.yaml:8:19: memory_limit: 512KiB is too small to run a process in; at least 1MiB",
            "/etc/vigil/t.yaml:11:19: memory_limit: expected a size like 256MiB or 2GiB, got 'lots'",
            "/etc/vigil/t.yaml:13:5: unknown key 'memory_limit' in supervisor 's': memory_limit is a worker setting: put it on the workers under this supervisor, or in defaults: (expected one of: backoff, children, max_restarts, period, strategy, supervisor)",
        ])
    }

    @Test func aliasesAreExpanded() throws {
        let t = try LoaderFixture.loader.load(text: """
            name: trading
            children:
              - worker: a
                argv: &prog [true, --flag]
                env: &env {A: "1"}
              - worker: b
                argv: *prog
                env: *env
            """, file: "/etc/t.yaml").get()
        let w = workers(t.root)
        #expect(w["b"]?.argv == ["/usr/bin/true", "--flag"])
        #expect(w["b"]?.env == ["A": "1"])
        #expect(LoaderFixture.load("name: x\nchildren: *nope\n") == [
            "/etc/vigil/t.yaml:2:11: unknown alias '*nope': define it first with '&nope'",
        ])
    }

    @Test func handoffIsDecodedDefaultsToStopFirstAndIsCheckedAtItsLine() throws {
        let t = try LoaderFixture.loader.load(text: """
            name: trading
            children:
              - worker: a
                argv: [true]
                handoff: overlap
              - worker: b
                argv: [true]
            """, file: "/etc/t.yaml").get()
        let w = workers(t.root)
        #expect(w["a"]?.handoff == .overlap)
        #expect(w["b"]?.handoff == .stopFirst)
        #expect(LoaderFixture.load("""
            name: trading
            children:
              - worker: gw
                argv: [true]
                role: gateway
                handoff: overlap
              - worker: c
                argv: [true]
                handoff: stop-first
            """) == [
            "/etc/vigil/t.yaml:6:14: worker 'gw' has role gateway and cannot hand off with overlap: a gateway holds the exchange session, and two sessions at once could both trade; use handoff: stop_first",
            "/etc/vigil/t.yaml:9:14: handoff: expected one of overlap, stop_first, got 'stop-first' (did you mean 'stop_first'?)",
        ])
    }

    @Test func aliasBombIsRefused() {
        var text = "a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n"
        for i in 1...6 { text += "a\(i): &a\(i) [" + Array(repeating: "*a\(i - 1)", count: 10).joined(separator: ", ") + "]\n" }
        let errors = LoaderFixture.load(text)
        #expect(errors.count == 1)
        #expect(errors.first?.contains("too many nodes after expanding aliases") == true)
    }

    @Test func pathsAreResolvedLexically() {
        // '.' components and repeated slashes go; '..' stays (the kernel resolves it,
        // symlinks and all, exactly as it would for the path as written).
        #expect(Paths.resolve("./bin//tool", against: "/etc/vigil") == "/etc/vigil/bin/tool")
        #expect(Paths.resolve("../bin/tool", against: "/etc/vigil/") == "/etc/vigil/../bin/tool")
        #expect(Paths.resolve("/usr/bin/true", against: "/etc") == "/usr/bin/true")
        #expect(Paths.resolve(".", against: "/srv/./trading") == "/srv/trading")
        #expect(Paths.directory(of: "/etc/vigil/t.yaml") == "/etc/vigil")
        #expect(Paths.directory(of: "/t.yaml") == "/")
        #expect(Paths.directory(of: "t.yaml") == ".")
    }

    @Test func relativeTopologyPathIsRelativeToTheCurrentDirectory() {
        let cwd = FileReader.currentDirectory()
        let errors = LoaderFixture.load("""
            name: trading
            children:
              - worker: a
                argv: [./tool]
            """, file: "no-such-dir/t.yaml")
        #expect(errors == [
            "no-such-dir/t.yaml:4:12: program './tool' (\(cwd == "/" ? "" : cwd)/no-such-dir/tool) not found; a program path with '/' is relative to the topology file's directory",
        ])
    }
}

@Suite("Topology loader limits")
struct TopologyLoaderLimitTests {
    @Test func absurdNestingIsAnErrorNotACrash() {
        let deep = "name: t\nchildren:\n  - worker: a\n    argv: " + String(repeating: "[", count: 40_000)
            + String(repeating: "]", count: 40_000) + "\n"
        let errors = LoaderFixture.load(deep)
        #expect(errors.count == 1)
        #expect(errors.first?.contains("nested more than 64 levels deep") == true, "\(errors)")
    }
}
