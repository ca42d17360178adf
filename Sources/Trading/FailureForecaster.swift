/// The failure predictor's models for every supervised worker, fed one resource sample at
/// a time: EWMA baselines with z-scores (sudden anomalies in RSS, CPU share, heartbeat
/// jitter, restarts), a leak detector on RSS (Theil-Sen, forecasting when the worker's
/// memory limit is reached) and the restart rate. Pure: the caller supplies the time, so
/// the models are tested on synthetic series and the executable only moves frames.
public struct FailureForecaster: Sendable {
    public struct Configuration: Sendable {
        /// A forecast failure within this many seconds is advised on (and then checked
        /// against what happens within it).
        public var horizon: Double
        /// |z| above which a sample is an anomaly against its worker's own baseline.
        public var anomalyThreshold: Double
        public var warmUp: Int
        public var alpha: Double
        public var leak: LeakDetector.Configuration
        public var restartWindow: Double

        public init(horizon: Double = 30, anomalyThreshold: Double = 4, warmUp: Int = 10, alpha: Double = 0.1,
                    leak: LeakDetector.Configuration = .init(), restartWindow: Double = 120) {
            self.horizon = horizon
            self.anomalyThreshold = anomalyThreshold
            self.warmUp = warmUp
            self.alpha = alpha
            self.leak = leak
            self.restartWindow = restartWindow
        }
    }

    /// One sample of one worker, in the models' units.
    public struct Sample: Hashable, Sendable {
        public var worker: String
        public var pid: Int32
        /// Seconds on a monotonic clock.
        public var time: Double
        public var rssKiB: Double
        /// CPU time over wall time in the sampling interval (NaN when unknown).
        public var cpuShare: Double
        /// Cumulative restarts of the worker (after its own failures).
        public var restarts: UInt32
        /// The worker's memory limit, if it has one.
        public var memoryLimitKiB: Double?
        /// How far heartbeats strayed from their interval since the last sample, in ms.
        public var heartbeatJitterMs: Double

        public init(worker: String, pid: Int32, time: Double, rssKiB: Double, cpuShare: Double, restarts: UInt32,
                    memoryLimitKiB: Double? = nil, heartbeatJitterMs: Double = .nan) {
            self.worker = worker
            self.pid = pid
            self.time = time
            self.rssKiB = rssKiB
            self.cpuShare = cpuShare
            self.restarts = restarts
            self.memoryLimitKiB = memoryLimitKiB
            self.heartbeatJitterMs = heartbeatJitterMs
        }
    }

    public enum Action: String, Hashable, Sendable {
        /// Replace the worker now, with its state, before it fails (a leak: a fresh process
        /// starts from a small heap).
        case restart
        /// Journal the forecast only (a crash loop: a restart would not help).
        case watch
    }

    /// A forecast that the worker fails within the horizon.
    public struct Prediction: Hashable, Sendable {
        public var worker: String
        public var pid: Int32
        /// `rss-theil-sen` or `restart-rate`.
        public var model: String
        public var action: Action
        public var secondsToFailure: Double
        public var reason: String
    }

    public struct Anomaly: Hashable, Sendable {
        public var worker: String
        public var pid: Int32
        public var metric: String
        public var value: Double
        public var mean: Double
        public var deviation: Double
        public var z: Double
    }

    public enum Finding: Hashable, Sendable {
        case anomaly(Anomaly)
        case prediction(Prediction)
    }

    /// Everything known about one worker (by name, so baselines outlive restarts).
    struct WorkerModels: Sendable {
        var rss: RollingBaseline
        var cpu: RollingBaseline
        var jitter: RollingBaseline
        var restartsPerSample: RollingBaseline
        var leak: LeakDetector
        var restartRate: RestartRate
        var pid: Int32?
        var lastRestarts: UInt32?
        /// The process a leak was advised on (one advice per process).
        var leakAdvised: Int32?
        /// Until when the last restart-rate forecast runs (no second one meanwhile).
        var restartForecastUntil = -Double.infinity
    }

    public let configuration: Configuration
    var models: [String: WorkerModels] = [:]

    public init(_ configuration: Configuration = Configuration()) {
        self.configuration = configuration
    }

    /// Workers with a model so far.
    public var workerCount: Int { models.count }

