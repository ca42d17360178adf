/// Checks a `Topology` for every problem that can be found without touching the file
/// system: names, `depends_on`, numeric ranges, argv and roles. Pure and deterministic; the
/// YAML loader in VigilHost runs it after decoding, and code that builds topologies by hand
/// (tests, simulations) can run it directly.
///
/// Rules, in the order they are reported for each spec (depth-first declaration order):
/// - Names are non-empty, use only `[A-Za-z0-9_-]` (no dots: pool instances are named
///   `name.1` ... `name.N`) and are unique across the whole tree, root included. A duplicate
///   is reported at its second occurrence, naming the first.
/// - `depends_on` names an existing worker, pool (all its instances) or supervisor (all its
///   children), not the dependent itself and not one of its ancestor supervisors. Vigil
///   starts children in declaration order and stops them in reverse, so a dependency must be
///   declared before the worker that depends on it. A dependency cycle is reported once, as
///   `a -> b -> a`, instead of as an ordering problem: no reordering can fix a cycle.
/// - Numbers: `instances` in 1...1000, `max_restarts` >= 0, `period`, `ready_timeout`,
///   `shutdown` and the tree intervals > 0, backoff `initial` >= 0, `multiplier` >= 1,
///   `max` >= `initial`, `jitter` in [0, 1], `reset_after` > 0.
/// - argv is non-empty and argv[0] is non-empty; env names are non-empty without '=';
///   at most one worker has role `guardian`, and it is not a pool.
/// - `handoff: overlap` runs two instances of a worker for a moment, so it is refused where
///   two at once are never safe: on a `gateway` (two sessions with the exchange could both
///   trade) and on the `guardian` (two would answer the same restart question). It is fine
///   on a pool's instances (each is handed off on its own) and with `readiness: exec`.
/// - A supervisor has at least one child.
public enum TopologyValidator {
    /// The largest pool vigil accepts: a typo like `instances: 10000` should not fork-bomb
    /// the machine.
    public static let maxInstances = 1000

    /// One problem, with what it is about, so that a loader that knows where each field was
    /// written can point at the exact line (see `field`).
    public struct Finding: Hashable, Sendable, CustomStringConvertible {
        /// The problem, located at the offending spec or `depends_on` entry.
        public var diagnostic: Diagnostic
        /// The location of the spec the problem belongs to (`Topology.root.location` for
        /// tree-wide settings).
        public var spec: SourceLocation
        /// The field of that spec in topology-file spelling (`"instances"`,
        /// `"backoff.jitter"`, `"argv"`, `"env.NAME"`, `"name"`, `"heartbeat_interval"`), or
        /// nil when the diagnostic is already located at the exact entry (dependencies) or
        /// is about the spec as a whole.
        public var field: String?

        public init(_ diagnostic: Diagnostic, spec: SourceLocation, field: String?) {
            self.diagnostic = diagnostic
            self.spec = spec
            self.field = field
        }

        public var description: String { diagnostic.description }
    }

    /// Every problem in `topology`, in depth-first declaration order; an empty array means
    /// the topology is valid.
    public static func validate(_ topology: Topology) -> [Diagnostic] {
        findings(in: topology).map(\.diagnostic)
    }

    /// Every problem in `topology`, with the spec and field each one is about.
    public static func findings(in topology: Topology) -> [Finding] {
        var checker = Checker(topology)
        checker.run()
        var seen = Set<Diagnostic>()
        return checker.findings.filter { seen.insert($0.diagnostic).inserted }
    }

    /// Whether `name` is a valid worker or supervisor name: non-empty, `[A-Za-z0-9_-]` only.
    public static func isValidName(_ name: String) -> Bool {
        !name.isEmpty && name.utf8.allSatisfy(isNameByte)
    }

    /// The candidate closest to `word` by edit distance, if it is close enough to be a
    /// plausible typo (at most 1 edit for short words, 2 for longer ones; ties go to the
    /// earliest candidate); failing that, the only candidate that `word` (3 characters or
    /// more) is the beginning of, as in `cache` for `cache-warmer`.
    public static func closest(to word: String, in candidates: [String]) -> String? {
        let length = word.count
        let limit = length <= 3 ? 1 : 2
        var best: (name: String, distance: Int)?
        for c in candidates where c != word {
            // The distance is at least the difference in length: skip the O(n*m) table
            // when it cannot be close (a long unknown key, thousands of unknown names).
            guard abs(c.count - length) <= limit else { continue }
            let d = editDistance(word, c)
            if d <= limit, d < (best?.distance ?? Int.max) { best = (c, d) }
        }
        if let best { return best.name }
        guard word.count >= 3 else { return nil }
        let extensions = Set(candidates.filter { $0 != word && $0.hasPrefix(word) })
        return extensions.count == 1 ? extensions.first : nil
    }

