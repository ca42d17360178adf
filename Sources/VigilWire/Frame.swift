/// The frames spoken on a worker's private channel: a `SOCK_SEQPACKET` socketpair, so the
/// kernel keeps message boundaries and one `recv` is one frame. A frame is one kind byte
/// followed by its payload; integers are little-endian, strings are UTF-8 prefixed by a
/// 16-bit length. Anything that does not decode exactly is a protocol violation: vigil cuts
/// the worker off and restarts it, it never guesses.
public enum Frame: Hashable, Sendable {
    // Worker -> vigil.
    /// The worker is initialised and serving.
    case ready
    /// The worker's liveness beat.
    case heartbeat
    /// A one-line human status, shown by `vigil status`.
    case status(String)
    /// The worker is shutting down on purpose.
    case stopping
    /// Opaque state to hand to the next incarnation (kept durably by vigil).
    case checkpoint([UInt8])
    /// The guardian's answer to a `restartRequest`.
    case verdict(requestID: UInt64, Verdict)
    /// The guardian orders the tree into or out of safe mode, or to liquidate.
    case guardianOrder(GuardianOrder)
    /// A fact for vigil's journal (for example each liquidation step, final positions).
    case report(key: String, text: String)
    /// The first frame on a connection to vigil's adoption socket: a worker that outlived
    /// the vigil which started it asks the new one to take it back. vigil believes the
    /// kernel (SO_PEERCRED), not this frame: the name and incarnation must match the run
    /// its journal holds for the connecting pid, started when /proc says it started.
    case adopt(name: String, incarnation: UInt64)
    /// The predictor forecasts that a worker fails within a horizon, and advises what to do
    /// about it. vigil takes it only from the worker with role `predictor`, journals it, and
    /// checks what happens within the horizon.
    case advice(Advice)

    // Vigil -> worker.
    /// A resource sample of one worker, sent to workers with role `predictor`.
    case sample(WorkerSample)
    /// A tree-level notice for every worker (for example `safe_mode` = `on`).
    case notice(key: String, value: String)
    /// Always the first frame vigil sends a new incarnation: the last checkpoint of this
    /// child, or nil when there is none. Sent before the worker can report READY.
    case restore([UInt8]?)
    /// To the guardian: may this guarded child be restarted?
    case restartRequest(RestartRequest)
    /// Planned handoff: send a fresh checkpoint now.
    case checkpointRequest
    /// The last checkpoint was not kept (too large, malformed); the previous one stands.
    case checkpointRefused(reason: String)

    /// The largest frame either side sends or accepts. Large state goes through a memfd.
    public static let maximumSize = 16 * 1024

    enum Kind: UInt8 {
        case ready = 1, heartbeat = 2, status = 3, stopping = 4
        case checkpoint = 5, verdict = 6, guardianOrder = 7, report = 8, adopt = 9, advice = 0x0A
        case sample = 0x11, notice = 0x12, restore = 0x13, restartRequest = 0x14
        case checkpointRequest = 0x15, checkpointRefused = 0x16
    }
}

/// One resource sample of a supervised worker, as vigil reads it from /proc.
public struct WorkerSample: Hashable, Sendable {
    public var worker: String
    public var pid: Int32
    /// Resident set size in KiB.
    public var rssKiB: UInt64
    /// CPU time used since the previous sample, in microseconds.
    public var cpuMicros: UInt64
    /// Length of the sampling interval, in microseconds (so CPU share = cpu / interval).
    public var intervalMicros: UInt64
    /// Restarts of this worker since vigil started.
    public var restarts: UInt32
    /// The worker's `memory_limit` in KiB, 0 for none: what a leak is forecast against.
    public var memoryLimitKiB: UInt64
    /// The largest distance between two heartbeats' arrival and the heartbeat interval
    /// since the previous sample, in microseconds, as vigil saw them (a worker that stalls,
    /// swaps or fights for CPU beats late before it hangs); 0 when none arrived.
    public var heartbeatJitterMicros: UInt64

