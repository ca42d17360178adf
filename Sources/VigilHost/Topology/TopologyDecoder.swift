import VigilCore

/// A field of one spec, as the validator names it (`TopologyValidator.Finding.field`).
struct FieldRef: Hashable, Sendable {
    var spec: SourceLocation
    var field: String
}

/// A decoded value and where it was written.
struct Located<Value> {
    var value: Value
    var location: SourceLocation
}

/// The keys each kind of mapping accepts.
enum TopologyKeys {
    static let top = ["name", "strategy", "max_restarts", "period", "heartbeat_interval", "guardian_timeout",
                      "sample_interval", "adopt_window", "metrics", "defaults", "children"]
    static let supervisor = ["supervisor", "strategy", "max_restarts", "period", "backoff", "children"]
    static let worker = ["worker", "argv", "env", "working_directory", "restart", "shutdown",
                         "ready_timeout", "depends_on", "backoff", "instances", "role", "readiness", "watchdog",
                         "guarded", "safe_mode", "max_checkpoint_bytes", "handoff", "memory_limit"]
    static let defaults = ["restart", "shutdown", "ready_timeout", "watchdog", "backoff", "env", "working_directory"]
    static let backoff = ["initial", "multiplier", "max", "jitter", "reset_after"]
}

/// Turns a `YAMLNode` into a `Topology`, type-checking every value and collecting every
/// problem instead of stopping at the first. Values that fail to decode keep their model
/// default and are remembered in `reported`, so the validator's findings about them are not
/// reported a second time. Pure apart from `baseDirectory`, which the caller computes.
struct TopologyDecoder {
    let file: String
    /// The absolute directory of the topology file: relative paths are relative to it.
    let baseDirectory: String

    private(set) var diagnostics: [Diagnostic] = []
    /// Where each field of each spec was written (in the spec or in `defaults:`).
    private(set) var fieldLocations: [FieldRef: SourceLocation] = [:]
    /// Fields already reported as undecodable.
    private(set) var reported: Set<FieldRef> = []

    init(file: String, baseDirectory: String) {
        self.file = file
        self.baseDirectory = baseDirectory
    }

    // MARK: Entry point

    mutating func decode(_ document: YAMLNode?) -> Topology {
        let start = SourceLocation(file: file, line: 1, column: 1)
        var root = SupervisorSpec(name: "", location: start)
        var settings = TreeSettings()
        guard let document else {
            diagnostics.append(Diagnostic(start, "the topology file is empty: it needs at least the root supervisor's name: and its children:"))
            reported.insert(FieldRef(spec: start, field: "name"))
            reported.insert(FieldRef(spec: start, field: "children"))
            return Topology(root: root, settings: settings, file: file)
        }
        guard case .mapping = document else {
            diagnostics.append(Diagnostic(document.location, "the top level must be a mapping with name:, children: and other settings, got \(document.summary)"))
            reported.insert(FieldRef(spec: start, field: "name"))
            reported.insert(FieldRef(spec: start, field: "children"))
            return Topology(root: root, settings: settings, file: file)
        }
        let fields = self.fields(of: document, in: "the top level", allowed: TopologyKeys.top, hint: topLevelHint)

        let spec = fields["name"]?.value.location ?? document.location
        root.location = spec
        if let name = fields["name"] {
            root.name = string(name.value, FieldRef(spec: spec, field: "name"), expected: "the root supervisor's name, like name: trading") ?? ""
        } else {
            fail(FieldRef(spec: spec, field: "name"), at: document.location,
                 "missing name: the top level needs the root supervisor's name, e.g. name: trading")
        }
        decodeSupervisorSettings(fields, into: &root)

        if let n = fields["heartbeat_interval"],
           let d = duration(n.value, FieldRef(spec: spec, field: "heartbeat_interval")) {
            settings.heartbeatInterval = d
        }
        if let n = fields["guardian_timeout"],
           let d = duration(n.value, FieldRef(spec: spec, field: "guardian_timeout")) {
            settings.guardianTimeout = d
        }
        if let n = fields["sample_interval"],
           let d = duration(n.value, FieldRef(spec: spec, field: "sample_interval")) {
            settings.sampleInterval = d
        }
        if let n = fields["adopt_window"],
           let d = duration(n.value, FieldRef(spec: spec, field: "adopt_window")) {
            settings.adoptWindow = d
        }
        if let n = fields["metrics"],
           let text = string(n.value, FieldRef(spec: spec, field: "metrics"), expected: "a loopback address and port like 127.0.0.1:9464") {
            switch MetricsEndpoint.parse(text) {
            case .success(let endpoint): settings.metrics = endpoint
            case .failure(let e): fail(FieldRef(spec: spec, field: "metrics"), at: n.value.location, e.message)
            }
        }
        let defaults = fields["defaults"].map { decodeDefaults($0.value) } ?? WorkerDefaults()
        root.children = decodeChildren(fields["children"], of: spec, defaults: defaults)
        return Topology(root: root, settings: settings, file: file)
    }

