/// Where something was written in a topology file, for `file:line:column` diagnostics.
public struct SourceLocation: Hashable, Sendable, CustomStringConvertible {
    public var file: String
    public var line: Int
    public var column: Int

    public init(file: String, line: Int, column: Int) {
        self.file = file
        self.line = line
        self.column = column
    }

    /// A location for specs built in code (tests), which have no file.
    public static let none = SourceLocation(file: "<memory>", line: 0, column: 0)

    public var description: String { "\(file):\(line):\(column)" }
}

/// One problem found in a topology: `file:line:column: message`.
public struct Diagnostic: Hashable, Sendable, CustomStringConvertible {
    public var location: SourceLocation
    public var message: String

    public init(_ location: SourceLocation, _ message: String) {
        self.location = location
        self.message = message
    }

    public var description: String { "\(location): \(message)" }
}

/// OTP restart types: when a child that exited is restarted.
public enum RestartType: String, Sendable, CaseIterable {
    /// Always restarted.
    case permanent
    /// Restarted only after an abnormal exit: non-zero status, or a signal vigil did not send.
    case transient
    /// Never restarted; removed from its supervisor when it exits or a cascade kills it.
    case temporary
}

/// How a child is stopped (OTP `shutdown`).
public enum Shutdown: Hashable, Sendable {
    /// SIGKILL to the group at once.
    case brutalKill
    /// SIGTERM to the group, SIGKILL after this long.
    case timeout(Duration)
    /// SIGTERM and wait for as long as it takes (the default for supervisors).
    case infinity
}

/// OTP restart strategies.
public enum Strategy: String, Sendable, CaseIterable {
    /// Only the failed child is restarted.
    case oneForOne = "one_for_one"
    /// The failed child and every child started after it are terminated (last started
    /// first) and restarted in start order.
    case restForOne = "rest_for_one"
    /// All children are terminated in reverse start order and restarted in start order.
    case oneForAll = "one_for_all"
}

/// Restart intensity: more than `maxRestarts` restarts within `period` and the
/// supervisor gives up, terminates its children and fails to its parent.
public struct Intensity: Hashable, Sendable {
    public var maxRestarts: Int
    public var period: Duration

    public init(maxRestarts: Int = 5, period: Duration = .seconds(10)) {
        self.maxRestarts = maxRestarts
        self.period = period
    }
}

/// Exponential backoff between repeated restarts of one child. The first restart after a
/// stable run is immediate (fast resurrection); each further consecutive failure waits
/// `initial * multiplier^(n-2)`, capped at `max`, shortened by up to `jitter` (a fraction)
/// so a pool does not restart in lockstep. After `resetAfter` of READY uptime the count
/// starts again (systemd never decays its counter; its users call that a bug).
public struct BackoffPolicy: Hashable, Sendable {
    public var initial: Duration
    public var multiplier: Double
    public var max: Duration
    public var jitter: Double
    public var resetAfter: Duration

    public init(initial: Duration = .milliseconds(100), multiplier: Double = 2,
                max: Duration = .seconds(30), jitter: Double = 0.2,
                resetAfter: Duration = .seconds(60)) {
        self.initial = initial
        self.multiplier = multiplier
        self.max = max
        self.jitter = jitter
        self.resetAfter = resetAfter
    }
}

/// A worker's special duty in the tree, if any.
public enum WorkerRole: String, Sendable, CaseIterable {
    /// The risk guardian: asked before a guarded child is restarted.
    case guardian
    /// Receives per-worker resource samples (RSS, CPU, restarts) from vigil.
    case predictor
    /// An exchange gateway: told to go cancel-only in safe mode and to flatten positions
    /// on liquidation.
    case gateway
}

/// What safe mode does to a worker.
public enum SafeModeAction: String, Sendable, CaseIterable {
    /// Keep running (it is told, and must behave: a gateway goes cancel-only).
    case keep
    /// Stop it while the tree is in safe mode; start it again when safe mode ends.
    case stop
}

/// How vigil learns that a worker is READY.
public enum Readiness: String, Sendable, CaseIterable {
    /// The worker sends READY on its channel (the SDK's `ready()`): the default.
    case channel
    /// Ready as soon as the process is running: for programs that speak no protocol.
    case exec
    /// The program sends `READY=1` to `NOTIFY_SOCKET` (sd_notify), as under systemd's
    /// `Type=notify`: for unmodified daemons (redis-server --supervised systemd, any
    /// libsystemd user).
    case notify
}

/// How `vigil restart --handoff` replaces a worker with a fresh instance of itself.
public enum HandoffMode: String, Sendable, CaseIterable {
    /// The incoming instance starts beside the running one, from its fresh checkpoint; the
    /// outgoing one is stopped only once the incoming is READY. For workers that tolerate two
    /// instances for a moment (no exclusive session, no exclusive port or lock).
    case overlap
    /// The running instance is stopped first, then the replacement starts from the
    /// checkpoint: the default, and the only safe choice for a gateway holding the
    /// exchange session.
    case stopFirst = "stop_first"
}

/// A name in `depends_on`, with where it was written.
public struct Dependency: Hashable, Sendable {
    public var name: String
    public var location: SourceLocation

    public init(_ name: String, at location: SourceLocation = .none) {
        self.name = name
        self.location = location
    }
}