    public init(worker: String, pid: Int32, rssKiB: UInt64, cpuMicros: UInt64,
                intervalMicros: UInt64, restarts: UInt32, memoryLimitKiB: UInt64 = 0,
                heartbeatJitterMicros: UInt64 = 0) {
        self.worker = worker
        self.pid = pid
        self.rssKiB = rssKiB
        self.cpuMicros = cpuMicros
        self.intervalMicros = intervalMicros
        self.restarts = restarts
        self.memoryLimitKiB = memoryLimitKiB
        self.heartbeatJitterMicros = heartbeatJitterMicros
    }
}

/// What the predictor advises about a worker it forecasts to fail.
public enum AdviceAction: UInt8, Hashable, Sendable, CaseIterable {
    /// Replace it now with a planned handoff (its state carried over), before it fails.
    case restart = 1
    /// Nothing to do (a restart would not help): journal the forecast, check it.
    case watch = 2

    public var name: String { self == .restart ? "restart" : "watch" }
}

/// A forecast that `worker` fails within `horizonMillis`, `forecastMillis` from now by
/// `model`'s reckoning.
public struct Advice: Hashable, Sendable {
    public var worker: String
    /// The process the forecast is about: a forecast that arrives after it is gone is
    /// about nothing (its replacement starts from a fresh heap).
    public var pid: Int32
    public var action: AdviceAction
    public var model: String
    public var forecastMillis: UInt64
    /// How long vigil waits for the failure before the forecast counts as refuted.
    public var horizonMillis: UInt64
    public var reason: String

    public init(worker: String, pid: Int32, action: AdviceAction, model: String, forecastMillis: UInt64,
                horizonMillis: UInt64, reason: String) {
        self.worker = worker
        self.pid = pid
        self.action = action
        self.model = model
        self.forecastMillis = forecastMillis
        self.horizonMillis = horizonMillis
        self.reason = reason
    }
}

/// Why bytes were not a frame.
public enum FrameError: Error, Hashable, Sendable, CustomStringConvertible {
    case empty
    case tooLarge(Int)
    case unknownKind(UInt8)
    case truncated(kind: UInt8)
    case trailingBytes(kind: UInt8, count: Int)
    case invalidUTF8(kind: UInt8)
    case stringTooLong(Int)
    case invalidField(kind: UInt8, String)

    public var description: String {
        switch self {
        case .empty: "empty frame"
        case .tooLarge(let n): n > Frame.maximumSize + 1 ? "frame of \(n) bytes exceeds the \(Frame.maximumSize)-byte limit" : "frame exceeds the \(Frame.maximumSize)-byte limit"
        case .unknownKind(let k): "unknown frame kind 0x\(String(k, radix: 16))"
        case .truncated(let k): "frame kind 0x\(String(k, radix: 16)) is truncated"
        case .trailingBytes(let k, let n): "frame kind 0x\(String(k, radix: 16)) has \(n) trailing bytes"
        case .invalidUTF8(let k): "frame kind 0x\(String(k, radix: 16)) carries invalid UTF-8"
        case .stringTooLong(let n): "string of \(n) bytes does not fit a frame"
        case .invalidField(let k, let what): "frame kind 0x\(String(k, radix: 16)) carries an unknown \(what)"
        }
    }
}