    private func topLevelHint(_ key: String) -> String? {
        switch key {
        case "supervisor": "the top level is the root supervisor: write name: instead of supervisor:"
        case "worker": "workers go in the children: list, as `- worker: NAME`"
        case "backoff": "the root supervisor is never restarted, so it has no backoff"
        default: nil
        }
    }

    // MARK: Supervisors and children

    /// strategy, max_restarts, period (and backoff, for nested supervisors).
    private mutating func decodeSupervisorSettings(_ fields: [String: (key: YAMLScalar, value: YAMLNode)],
                                                   into s: inout SupervisorSpec) {
        let spec = s.location
        if let n = fields["strategy"], let v = enumeration(n.value, FieldRef(spec: spec, field: "strategy"), Strategy.self) {
            s.strategy = v
        }
        if let n = fields["max_restarts"], let v = integer(n.value, FieldRef(spec: spec, field: "max_restarts")) {
            s.intensity.maxRestarts = v
        }
        if let n = fields["period"], let v = duration(n.value, FieldRef(spec: spec, field: "period")) {
            s.intensity.period = v
        }
        if let n = fields["backoff"] {
            let b = decodeBackoff(n.value, spec: spec, context: "backoff of supervisor '\(s.name)'")
            s.backoff = apply(b, over: BackoffFields(), spec: spec)
        }
    }

    private mutating func decodeChildren(_ entry: (key: YAMLScalar, value: YAMLNode)?, of spec: SourceLocation,
                                         defaults: WorkerDefaults) -> [ChildSpec] {
        guard let entry else { return [] }  // the validator reports "no children"
        let ref = FieldRef(spec: spec, field: "children")
        fieldLocations[ref] = entry.value.location
        guard case .sequence(let items, _) = entry.value else {
            fail(ref, at: entry.value.location,
                 "children: expected a list of `- worker: NAME` and `- supervisor: NAME` entries, got \(entry.value.summary)")
            return []
        }
        var children: [ChildSpec] = []
        for item in items {
            if let child = decodeChild(item, defaults: defaults) { children.append(child) }
        }
        return children
    }