    /// Levenshtein distance between two strings, by Character.
    public static func editDistance(_ a: String, _ b: String) -> Int {
        let a = Array(a), b = Array(b)
        if a.isEmpty { return b.count }
        if b.isEmpty { return a.count }
        var previous = Array(0...b.count)
        var current = [Int](repeating: 0, count: b.count + 1)
        for i in 1...a.count {
            current[0] = i
            for j in 1...b.count {
                let cost = a[i - 1] == b[j - 1] ? 0 : 1
                current[j] = Swift.min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
            }
            swap(&previous, &current)
        }
        return previous[b.count]
    }

    static func isNameByte(_ b: UInt8) -> Bool {
        (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A)
            || b == UInt8(ascii: "_") || b == UInt8(ascii: "-")
    }
}

// MARK: - The checker

extension TopologyValidator {
    /// A node of the tree, flattened in depth-first pre-order (index 0 is the root).
    fileprivate struct Node {
        var name: String
        var isSupervisor: Bool
        var location: SourceLocation
        var parent: Int?
        /// The pre-order index of the last node of this node's subtree (itself for a worker).
        var last: Int
        var children: [Int] = []
        var dependsOn: [Dependency] = []
    }

    /// One `depends_on` entry that names a real node that is neither the dependent nor one
    /// of its ancestors.
    fileprivate struct Edge {
        var from: Int
        var to: Int
        var dependency: Dependency
    }