/// A worker child spec: one OS process (or `instances` identical ones).
public struct WorkerSpec: Hashable, Sendable {
    public var name: String
    /// argv[0] is the program: absolute, relative to the topology file if it has a '/',
    /// else looked up beside the vigil executable (the build products) and then in PATH.
    public var argv: [String]
    public var env: [String: String]
    public var workingDirectory: String?
    public var restart: RestartType
    public var shutdown: Shutdown
    public var dependsOn: [Dependency]
    public var readyTimeout: Duration
    public var backoff: BackoffPolicy
    /// A pool: this many identical instances, named `name.1` ... `name.N`.
    public var instances: Int
    public var role: WorkerRole?
    public var readiness: Readiness
    /// No heartbeat for this long after READY means hung: the group is killed and the
    /// worker restarted (systemd's WatchdogSec). nil: no watchdog.
    public var watchdog: Duration?
    /// Restarted only with the guardian's consent (strategy runners, gateways).
    public var guarded: Bool
    public var safeMode: SafeModeAction
    /// Largest checkpoint vigil keeps for it, in bytes.
    public var maxCheckpointBytes: Int
    /// How a planned handoff (`vigil restart --handoff`) replaces it.
    public var handoff: HandoffMode
    /// Resident memory (bytes) above which it is killed, a failure like a crash; sent to
    /// the predictor with every sample, so it can forecast when the limit is reached.
    /// nil: no limit.
    public var memoryLimit: UInt64?
    public var location: SourceLocation

    public init(name: String, argv: [String], env: [String: String] = [:],
                workingDirectory: String? = nil, restart: RestartType = .permanent,
                shutdown: Shutdown = .timeout(.seconds(5)), dependsOn: [Dependency] = [],
                readyTimeout: Duration = .seconds(10), backoff: BackoffPolicy = BackoffPolicy(),
                instances: Int = 1, role: WorkerRole? = nil, readiness: Readiness = .channel,
                watchdog: Duration? = nil, guarded: Bool = false, safeMode: SafeModeAction = .keep,
                maxCheckpointBytes: Int = 8192, handoff: HandoffMode = .stopFirst,
                memoryLimit: UInt64? = nil, location: SourceLocation = .none) {
        self.name = name
        self.argv = argv
        self.env = env
        self.workingDirectory = workingDirectory
        self.restart = restart
        self.shutdown = shutdown
        self.dependsOn = dependsOn
        self.readyTimeout = readyTimeout
        self.backoff = backoff
        self.instances = instances
        self.role = role
        self.readiness = readiness
        self.watchdog = watchdog
        self.guarded = guarded
        self.safeMode = safeMode
        self.maxCheckpointBytes = maxCheckpointBytes
        self.handoff = handoff
        self.memoryLimit = memoryLimit
        self.location = location
    }
}

/// A supervisor child spec: a logical node inside vigil that owns an ordered list of
/// children, a strategy and one intensity window shared by all of them.
public struct SupervisorSpec: Hashable, Sendable {
    public var name: String
    public var strategy: Strategy
    public var intensity: Intensity
    /// Backoff applied when this supervisor itself is restarted by its parent.
    public var backoff: BackoffPolicy
    public var children: [ChildSpec]
    public var location: SourceLocation

    public init(name: String, strategy: Strategy = .oneForOne, intensity: Intensity = Intensity(),
                backoff: BackoffPolicy = BackoffPolicy(), children: [ChildSpec] = [],
                location: SourceLocation = .none) {
        self.name = name
        self.strategy = strategy
        self.intensity = intensity
        self.backoff = backoff
        self.children = children
        self.location = location
    }
}

/// A child of a supervisor.
public indirect enum ChildSpec: Hashable, Sendable {
    case worker(WorkerSpec)
    case supervisor(SupervisorSpec)

    public var name: String {
        switch self {
        case .worker(let w): w.name
        case .supervisor(let s): s.name
        }
    }

    public var location: SourceLocation {
        switch self {
        case .worker(let w): w.location
        case .supervisor(let s): s.location
        }
    }
}

/// Tree-wide settings that are not part of any one child.
public struct TreeSettings: Hashable, Sendable {
    /// How often a worker's SDK heartbeats (sent to workers as VIGIL_HEARTBEAT_MS).
    public var heartbeatInterval: Duration
    /// How often vigil samples RSS/CPU of every worker for the `predictor` role.
    public var sampleInterval: Duration

    /// How long vigil waits for the guardian's verdict before the fail-safe (safe mode).
    public var guardianTimeout: Duration
    /// How long a worker outlives a vigil that died, waiting for the next one to adopt it
    /// (sent to workers as VIGIL_ADOPT_MS). Zero: workers die with vigil.
    public var adoptWindow: Duration
    /// Where vigil serves Prometheus metrics over HTTP (nil: nowhere; `vigil metrics`
    /// prints them either way). Bound when vigil starts; a reload does not move it.
    public var metrics: MetricsEndpoint?

    public init(heartbeatInterval: Duration = .seconds(1), sampleInterval: Duration = .seconds(5),
                guardianTimeout: Duration = .seconds(2), adoptWindow: Duration = .seconds(10)) {
        self.heartbeatInterval = heartbeatInterval
        self.sampleInterval = sampleInterval
        self.guardianTimeout = guardianTimeout
        self.adoptWindow = adoptWindow
    }
}

/// A whole topology file: the root supervisor and the tree-wide settings.
public struct Topology: Hashable, Sendable {
    public var root: SupervisorSpec
    public var settings: TreeSettings
    /// The file it was read from ("<memory>" for specs built in code).
    public var file: String

    public init(root: SupervisorSpec, settings: TreeSettings = TreeSettings(), file: String = "<memory>") {
        self.root = root
        self.settings = settings
        self.file = file
    }
}