    private mutating func decodeChild(_ node: YAMLNode, defaults: WorkerDefaults) -> ChildSpec? {
        guard case .mapping(let pairs, let mappingLocation) = node else {
            var message = "expected a child like `- worker: NAME` or `- supervisor: NAME`, got \(node.summary)"
            if case .scalar(let s) = node, !s.isNull, TopologyValidator.isValidName(s.value) {
                message += " (write `- worker: \(s.value)` followed by its argv:)"
            }
            diagnostics.append(Diagnostic(node.location, message))
            return nil
        }
        let kinds = pairs.compactMap { pair -> YAMLScalar? in
            guard case .scalar(let k) = pair.key, k.value == "worker" || k.value == "supervisor" else { return nil }
            return k
        }
        guard let kind = kinds.first else {
            diagnostics.append(Diagnostic(mappingLocation, "this child has neither worker: nor supervisor:; start the entry with `- worker: NAME` or `- supervisor: NAME`"))
            return nil
        }
        if let other = kinds.dropFirst().first(where: { $0.value != kind.value }) {
            diagnostics.append(Diagnostic(other.location, "a child is either a worker or a supervisor, not both: this entry already has \(kind.value): at line \(kind.location.line); split it into two entries"))
            return nil
        }
        if kind.value == "worker" {
            return .worker(decodeWorker(node, defaults: defaults))
        }
        return .supervisor(decodeSupervisor(node, defaults: defaults))
    }

    /// The name given by `worker:` / `supervisor:`, and the spec location (where the name is).
    private mutating func nameAndLocation(_ fields: [String: (key: YAMLScalar, value: YAMLNode)], kind: String,
                                          mapping: SourceLocation) -> (String, SourceLocation) {
        guard let entry = fields[kind] else { return ("", mapping) }
        let spec = entry.value.location
        let name = string(entry.value, FieldRef(spec: spec, field: "name"),
                          expected: "the \(kind)'s name, like `- \(kind): \(kind == "worker" ? "db-watchdog" : "data")`",
                          label: kind) ?? ""
        return (name, spec)
    }

    private mutating func decodeSupervisor(_ node: YAMLNode, defaults: WorkerDefaults) -> SupervisorSpec {
        let peek = rawKeys(node)
        let (name, spec) = nameAndLocation(peek, kind: "supervisor", mapping: node.location)
        let context = name.isEmpty ? "a supervisor" : "supervisor '\(name)'"
        let fields = self.fields(of: node, in: context, allowed: TopologyKeys.supervisor) { key in
            switch key {
            case "depends_on": "only workers have depends_on: put it on the workers under this supervisor"
            case "argv", "env", "working_directory", "restart", "shutdown", "ready_timeout", "instances", "role", "readiness", "watchdog",
                 "guarded", "safe_mode", "max_checkpoint_bytes", "handoff", "memory_limit":
                "\(key) is a worker setting: put it on the workers under this supervisor, or in defaults:"
            default: nil
            }
        }
        var s = SupervisorSpec(name: name, location: spec)
        decodeSupervisorSettings(fields, into: &s)
        s.children = decodeChildren(fields["children"], of: spec, defaults: defaults)
        return s
    }