extension Frame {
    /// The bytes of this frame. Throws only when a string is too long for a frame.
    public func encoded() throws(FrameError) -> [UInt8] {
        var w = FrameWriter()
        switch self {
        case .ready: w.byte(Kind.ready.rawValue)
        case .heartbeat: w.byte(Kind.heartbeat.rawValue)
        case .stopping: w.byte(Kind.stopping.rawValue)
        case .status(let text):
            w.byte(Kind.status.rawValue)
            try w.string(text)
        case .sample(let s):
            w.byte(Kind.sample.rawValue)
            try w.string(s.worker)
            w.integer(UInt32(bitPattern: s.pid))
            w.integer(s.rssKiB)
            w.integer(s.cpuMicros)
            w.integer(s.intervalMicros)
            w.integer(s.restarts)
            w.integer(s.memoryLimitKiB)
            w.integer(s.heartbeatJitterMicros)
        case .advice(let a):
            w.byte(Kind.advice.rawValue)
            try w.string(a.worker)
            w.integer(UInt32(bitPattern: a.pid))
            w.byte(a.action.rawValue)
            try w.string(a.model)
            w.integer(a.forecastMillis)
            w.integer(a.horizonMillis)
            try w.string(a.reason)
        case .notice(let key, let value):
            w.byte(Kind.notice.rawValue)
            try w.string(key)
            try w.string(value)
        case .checkpoint(let bytes):
            w.byte(Kind.checkpoint.rawValue)
            w.bytes.append(contentsOf: bytes)
        case .verdict(let id, let verdict):
            w.byte(Kind.verdict.rawValue)
            w.integer(id)
            try verdict.write(to: &w)
        case .guardianOrder(let order):
            w.byte(Kind.guardianOrder.rawValue)
            try order.write(to: &w)
        case .report(let key, let text):
            w.byte(Kind.report.rawValue)
            try w.string(key)
            try w.string(text)
        case .adopt(let name, let incarnation):
            w.byte(Kind.adopt.rawValue)
            try w.string(name)
            w.integer(incarnation)
        case .restore(let state):
            w.byte(Kind.restore.rawValue)
            w.byte(state == nil ? 0 : 1)
            w.bytes.append(contentsOf: state ?? [])
        case .restartRequest(let r):
            w.byte(Kind.restartRequest.rawValue)
            w.integer(r.id)
            try w.string(r.child)
            try w.string(r.reason)
            w.integer(r.recentRestarts)
            w.integer(r.incarnation)
        case .checkpointRequest:
            w.byte(Kind.checkpointRequest.rawValue)
        case .checkpointRefused(let reason):
            w.byte(Kind.checkpointRefused.rawValue)
            try w.string(reason)
        }
        guard w.bytes.count <= Frame.maximumSize else { throw .tooLarge(w.bytes.count) }
        return w.bytes
    }

    /// Decodes exactly one frame; any excess, shortfall or unknown kind is an error.
    public init(decoding bytes: some Collection<UInt8>) throws(FrameError) {
        guard bytes.count <= Frame.maximumSize else { throw .tooLarge(bytes.count) }
        // The one-byte frames (a heartbeat above all: a thousand workers send one a second
        // each) without copying the bytes into an array first, which was most of their cost.
        if bytes.count == 1, let raw = bytes.first {
            switch Kind(rawValue: raw) {
            case .heartbeat?: self = .heartbeat; return
            case .ready?: self = .ready; return
            case .stopping?: self = .stopping; return
            default: break
            }
        }
        var r = FrameReader(Array(bytes))
        guard let raw = r.byte() else { throw .empty }
        guard let kind = Kind(rawValue: raw) else { throw .unknownKind(raw) }
        switch kind {
        case .ready: self = .ready
        case .heartbeat: self = .heartbeat
        case .stopping: self = .stopping
        case .status: self = .status(try r.string(kind: raw))
        case .sample:
            let worker = try r.string(kind: raw)
            guard let pid: UInt32 = r.integer(), let rss: UInt64 = r.integer(),
                  let cpu: UInt64 = r.integer(), let interval: UInt64 = r.integer(),
                  let restarts: UInt32 = r.integer(), let limit: UInt64 = r.integer(),
                  let jitter: UInt64 = r.integer()
            else { throw .truncated(kind: raw) }
            self = .sample(WorkerSample(worker: worker, pid: Int32(bitPattern: pid), rssKiB: rss,
                                        cpuMicros: cpu, intervalMicros: interval, restarts: restarts,
                                        memoryLimitKiB: limit, heartbeatJitterMicros: jitter))
        case .advice:
            let worker = try r.string(kind: raw)
            guard let pid: UInt32 = r.integer(), let a = r.byte() else { throw .truncated(kind: raw) }
            guard let action = AdviceAction(rawValue: a) else { throw .invalidField(kind: raw, "advice action \(a)") }
            let model = try r.string(kind: raw)
            guard let forecast: UInt64 = r.integer(), let horizon: UInt64 = r.integer() else { throw .truncated(kind: raw) }
            let reason = try r.string(kind: raw)
            self = .advice(Advice(worker: worker, pid: Int32(bitPattern: pid), action: action, model: model, forecastMillis: forecast,
                                  horizonMillis: horizon, reason: reason))
        case .notice:
            let key = try r.string(kind: raw)
            let value = try r.string(kind: raw)
            self = .notice(key: key, value: value)
        case .checkpoint:
            self = .checkpoint(r.rest())
        case .verdict:
            guard let id: UInt64 = r.integer() else { throw .truncated(kind: raw) }
            self = .verdict(requestID: id, try Verdict.read(from: &r, kind: raw))
        case .guardianOrder:
            self = .guardianOrder(try GuardianOrder.read(from: &r, kind: raw))
        case .report:
            let key = try r.string(kind: raw)
            let text = try r.string(kind: raw)
            self = .report(key: key, text: text)
        case .adopt:
            let name = try r.string(kind: raw)
            guard let incarnation: UInt64 = r.integer() else { throw .truncated(kind: raw) }
            self = .adopt(name: name, incarnation: incarnation)
        case .restore:
            guard let flag = r.byte(), flag <= 1 else { throw .truncated(kind: raw) }
            if flag == 0 {
                self = .restore(nil)
            } else {
                self = .restore(r.rest())
            }
        case .restartRequest:
            guard let id: UInt64 = r.integer() else { throw .truncated(kind: raw) }
            let child = try r.string(kind: raw)
            let reason = try r.string(kind: raw)
            guard let recent: UInt32 = r.integer(), let inc: UInt64 = r.integer() else { throw .truncated(kind: raw) }
            self = .restartRequest(RestartRequest(id: id, child: child, reason: reason, recentRestarts: recent, incarnation: inc))
        case .checkpointRequest:
            self = .checkpointRequest
        case .checkpointRefused:
            self = .checkpointRefused(reason: try r.string(kind: raw))
        }
        guard r.remaining == 0 else { throw .trailingBytes(kind: raw, count: r.remaining) }
    }
}