    fileprivate struct Checker {
        let topology: Topology
        var nodes: [Node] = []
        var findings: [Finding] = []
        /// First node with each name.
        var firstIndex: [String: Int] = [:]

        init(_ topology: Topology) { self.topology = topology }

        mutating func report(_ location: SourceLocation, _ message: String,
                             spec: SourceLocation, field: String?) {
            findings.append(Finding(Diagnostic(location, message), spec: spec, field: field))
        }

        mutating func run() {
            flatten(.supervisor(topology.root), parent: nil)
            checkTreeSettings()
            var guardian: WorkerSpec?
            var cursor = 0
            walk(.supervisor(topology.root), cursor: &cursor, guardian: &guardian)
            checkDependencies()
            if guardian == nil {
                for case .worker(let w) in allChildren(topology.root) where w.guarded {
                    report(w.location, "worker '\(w.name)' is guarded but no worker has role: guardian, so it could never be restarted (every restart would put the tree in safe mode); add a guardian or drop guarded",
                           spec: w.location, field: "guarded")
                }
            }
        }

        func allChildren(_ s: SupervisorSpec) -> [ChildSpec] {
            s.children.flatMap { c -> [ChildSpec] in
                if case .supervisor(let inner) = c { return [c] + allChildren(inner) }
                return [c]
            }
        }

        // MARK: Flattening

        @discardableResult
        mutating func flatten(_ child: ChildSpec, parent: Int?) -> Int {
            let index = nodes.count
            switch child {
            case .worker(let w):
                nodes.append(Node(name: w.name, isSupervisor: false, location: w.location,
                                  parent: parent, last: index, dependsOn: w.dependsOn))
            case .supervisor(let s):
                nodes.append(Node(name: s.name, isSupervisor: true, location: s.location,
                                  parent: parent, last: index))
                for c in s.children {
                    let ci = flatten(c, parent: index)
                    nodes[index].children.append(ci)
                }
                nodes[index].last = nodes.count - 1
            }
            return index
        }

        // MARK: Per-spec checks

        mutating func checkTreeSettings() {
            let root = topology.root.location
            let s = topology.settings
            if s.heartbeatInterval <= .zero {
                report(root, "heartbeat_interval must be longer than 0s, got \(s.heartbeatInterval.topologyText)",
                       spec: root, field: "heartbeat_interval")
            }
            if s.sampleInterval <= .zero {
                report(root, "sample_interval must be longer than 0s, got \(s.sampleInterval.topologyText)",
                       spec: root, field: "sample_interval")
            }
        }

        /// Visits the specs in the same pre-order as `flatten`; `cursor` is the node index.
        mutating func walk(_ child: ChildSpec, cursor: inout Int, guardian: inout WorkerSpec?) {
            let index = cursor
            checkName(child, index: index)
            cursor += 1
            switch child {
            case .worker(let w):
                checkWorker(w, guardian: &guardian)
            case .supervisor(let s):
                checkSupervisor(s, isRoot: index == 0)
                for c in s.children { walk(c, cursor: &cursor, guardian: &guardian) }
            }
        }

        mutating func checkName(_ child: ChildSpec, index: Int) {
            let name = child.name
            let loc = child.location
            if name.isEmpty {
                report(loc, "a \(kind(child)) has an empty name: give it a name made of letters, digits, '_' and '-'",
                       spec: loc, field: "name")
                return
            }
            if !TopologyValidator.isValidName(name) {
                var message = "invalid name '\(name)': use only letters, digits, '_' and '-'"
                if name.contains(".") {
                    message += " (no dots: the instances of a pool are named '\(name).1', '\(name).2', ...)"
                } else {
                    let fixed = String(name.map { c in c.isASCII && (c.isLetter || c.isNumber || c == "_" || c == "-") ? c : "-" })
                    message += ", e.g. '\(fixed)'"
                }
                report(loc, message, spec: loc, field: "name")
            }
            if let first = firstIndex[name] {
                report(loc, "duplicate name '\(name)' (first defined at \(nodes[first].location)): every worker and supervisor needs its own name",
                       spec: loc, field: "name")
            } else {
                firstIndex[name] = index
            }
        }

        func kind(_ child: ChildSpec) -> String {
            if case .worker = child { return "worker" }
            return "supervisor"
        }

        mutating func checkWorker(_ w: WorkerSpec, guardian: inout WorkerSpec?) {
            let loc = w.location
            if w.argv.isEmpty {
                let example = TopologyValidator.isValidName(w.name) ? w.name : "program"
                let what = w.name.isEmpty ? "this worker" : "worker '\(w.name)'"
                report(loc, "\(what) has no argv: write the program to run and its arguments, e.g. argv: [\(example), --flag]",
                       spec: loc, field: "argv")
            } else if w.argv[0].isEmpty {
                report(loc, "argv[0] is empty: it must name the program to run",
                       spec: loc, field: "argv[0]")
            }
            for key in w.env.keys.sorted() where key.isEmpty || key.contains("=") || key.contains("\0") {
                report(loc, "invalid environment variable name '\(key)': it must not be empty or contain '='",
                       spec: loc, field: "env.\(key)")
            }
            if let wd = w.workingDirectory, wd.isEmpty {
                report(loc, "working_directory is empty: leave it out to run in vigil's working directory",
                       spec: loc, field: "working_directory")
            }
            if w.instances < 1 || w.instances > TopologyValidator.maxInstances {
                report(loc, "instances must be between 1 and \(TopologyValidator.maxInstances), got \(w.instances)",
                       spec: loc, field: "instances")
            }
            if w.maxCheckpointBytes < 0 || w.maxCheckpointBytes > 16_000 {
                report(loc, "max_checkpoint_bytes must be between 0 and 16000 (a checkpoint travels in one frame), got \(w.maxCheckpointBytes)",
                       spec: loc, field: "max_checkpoint_bytes")
            }
            if let d = w.watchdog, d <= .zero {
                report(loc, "watchdog must be longer than 0s, got \(d.topologyText) (leave it out for no watchdog)",
                       spec: loc, field: "watchdog")
            }
            if w.readyTimeout <= .zero {
                report(loc, "ready_timeout must be longer than 0s, got \(w.readyTimeout.topologyText)",
                       spec: loc, field: "ready_timeout")
            }
            if case .timeout(let d) = w.shutdown, d <= .zero {
                report(loc, "shutdown must be longer than 0s, got \(d.topologyText) (write brutal_kill to kill at once)",
                       spec: loc, field: "shutdown")
            }
            checkBackoff(w.backoff, spec: loc)
            if w.role == .guardian {
                if let first = guardian {
                    report(loc, "only one worker may have role guardian, and '\(first.name)' already has it (at \(first.location))",
                           spec: loc, field: "role")
                } else {
                    guardian = w
                }
                if w.instances > 1 {
                    report(loc, "the guardian '\(w.name)' must not be a pool: vigil asks exactly one guardian, remove instances: \(w.instances)",
                           spec: loc, field: "role")
                }
            }
            if w.handoff == .overlap, let role = w.role, role == .gateway || role == .guardian {
                let why = role == .gateway
                    ? "a gateway holds the exchange session, and two sessions at once could both trade"
                    : "vigil asks exactly one guardian, and two at once would both answer"
                report(loc, "worker '\(w.name)' has role \(role.rawValue) and cannot hand off with overlap: \(why); use handoff: stop_first",
                       spec: loc, field: "handoff")
            }
        }

        mutating func checkSupervisor(_ s: SupervisorSpec, isRoot: Bool) {
            let loc = s.location
            if s.intensity.maxRestarts < 0 {
                report(loc, "max_restarts must be 0 or more, got \(s.intensity.maxRestarts)",
                       spec: loc, field: "max_restarts")
            }
            if s.intensity.period <= .zero {
                report(loc, "period must be longer than 0s, got \(s.intensity.period.topologyText)",
                       spec: loc, field: "period")
            }
            checkBackoff(s.backoff, spec: loc)
            if s.children.isEmpty {
                let what = (isRoot ? "the root supervisor" : s.name.isEmpty ? "this supervisor" : "supervisor")
                    + (s.name.isEmpty ? "" : " '\(s.name)'")
                report(loc, "\(what) has no children: list its workers and supervisors under children:",
                       spec: loc, field: "children")
            }
        }

        mutating func checkBackoff(_ b: BackoffPolicy, spec loc: SourceLocation) {
            if b.initial < .zero {
                report(loc, "backoff.initial must not be negative, got \(b.initial.topologyText)",
                       spec: loc, field: "backoff.initial")
            }
            if !(b.multiplier >= 1) || !b.multiplier.isFinite {
                report(loc, "backoff.multiplier must be a number of at least 1 (1 keeps the delay constant), got \(b.multiplier)",
                       spec: loc, field: "backoff.multiplier")
            }
            if b.max < b.initial {
                report(loc, "backoff.max (\(b.max.topologyText)) must not be shorter than backoff.initial (\(b.initial.topologyText))",
                       spec: loc, field: "backoff.max")
            }
            if !(b.jitter >= 0 && b.jitter <= 1) {
                report(loc, "backoff.jitter must be between 0 and 1 (a fraction of the delay), got \(b.jitter)",
                       spec: loc, field: "backoff.jitter")
            }
            if b.resetAfter <= .zero {
                report(loc, "backoff.reset_after must be longer than 0s, got \(b.resetAfter.topologyText)",
                       spec: loc, field: "backoff.reset_after")
            }
        }

        // MARK: Dependencies

        func isAncestor(_ a: Int, of b: Int) -> Bool {
            var p = nodes[b].parent
            while let i = p {
                if i == a { return true }
                p = nodes[i].parent
            }
            return false
        }

        func describe(_ i: Int) -> String {
            nodes[i].isSupervisor ? "supervisor '\(nodes[i].name)'" : "'\(nodes[i].name)'"
        }

        mutating func checkDependencies() {
            var edges: [Edge] = []
            let declared = nodes.map(\.name)
            for (w, node) in nodes.enumerated() where !node.isSupervisor {
                var listed = Set<String>()
                for dep in node.dependsOn {
                    let name = dep.name
                    let here = dep.location
                    if name.isEmpty {
                        report(here, "empty name in depends_on of '\(node.name)'", spec: node.location, field: nil)
                        continue
                    }
                    if name == node.name {
                        report(here, "'\(node.name)' depends on itself: remove '\(name)' from its depends_on",
                               spec: node.location, field: nil)
                        continue
                    }
                    guard let target = firstIndex[name] else {
                        var message = "'\(node.name)' depends on '\(name)', but no worker, pool or supervisor has that name"
                        if let dot = name.lastIndex(of: "."), firstIndex[String(name[..<dot])] != nil {
                            let base = String(name[..<dot])
                            message = "'\(node.name)' depends on '\(name)', a single instance of a pool: depend on the pool '\(base)' instead (all its instances)"
                        } else if let guess = TopologyValidator.closest(to: name, in: declared) {
                            message += " (did you mean '\(guess)'?)"
                        }
                        report(here, message, spec: node.location, field: nil)
                        continue
                    }
                    if isAncestor(target, of: w) {
                        report(here, "'\(node.name)' depends on supervisor '\(name)', which contains it: a supervisor is up only when all its children are, so this can never be met; remove '\(name)' from depends_on",
                               spec: node.location, field: nil)
                        continue
                    }
                    if !listed.insert(name).inserted {
                        report(here, "'\(name)' is listed twice in depends_on of '\(node.name)'",
                               spec: node.location, field: nil)
                        continue
                    }
                    edges.append(Edge(from: w, to: target, dependency: dep))
                }
            }

            // Adjacency for cycle search: a worker needs its dependencies; a supervisor
            // "needs" its children (depending on it means depending on all of them).
            var next = nodes.map(\.children)
            for e in edges { next[e.from].append(e.to) }

            // Every cycle contains at least one dependency declared after its dependent
            // (declaration order is a topological order of the backward edges), so looking
            // for a way back from each such forward edge finds every cycle.
            var covered = Set<Int>()  // indices into `edges`
            var edgeIndex: [Int: [Int: Int]] = [:]
            for (i, e) in edges.enumerated() { edgeIndex[e.from, default: [:]][e.to] = i }
            for (i, e) in edges.enumerated() where e.to > e.from {
                if covered.contains(i) { continue }
                if let back = shortestPath(from: e.to, to: e.from, next: next) {
                    let cycle = [e.from] + back
                    for (a, b) in zip(cycle, cycle.dropFirst()) {
                        if let k = edgeIndex[a]?[b] { covered.insert(k) }
                    }
                    var message = "dependency cycle: " + cycle.map { nodes[$0].name }.joined(separator: " -> ")
                    let supervisors = cycle.filter { nodes[$0].isSupervisor }
                    if let s = supervisors.first {
                        message += " (depending on supervisor '\(nodes[s].name)' means depending on every worker under it)"
                    }
                    message += "; no start order can satisfy it: remove one of these depends_on entries"
                    report(e.dependency.location, message, spec: nodes[e.from].location, field: nil)
                } else {
                    let (moveTarget, before, parent) = orderingAdvice(dependent: e.from, dependency: e.to)
                    let inParent = parent == 0 ? "" : " in supervisor '\(nodes[parent].name)'"
                    report(e.dependency.location,
                           "'\(nodes[e.from].name)' depends on \(describe(e.to)), which is declared later (at \(nodes[e.to].location)): vigil starts children in declaration order and stops them in reverse, so a dependency must be declared before the workers that depend on it; move \(describe(moveTarget)) above \(describe(before))\(inParent)",
                           spec: nodes[e.from].location, field: nil)
                }
            }
        }

        /// Which sibling to move above which to fix a forward dependency: the children of
        /// the lowest common ancestor that contain the dependency and the dependent.
        func orderingAdvice(dependent: Int, dependency: Int) -> (move: Int, above: Int, parent: Int) {
            func chain(_ i: Int) -> [Int] {
                var c = [i]
                var p = nodes[i].parent
                while let x = p { c.append(x); p = nodes[x].parent }
                return c.reversed()  // root first
            }
            let a = chain(dependent), b = chain(dependency)
            var k = 0
            while k < a.count, k < b.count, a[k] == b[k] { k += 1 }
            // k >= 1 (both start at the root) and neither is an ancestor of the other.
            return (b[k], a[k], a[k - 1])
        }

        /// Breadth-first shortest path from `start` to `goal`, both included.
        func shortestPath(from start: Int, to goal: Int, next: [[Int]]) -> [Int]? {
            var previous = [Int](repeating: -1, count: nodes.count)
            previous[start] = start
            var queue = [start]
            var head = 0
            while head < queue.count {
                let x = queue[head]
                head += 1
                if x == goal {
                    var path: [Int] = []
                    var y = goal
                    while y != start { path.append(y); y = previous[y] }
                    path.append(start)
                    return path.reversed()
                }
                for y in next[x] where previous[y] == -1 {
                    previous[y] = x
                    queue.append(y)
                }
            }
            return nil
        }
    }
}