    private mutating func decodeWorker(_ node: YAMLNode, defaults: WorkerDefaults) -> WorkerSpec {
        let peek = rawKeys(node)
        let (name, spec) = nameAndLocation(peek, kind: "worker", mapping: node.location)
        let context = name.isEmpty ? "a worker" : "worker '\(name)'"
        let fields = self.fields(of: node, in: context, allowed: TopologyKeys.worker) { key in
            switch key {
            case "children", "strategy", "max_restarts", "period":
                "\(key) belongs to a supervisor: a worker is one program (or a pool of instances)"
            case "command", "cmd", "exec", "program", "args":
                "the program and its arguments go in argv: [program, arg, ...]"
            default: nil
            }
        }
        var w = WorkerSpec(name: name, argv: [], location: spec)

        if let n = fields["argv"] {
            w.argv = argv(n.value, spec: spec)
        }
        // Settings that defaults: may provide.
        var local = WorkerDefaults()
        decodeDefaultableFields(fields, spec: spec, context: context, into: &local)
        let merged = local.over(defaults)
        if let r = merged.restart {
            w.restart = r.value
            fieldLocations[FieldRef(spec: spec, field: "restart")] = r.location
        }
        if let s = merged.shutdown {
            w.shutdown = s.value
            fieldLocations[FieldRef(spec: spec, field: "shutdown")] = s.location
        }
        if let t = merged.readyTimeout {
            w.readyTimeout = t.value
            fieldLocations[FieldRef(spec: spec, field: "ready_timeout")] = t.location
        }
        if let t = merged.watchdog {
            w.watchdog = t.value
            fieldLocations[FieldRef(spec: spec, field: "watchdog")] = t.location
        }
        if let d = merged.workingDirectory {
            w.workingDirectory = d.value
            fieldLocations[FieldRef(spec: spec, field: "working_directory")] = d.location
        }
        for (key, value) in merged.env {
            w.env[key] = value.value
            fieldLocations[FieldRef(spec: spec, field: "env.\(key)")] = value.location
        }
        w.backoff = apply(merged.backoff, over: BackoffFields(), spec: spec)

        if let n = fields["depends_on"] {
            w.dependsOn = dependencies(n.value, spec: spec)
        }
        if let n = fields["instances"], let v = integer(n.value, FieldRef(spec: spec, field: "instances")) {
            w.instances = v
        }
        if let n = fields["guarded"], let v = boolean(n.value, FieldRef(spec: spec, field: "guarded")) {
            w.guarded = v
        }
        if let n = fields["safe_mode"], let v = enumeration(n.value, FieldRef(spec: spec, field: "safe_mode"), SafeModeAction.self) {
            w.safeMode = v
        }
        if let n = fields["max_checkpoint_bytes"], let v = integer(n.value, FieldRef(spec: spec, field: "max_checkpoint_bytes")) {
            w.maxCheckpointBytes = v
        }
        if let n = fields["readiness"], let v = enumeration(n.value, FieldRef(spec: spec, field: "readiness"), Readiness.self) {
            w.readiness = v
        }
        if let n = fields["handoff"], let v = enumeration(n.value, FieldRef(spec: spec, field: "handoff"), HandoffMode.self) {
            w.handoff = v
        }
        if let n = fields["role"], let v = enumeration(n.value, FieldRef(spec: spec, field: "role"), WorkerRole.self) {
            w.role = v
        }
        if let n = fields["memory_limit"], let v = memorySize(n.value, FieldRef(spec: spec, field: "memory_limit")) {
            w.memoryLimit = v
        }
        return w
    }

    // MARK: Defaults

    /// Worker settings that `defaults:` can give, each with where it was written.
    struct WorkerDefaults {
        var restart: Located<RestartType>?
        var shutdown: Located<Shutdown>?
        var readyTimeout: Located<Duration>?
        var watchdog: Located<Duration>?
        var workingDirectory: Located<String>?
        var env: [String: Located<String>] = [:]
        var backoff = BackoffFields()

        /// These values, falling back to `base` field by field; env maps are merged.
        func over(_ base: WorkerDefaults) -> WorkerDefaults {
            var m = self
            m.restart = restart ?? base.restart
            m.shutdown = shutdown ?? base.shutdown
            m.readyTimeout = readyTimeout ?? base.readyTimeout
            m.watchdog = watchdog ?? base.watchdog
            m.workingDirectory = workingDirectory ?? base.workingDirectory
            m.env = base.env.merging(env) { _, mine in mine }
            m.backoff = backoff.over(base.backoff)
            return m
        }
    }

    private mutating func decodeDefaults(_ node: YAMLNode) -> WorkerDefaults {
        var d = WorkerDefaults()
        guard case .mapping = node else {
            diagnostics.append(Diagnostic(node.location, "defaults: expected a mapping of worker settings (\(TopologyKeys.defaults.joined(separator: ", "))), got \(node.summary)"))
            return d
        }
        let fields = self.fields(of: node, in: "defaults", allowed: TopologyKeys.defaults) { key in
            switch key {
            case "argv", "depends_on", "instances", "role", "readiness":
                "\(key) cannot have a default: set it on each worker"
            default: nil
            }
        }
        decodeDefaultableFields(fields, spec: node.location, context: "defaults", into: &d)
        return d
    }