struct FrameWriter {
    var bytes: [UInt8] = []

    mutating func byte(_ b: UInt8) { bytes.append(b) }

    mutating func integer<T: FixedWidthInteger>(_ value: T) {
        withUnsafeBytes(of: value.littleEndian) { bytes.append(contentsOf: $0) }
    }

    mutating func string(_ s: String) throws(FrameError) {
        let utf8 = Array(s.utf8)
        guard utf8.count <= Int(UInt16.max) else { throw .stringTooLong(utf8.count) }
        integer(UInt16(utf8.count))
        bytes.append(contentsOf: utf8)
    }
}

struct FrameReader {
    let bytes: [UInt8]
    var offset = 0

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    var remaining: Int { bytes.count - offset }

    mutating func byte() -> UInt8? {
        guard offset < bytes.count else { return nil }
        defer { offset += 1 }
        return bytes[offset]
    }

    mutating func integer<T: FixedWidthInteger>() -> T? {
        let size = MemoryLayout<T>.size
        guard remaining >= size else { return nil }
        var value: T = 0
        for i in 0..<size { value |= T(bytes[offset + i]) << (8 * i) }
        offset += size
        return value
    }

    /// Everything not read yet (for payloads that run to the end of the frame).
    mutating func rest() -> [UInt8] {
        defer { offset = bytes.count }
        return Array(bytes[offset...])
    }

    mutating func string(kind: UInt8) throws(FrameError) -> String {
        guard let count: UInt16 = integer(), remaining >= Int(count) else { throw .truncated(kind: kind) }
        let slice = bytes[offset..<offset + Int(count)]
        offset += Int(count)
        guard let s = String(validating: slice, as: UTF8.self) else { throw .invalidUTF8(kind: kind) }
        return s
    }
}

extension Frame {
    /// The frame's kind in words for logs and errors (a notice with its key and value, a
    /// request with its id; never a state or text payload).
    public var kindName: String {
        switch self {
        case .ready: "ready"
        case .heartbeat: "heartbeat"
        case .status: "status"
        case .stopping: "stopping"
        case .checkpoint: "checkpoint"
        case .verdict: "verdict"
        case .guardianOrder: "guardian order"
        case .report: "report"
        case .adopt(let name, let incarnation): "adopt \(name) incarnation \(incarnation)"
        case .advice(let a): "advice \(a.action.name) \(a.worker)"
        case .sample: "sample"
        case .notice(let key, let value): "notice \(key)=\(value)"
        case .restore: "restore"
        case .restartRequest(let r): "restart request #\(r.id) for \(r.child)"
        case .checkpointRequest: "checkpoint request"
        case .checkpointRefused: "checkpoint refused"
        }
    }
}