    /// Scores and folds in one sample; returns what it showed.
    public mutating func observe(_ s: Sample) -> [Finding] {
        var m = models[s.worker] ?? makeModels()
        var findings: [Finding] = []
        if m.pid != s.pid {
            // A new process (restart, handoff): its heap starts small again.
            m.leak.reset()
            m.pid = s.pid
        }
        let restartDelta = m.lastRestarts.map { s.restarts >= $0 ? Double(s.restarts - $0) : 0 } ?? 0
        m.lastRestarts = s.restarts
        func check(_ metric: String, _ value: Double, _ b: inout RollingBaseline) {
            let mean = b.mean, sd = b.deviation
            if let z = b.scoreAndObserve(value), abs(z) > configuration.anomalyThreshold {
                findings.append(.anomaly(Anomaly(worker: s.worker, pid: s.pid, metric: metric, value: value,
                                                 mean: mean, deviation: sd, z: z)))
            }
        }
        check("rss_kib", s.rssKiB, &m.rss)
        check("cpu_share", s.cpuShare, &m.cpu)
        check("heartbeat_jitter_ms", s.heartbeatJitterMs, &m.jitter)
        check("restarts_per_sample", restartDelta, &m.restartsPerSample)

        let limit = s.memoryLimitKiB
        if case .leaking(let fit, let eta?) = m.leak.observe(time: s.time, value: s.rssKiB, limit: limit),
           eta <= configuration.horizon, m.leakAdvised != s.pid, let limit {
            m.leakAdvised = s.pid
            let reason = "RSS rising \(Self.short(fit.slope)) KiB/s (Theil-Sen over \(fit.count) samples, trend score \(Self.short(fit.trendScore)), noise ±\(Self.short(fit.residualDeviation)) KiB); at \(Self.short(fit.value(at: s.time))) KiB of its \(Self.short(limit)) KiB memory_limit, reached in \(Self.short(eta))s"
            findings.append(.prediction(Prediction(worker: s.worker, pid: s.pid, model: "rss-theil-sen", action: .restart,
                                                   secondsToFailure: eta, reason: reason)))
        }

        m.restartRate.observe(restarts: s.restarts, at: s.time)
        if let eta = m.restartRate.secondsToNextFailure(now: s.time), eta <= configuration.horizon,
           s.time >= m.restartForecastUntil, let interval = m.restartRate.meanInterval {
            m.restartForecastUntil = s.time + configuration.horizon
            let reason = "\(m.restartRate.restartTimes.count) restarts in the last \(Self.short(m.restartRate.window))s, one every \(Self.short(interval))s: the next failure is due in \(Self.short(eta))s"
            findings.append(.prediction(Prediction(worker: s.worker, pid: s.pid, model: "restart-rate", action: .watch,
                                                   secondsToFailure: eta, reason: reason)))
        }
        models[s.worker] = m
        return findings
    }

    private func makeModels() -> WorkerModels {
        let c = configuration
        // Floors keep a flat history from turning noise into huge scores: RSS within
        // max(256 KiB, 2%), CPU share within 2% of a core, jitter within 1 ms, restarts
        // within 0.2 per sample (so one restart of a worker that never restarts scores 5).
        return WorkerModels(
            rss: try! RollingBaseline(alpha: c.alpha, warmUp: c.warmUp, absoluteFloor: 256, relativeFloor: 0.02),
            cpu: try! RollingBaseline(alpha: c.alpha, warmUp: c.warmUp, absoluteFloor: 0.02),
            jitter: try! RollingBaseline(alpha: c.alpha, warmUp: c.warmUp, absoluteFloor: 1),
            restartsPerSample: try! RollingBaseline(alpha: c.alpha, warmUp: c.warmUp, absoluteFloor: 0.2),
            leak: LeakDetector(c.leak), restartRate: RestartRate(window: c.restartWindow))
    }

    /// A short decimal rendering without Foundation: at most 3 decimals, trailing zeros cut.
    public static func short(_ x: Double) -> String {
        guard x.isFinite else { return "\(x)" }
        let scaled = (x * 1000).rounded()
        guard abs(scaled) < 9e15 else { return "\(x)" }
        let n = Int64(scaled), whole = n / 1000, frac = abs(n % 1000)
        let sign = n < 0 && whole == 0 ? "-" : ""
        guard frac != 0 else { return "\(sign)\(whole)" }
        var f = String(frac)
        f = String(repeating: "0", count: 3 - f.count) + f
        while f.hasSuffix("0") { f.removeLast() }
        return "\(sign)\(whole).\(f)"
    }
}