    private mutating func decodeDefaultableFields(_ fields: [String: (key: YAMLScalar, value: YAMLNode)],
                                                  spec: SourceLocation, context: String,
                                                  into d: inout WorkerDefaults) {
        if let n = fields["restart"], let v = enumeration(n.value, FieldRef(spec: spec, field: "restart"), RestartType.self) {
            d.restart = Located(value: v, location: n.value.location)
        }
        if let n = fields["shutdown"], let v = shutdown(n.value, FieldRef(spec: spec, field: "shutdown")) {
            d.shutdown = Located(value: v, location: n.value.location)
        }
        if let n = fields["watchdog"], let v = duration(n.value, FieldRef(spec: spec, field: "watchdog")) {
            d.watchdog = Located(value: v, location: n.value.location)
        }
        if let n = fields["ready_timeout"], let v = duration(n.value, FieldRef(spec: spec, field: "ready_timeout")) {
            d.readyTimeout = Located(value: v, location: n.value.location)
        }
        if let n = fields["working_directory"],
           let v = string(n.value, FieldRef(spec: spec, field: "working_directory"), expected: "a directory path") {
            d.workingDirectory = Located(value: v.isEmpty ? v : Paths.resolve(v, against: baseDirectory),
                                         location: n.value.location)
        }
        if let n = fields["env"] {
            d.env = environment(n.value, spec: spec)
        }
        if let n = fields["backoff"] {
            d.backoff = decodeBackoff(n.value, spec: spec, context: "backoff of \(context)")
        }
    }

    // MARK: Backoff

    struct BackoffFields {
        var initial: Located<Duration>?
        var multiplier: Located<Double>?
        var max: Located<Duration>?
        var jitter: Located<Double>?
        var resetAfter: Located<Duration>?

        func over(_ base: BackoffFields) -> BackoffFields {
            BackoffFields(initial: initial ?? base.initial, multiplier: multiplier ?? base.multiplier,
                          max: max ?? base.max, jitter: jitter ?? base.jitter,
                          resetAfter: resetAfter ?? base.resetAfter)
        }
    }

    private mutating func decodeBackoff(_ node: YAMLNode, spec: SourceLocation, context: String) -> BackoffFields {
        var b = BackoffFields()
        guard case .mapping = node else {
            fail(FieldRef(spec: spec, field: "backoff"), at: node.location,
                 "backoff: expected a mapping like {initial: 100ms, multiplier: 2, max: 30s, jitter: 0.2, reset_after: 1m}, got \(node.summary)")
            return b
        }
        let fields = self.fields(of: node, in: context, allowed: TopologyKeys.backoff)
        func ref(_ f: String) -> FieldRef { FieldRef(spec: spec, field: "backoff.\(f)") }
        if let n = fields["initial"], let v = duration(n.value, ref("initial")) {
            b.initial = Located(value: v, location: n.value.location)
        }
        if let n = fields["multiplier"], let v = number(n.value, ref("multiplier")) {
            b.multiplier = Located(value: v, location: n.value.location)
        }
        if let n = fields["max"], let v = duration(n.value, ref("max")) {
            b.max = Located(value: v, location: n.value.location)
        }
        if let n = fields["jitter"], let v = number(n.value, ref("jitter")) {
            b.jitter = Located(value: v, location: n.value.location)
        }
        if let n = fields["reset_after"], let v = duration(n.value, ref("reset_after")) {
            b.resetAfter = Located(value: v, location: n.value.location)
        }
        return b
    }

    /// A policy from `fields` over the model defaults, recording where each field came from.
    private mutating func apply(_ fields: BackoffFields, over base: BackoffFields, spec: SourceLocation) -> BackoffPolicy {
        let f = fields.over(base)
        var p = BackoffPolicy()
        func note(_ name: String, _ l: SourceLocation?) {
            if let l { fieldLocations[FieldRef(spec: spec, field: "backoff.\(name)")] = l }
        }
        if let v = f.initial { p.initial = v.value }
        if let v = f.multiplier { p.multiplier = v.value }
        if let v = f.max { p.max = v.value }
        if let v = f.jitter { p.jitter = v.value }
        if let v = f.resetAfter { p.resetAfter = v.value }
        note("initial", f.initial?.location)
        note("multiplier", f.multiplier?.location)
        note("max", f.max?.location)
        note("jitter", f.jitter?.location)
        note("reset_after", f.resetAfter?.location)
        return p
    }

