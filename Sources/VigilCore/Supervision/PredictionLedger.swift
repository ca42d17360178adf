/// The bookkeeping that turns the predictor's forecasts into precision and recall: every
/// forecast is open until it is settled, and settled exactly once.
///
/// - **confirmed**: the worker failed within the horizon (`failed`: the forecast was right),
///   or a planned restart made because of it replaced the worker before it failed
///   (`forestalled`).
/// - **refuted**: the horizon passed with neither (a false alarm).
/// - **missed**: a worker failed with no forecast open (a failure nobody saw coming).
///
/// So precision = confirmed / (confirmed + refuted), recall = confirmed-by-failure or
/// forestalled / (those + missed). A forestalled forecast cannot be checked against the
/// failure it prevented; run the predictor with `watch` advice (no action) to measure it.
public struct PredictionLedger: Hashable, Sendable {
    public struct Entry: Hashable, Sendable {
        public var id: UInt64
        public var worker: String
        /// The incarnation the forecast was about.
        public var incarnation: UInt64
        public var model: String
        public var action: PredictionAction
        public var madeAt: Instant
        public var deadline: Instant
        /// A planned restart was set in motion because of it.
        public var acted = false
    }

    public enum Verdict: String, Hashable, Sendable {
        case confirmed, refuted, missed
    }

    public struct Outcome: Hashable, Sendable {
        public var verdict: Verdict
        public var worker: String
        /// The forecast settled (nil for a miss).
        public var entry: Entry?
        /// `failed` or `forestalled` for a confirmation, `expired` or `unforecast` otherwise.
        public var how: String
        /// From the forecast to the outcome.
        public var lead: Duration

        /// The journal line: `outcome=... id=... model=... how=... lead=...`.
        public var detail: String {
            var fields = ["outcome=\(verdict.rawValue)"]
            if let e = entry { fields += ["id=\(e.id)", "model=\(e.model)", "action=\(e.action.rawValue)"] }
            fields += ["how=\(how)", "lead=\(Self.seconds(lead))"]
            return fields.joined(separator: " ")
        }

        static func seconds(_ d: Duration) -> String {
            let ms = d.nanoseconds / 1_000_000
            return "\(ms / 1000).\(String(repeating: "0", count: 3 - String(ms % 1000).count))\(ms % 1000)s"
        }
    }

    public private(set) var unsettled: [UInt64: Entry] = [:]
    private var lastID: UInt64 = 0

    public init() {}

    /// Opens a forecast, unless the same model already has one open for this incarnation
    /// (a predictor repeating itself is not a second forecast): then nil.
    public mutating func open(worker: String, incarnation: UInt64, model: String, action: PredictionAction,
                              horizon: Duration, at now: Instant) -> Entry? {
        if unsettled.values.contains(where: { $0.worker == worker && $0.incarnation == incarnation && $0.model == model }) {
            return nil
        }
        lastID += 1
        let e = Entry(id: lastID, worker: worker, incarnation: incarnation, model: model, action: action,
                      madeAt: now, deadline: now + horizon)
        unsettled[e.id] = e
        return e
    }

    public mutating func markActed(_ id: UInt64) {
        unsettled[id]?.acted = true
    }

    /// The worker failed: every forecast open for it is confirmed; with none, a miss.
    public mutating func failed(worker: String, at now: Instant) -> [Outcome] {
        let settled = unsettled.values.filter { $0.worker == worker }.sorted { $0.id < $1.id }
        guard !settled.isEmpty else {
            return [Outcome(verdict: .missed, worker: worker, entry: nil, how: "unforecast", lead: .zero)]
        }
        for e in settled { unsettled[e.id] = nil }
        return settled.map { Outcome(verdict: .confirmed, worker: worker, entry: $0, how: "failed", lead: now.duration(since: $0.madeAt)) }
    }

    /// A new incarnation of the worker is READY: forecasts acted on for an earlier one are
    /// confirmed as forestalled (it was replaced before it failed).
    public mutating func replaced(worker: String, incarnation: UInt64, at now: Instant) -> [Outcome] {
        let settled = unsettled.values.filter { $0.worker == worker && $0.acted && $0.incarnation < incarnation }.sorted { $0.id < $1.id }
        for e in settled { unsettled[e.id] = nil }
        return settled.map { Outcome(verdict: .confirmed, worker: worker, entry: $0, how: "forestalled", lead: now.duration(since: $0.madeAt)) }
    }

    /// The forecast's horizon has passed: refuted, if it is still open.
    public mutating func expire(_ id: UInt64, at now: Instant) -> Outcome? {
        guard let e = unsettled.removeValue(forKey: id) else { return nil }
        return Outcome(verdict: .refuted, worker: e.worker, entry: e, how: "expired", lead: now.duration(since: e.madeAt))
    }
}