    // MARK: Mappings

    /// The pairs of a mapping by key, without reporting anything (to find the name first).
    private func rawKeys(_ node: YAMLNode) -> [String: (key: YAMLScalar, value: YAMLNode)] {
        guard case .mapping(let pairs, _) = node else { return [:] }
        var out: [String: (key: YAMLScalar, value: YAMLNode)] = [:]
        for p in pairs {
            if case .scalar(let k) = p.key, out[k.value] == nil { out[k.value] = (k, p.value) }
        }
        return out
    }

    /// The pairs of a mapping by key; reports keys that are not scalars, duplicates (the
    /// first one wins) and keys not in `allowed`, with a did-you-mean and `hint` if any.
    private mutating func fields(of node: YAMLNode, in context: String, allowed: [String],
                                 hint: (String) -> String? = { _ in nil }) -> [String: (key: YAMLScalar, value: YAMLNode)] {
        guard case .mapping(let pairs, _) = node else { return [:] }
        var out: [String: (key: YAMLScalar, value: YAMLNode)] = [:]
        for p in pairs {
            guard case .scalar(let key) = p.key else {
                diagnostics.append(Diagnostic(p.key.location, "a key in \(context) must be a plain word, got \(p.key.summary)"))
                continue
            }
            if let first = out[key.value] {
                diagnostics.append(Diagnostic(key.location, "duplicate key '\(key.value)' in \(context) (first given at line \(first.key.location.line)): keep only one"))
                continue
            }
            guard allowed.contains(key.value) else {
                var message = "unknown key '\(key.value)' in \(context)"
                if key.value == "<<" {
                    message += ": YAML merge keys are not supported; use defaults: for settings shared by all workers"
                } else if let h = hint(key.value) {
                    message += ": \(h)"
                }
                let guess = hint(key.value) == nil ? Self.suggestion(for: key.value, in: allowed) : nil
                message += " (" + (guess.map { "did you mean '\($0)'? " } ?? "")
                message += "expected one of: \(allowed.sorted().joined(separator: ", ")))"
                diagnostics.append(Diagnostic(key.location, message))
                continue
            }
            out[key.value] = (key, p.value)
        }
        return out
    }

    /// `readyTimeout`, `ready-timeout`, `Ready_Timeout` -> `ready_timeout`; else a close typo.
    static func suggestion(for word: String, in candidates: [String]) -> String? {
        func squash(_ s: String) -> String { String(s.lowercased().filter { $0 != "_" && $0 != "-" }) }
        if let exact = candidates.first(where: { squash($0) == squash(word) }) { return exact }
        return TopologyValidator.closest(to: word, in: candidates)
    }

    // MARK: Scalars

    private mutating func fail(_ ref: FieldRef, at location: SourceLocation, _ message: String) {
        diagnostics.append(Diagnostic(location, message))
        reported.insert(ref)
    }

    /// The text of a scalar; `label` is the key as written, if it differs from `ref.field`.
    private mutating func scalar(_ node: YAMLNode, _ ref: FieldRef, expected: String, label: String? = nil) -> String? {
        fieldLocations[ref] = node.location
        guard case .scalar(let s) = node, !s.isNull else {
            fail(ref, at: node.location, "\(label ?? ref.field): expected \(expected), got \(node.summary)")
            return nil
        }
        return s.value
    }

    private mutating func string(_ node: YAMLNode, _ ref: FieldRef, expected: String, label: String? = nil) -> String? {
        scalar(node, ref, expected: expected, label: label)
    }

    private mutating func duration(_ node: YAMLNode, _ ref: FieldRef) -> Duration? {
        let expected = "a duration like 500ms, 5s or 2m"
        guard let text = scalar(node, ref, expected: expected) else { return nil }
        if let d = Duration(topologyText: text) { return d }
        var message = "\(ref.field): expected \(expected), got '\(text)'"
        if Double(text) != nil { message += " (a number needs a unit: \(text)s or \(text)ms?)" }
        fail(ref, at: node.location, message)
        return nil
    }

    private mutating func shutdown(_ node: YAMLNode, _ ref: FieldRef) -> Shutdown? {
        let expected = "a duration like 5s, or brutal_kill, or infinity"
        guard let text = scalar(node, ref, expected: expected) else { return nil }
        switch text {
        case "brutal_kill": return .brutalKill
        case "infinity": return .infinity
        default:
            if let d = Duration(topologyText: text) { return .timeout(d) }
            var message = "shutdown: expected \(expected), got '\(text)'"
            if Double(text) != nil { message += " (a number needs a unit: \(text)s?)" }
            fail(ref, at: node.location, message)
            return nil
        }
    }

    /// A size like 256MiB, at least 1MiB (less than that cannot hold a process).
    private mutating func memorySize(_ node: YAMLNode, _ ref: FieldRef) -> UInt64? {
        let expected = "a size like 256MiB or 2GiB"
        guard let text = scalar(node, ref, expected: expected) else { return nil }
        guard let bytes = MemorySize.bytes(topologyText: text) else {
            var message = "\(ref.field): expected \(expected), got '\(text)'"
            if UInt64(text) != nil { message += " (a number needs a unit: \(text)MiB?)" }
            fail(ref, at: node.location, message)
            return nil
        }
        guard bytes >= 1 << 20 else {
            fail(ref, at: node.location, "\(ref.field): \(text) is too small to run a process in; at least 1MiB")
            return nil
        }
        return bytes
    }

    private mutating func integer(_ node: YAMLNode, _ ref: FieldRef) -> Int? {
        guard let text = scalar(node, ref, expected: "a whole number") else { return nil }
        if let v = Int(text) { return v }
        fail(ref, at: node.location, "\(ref.field): expected a whole number, got '\(text)'")
        return nil
    }

    private mutating func boolean(_ node: YAMLNode, _ ref: FieldRef) -> Bool? {
        guard let text = scalar(node, ref, expected: "true or false") else { return nil }
        switch text {
        case "true", "yes", "on": return true
        case "false", "no", "off": return false
        default:
            fail(ref, at: node.location, "\(ref.field): expected true or false, got '\(text)'")
            return nil
        }
    }

    private mutating func number(_ node: YAMLNode, _ ref: FieldRef) -> Double? {
        guard let text = scalar(node, ref, expected: "a number like 2 or 0.5") else { return nil }
        if let v = Double(text), v.isFinite { return v }
        fail(ref, at: node.location, "\(ref.field): expected a number like 2 or 0.5, got '\(text)'")
        return nil
    }

    private mutating func enumeration<E: RawRepresentable & CaseIterable>(_ node: YAMLNode, _ ref: FieldRef, _ type: E.Type) -> E?
    where E.RawValue == String {
        let names = E.allCases.map(\.rawValue)
        let expected = "one of " + names.joined(separator: ", ")
        guard let text = scalar(node, ref, expected: expected) else { return nil }
        if let v = E(rawValue: text) { return v }
        var message = "\(ref.field): expected \(expected), got '\(text)'"
        if let guess = Self.suggestion(for: text, in: names) { message += " (did you mean '\(guess)'?)" }
        fail(ref, at: node.location, message)
        return nil
    }

    // MARK: Lists and maps

    private mutating func argv(_ node: YAMLNode, spec: SourceLocation) -> [String] {
        let ref = FieldRef(spec: spec, field: "argv")
        fieldLocations[ref] = node.location
        guard case .sequence(let items, _) = node else {
            var message = "argv: expected a list like [db-watchdog, --interval, 2s], got \(node.summary)"
            if case .scalar(let s) = node, !s.isNull {
                let words = s.value.split(whereSeparator: { $0 == " " || $0 == "\t" })
                message = "argv: expected a list like [db-watchdog, --interval, 2s], got the string '\(s.value)'; vigil runs no shell, so write each argument as its own item: argv: [\(words.joined(separator: ", "))]"
            }
            fail(ref, at: node.location, message)
            return []
        }
        var out: [String] = []
        var broken = false
        for (i, item) in items.enumerated() {
            let r = FieldRef(spec: spec, field: "argv[\(i)]")
            if let s = scalar(item, r, expected: "a string") { out.append(s) } else { broken = true }
        }
        if broken { reported.insert(ref); return [] }
        if let first = items.first { fieldLocations[FieldRef(spec: spec, field: "argv[0]")] = first.location }
        return out
    }

    private mutating func dependencies(_ node: YAMLNode, spec: SourceLocation) -> [Dependency] {
        let ref = FieldRef(spec: spec, field: "depends_on")
        switch node {
        case .scalar(let s) where !s.isNull:
            return [Dependency(s.value, at: s.location)]
        case .sequence(let items, _):
            var out: [Dependency] = []
            for (i, item) in items.enumerated() {
                if let name = scalar(item, FieldRef(spec: spec, field: "depends_on[\(i)]"), expected: "a name") {
                    out.append(Dependency(name, at: item.location))
                }
            }
            return out
        default:
            fail(ref, at: node.location, "depends_on: expected a list of names like [db-watchdog, cache-warmer], got \(node.summary)")
            return []
        }
    }

    private mutating func environment(_ node: YAMLNode, spec: SourceLocation) -> [String: Located<String>] {
        guard case .mapping(let pairs, _) = node else {
            fail(FieldRef(spec: spec, field: "env"), at: node.location,
                 "env: expected a mapping of NAME: value, like {TRADING_DB: trading.db}, got \(node.summary)")
            return [:]
        }
        // env accepts any name, so the pairs are walked here rather than with fields(of:).
        var out: [String: Located<String>] = [:]
        var firstLine: [String: Int] = [:]
        for p in pairs {
            guard case .scalar(let k) = p.key else {
                diagnostics.append(Diagnostic(p.key.location, "an environment variable name must be a plain word, got \(p.key.summary)"))
                continue
            }
            if let line = firstLine[k.value] {
                diagnostics.append(Diagnostic(k.location, "duplicate key '\(k.value)' in env (first given at line \(line)): keep only one"))
                continue
            }
            firstLine[k.value] = k.location.line
            let ref = FieldRef(spec: spec, field: "env.\(k.value)")
            guard case .scalar(let v) = p.value, !v.isNull else {
                var message = "env.\(k.value): expected a value, got \(p.value.summary)"
                if case .scalar = p.value { message += " (write \(k.value): \"\" for an empty string)" }
                fail(ref, at: p.value.location, message)
                continue
            }
            out[k.value] = Located(value: v.value, location: k.location)
        }
        return out
    }
}

/// Lexical path helpers (no symlink resolution: the path written is the path run).
enum Paths {
    /// `path` if absolute, else `base/path`; `.` components and repeated slashes removed.
    static func resolve(_ path: String, against base: String) -> String {
        normalize(path.hasPrefix("/") ? path : base + "/" + path)
    }

    static func normalize(_ path: String) -> String {
        let parts = path.split(separator: "/", omittingEmptySubsequences: true).filter { $0 != "." }
        return (path.hasPrefix("/") ? "/" : "") + parts.joined(separator: "/")
    }

    /// The directory part of `path` ("." if none).
    static func directory(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        if slash == path.startIndex { return "/" }
        return String(path[..<slash])
    }
}
