/// A strategy runner's book and its checkpoint: what must survive a `kill -9` so the
/// replacement continues with the same positions and P&L and never sends an order twice.

/// Orders in flight and positions built from their fills, applied exactly once per client
/// order id.
///
/// The rule that makes a fill idempotent: a fill changes the portfolio only if its client
/// order id is in flight, and applying it takes the id out of flight, in the same step. The
/// book (positions and in-flight ids together) is checkpointed as one value, *before* an
/// order is written to the gateway and after every fill, so whichever checkpoint the next
/// incarnation restores, an id is either still in flight (its fill, replayed by the
/// gateway, has not been applied) or not (its fill, if any, is in the positions).
public struct RunnerBook: Hashable, Sendable {
    public private(set) var portfolio: Portfolio
    /// The last sequence number used in a client order id.
    public private(set) var sequence: UInt64
    /// Sent (or about to be) and not answered, in send order.
    public private(set) var inFlight: [Order]

    public init(portfolio: Portfolio = Portfolio(), sequence: UInt64 = 0, inFlight: [Order] = []) {
        self.portfolio = portfolio
        self.sequence = sequence
        self.inFlight = inFlight
    }

    /// What applying a fill did.
    public enum FillOutcome: Hashable, Sendable {
        /// The fill of an order in flight: applied to the positions.
        case applied
        /// Not in flight: a replay of a fill already applied, or not this runner's order.
        case notInFlight
        /// In flight, but the fill is for a different instrument, side or quantity:
        /// ignored (the id stays in flight).
        case mismatch(expected: Order)
    }

    /// The next sequence number (for a new client order id).
    public mutating func nextSequence() -> UInt64 {
        sequence += 1
        return sequence
    }

    public func isInFlight(_ id: ClientOrderID) -> Bool { inFlight.contains { $0.clientOrderID == id } }

    /// Puts `order` in flight. False (and nothing changes) if its id already is.
    @discardableResult
    public mutating func send(_ order: Order) -> Bool {
        guard !isInFlight(order.clientOrderID) else { return false }
        inFlight.append(order)
        return true
    }

    /// Applies `fill` at most once: only while its order is in flight.
    public mutating func apply(_ fill: Fill) -> FillOutcome {
        guard let index = inFlight.firstIndex(where: { $0.clientOrderID == fill.clientOrderID }) else { return .notInFlight }
        let order = inFlight[index]
        guard fill.matches(order) else { return .mismatch(expected: order) }
        inFlight.remove(at: index)
        portfolio.apply(fill)
        return .applied
    }

    /// The order was rejected (never filled): takes it out of flight. False if it was not in flight.
    @discardableResult
    public mutating func reject(_ id: ClientOrderID) -> Bool {
        guard let index = inFlight.firstIndex(where: { $0.clientOrderID == id }) else { return false }
        inFlight.remove(at: index)
        return true
    }

    /// Drops an order that was never written to the gateway (its checkpoint failed).
    public mutating func abandon(_ id: ClientOrderID) { reject(id) }

    /// Replaces the positions (after reconciling with the venue's record of this runner's fills).
    public mutating func replacePortfolio(_ p: Portfolio) { portfolio = p }

    /// Net quantity in `instrument` as if every order in flight filled: a burst of signals
    /// cannot overshoot a position limit.
    public func netIncludingInFlight(_ instrument: Instrument) -> Quantity {
        let open = portfolio.positions[instrument]?.netQuantity ?? 0
        return inFlight.reduce(open) { $1.instrument == instrument ? $0.saturatingAdd($1.side.sign * $1.quantity) : $0 }
    }
}

/// The indicator state of one instrument (a moving-average crossover).
public struct IndicatorState: Hashable, Sendable {
    public var shortWindow: Int
    public var longWindow: Int
    /// Oldest first.
    public var window: [Price]
    public var lastRelation: Int

    public init(shortWindow: Int, longWindow: Int, window: [Price], lastRelation: Int) {
        self.shortWindow = shortWindow
        self.longWindow = longWindow
        self.window = window
        self.lastRelation = lastRelation
    }

    public init(_ m: MovingAverageCrossover) {
        self.init(shortWindow: m.shortWindow, longWindow: m.longWindow, window: m.window, lastRelation: m.lastRelation)
    }

    /// The indicator, or nil if this state does not describe one.
    public var indicator: MovingAverageCrossover? {
        (try? MovingAverageCrossover(shortWindow: shortWindow, longWindow: longWindow, window: window,
                                     lastRelation: lastRelation)) ?? nil
    }
}

/// Everything a strategy runner checkpoints.
///
/// Encoding (version 1), little-endian, strings as a 16-bit byte count then UTF-8:
///
///     "VGSR" u8 version=1
///     u64 sequence
///     u16 n, n x position:  str symbol, i64 net, i64 average micros, i64 realised micros,
///                           u8 has-last (0|1), [i64 last fill price micros], u64 fill count
///     u16 n, n x indicator: str symbol, u32 short, u32 long, i8 relation (-1|0|1),
///                           u32 count, count x i64 price micros (oldest first)
///     u16 n, n x in flight: str client order id, str symbol, u8 side (1 buy, 2 sell), i64 qty
///     u32 CRC-32 (IEEE) of every byte before it
///
/// Decoding is strict: wrong magic, version, checksum, a value no runner could have
/// written, a duplicate instrument or id, or a trailing byte is a `CheckpointError`.
public struct RunnerCheckpoint: Hashable, Sendable {
    public static let magic: [UInt8] = Array("VGSR".utf8)
    public static let version: UInt8 = 1

    public var book: RunnerBook
    public var indicators: [Instrument: IndicatorState]

    public init(book: RunnerBook, indicators: [Instrument: IndicatorState]) {
        self.book = book
        self.indicators = indicators
    }

    public func encoded() -> [UInt8] {
        var w = ByteWriter()
        w.bytes.append(contentsOf: RunnerCheckpoint.magic)
        w.u8(RunnerCheckpoint.version)
        w.u64(book.sequence)
        let positions = book.portfolio.positions.values.sorted { $0.instrument < $1.instrument }
        w.u16(UInt16(clamping: positions.count))
        for p in positions.prefix(Int(UInt16.max)) {
            w.string(p.instrument.symbol)
            w.i64(p.netQuantity)
            w.i64(p.averagePrice.micros)
            w.i64(p.realisedPnL.micros)
            if let last = p.lastFillPrice { w.u8(1); w.i64(last.micros) } else { w.u8(0) }
            w.u64(UInt64(p.fillCount))
        }
        let indicators = self.indicators.sorted { $0.key < $1.key }
        w.u16(UInt16(clamping: indicators.count))
        for (i, s) in indicators.prefix(Int(UInt16.max)) {
            w.string(i.symbol)
            w.u32(UInt32(clamping: s.shortWindow))
            w.u32(UInt32(clamping: s.longWindow))
            w.u8(UInt8(bitPattern: Int8(clamping: s.lastRelation)))
            w.u32(UInt32(clamping: s.window.count))
            for p in s.window { w.i64(p.micros) }
        }
        w.u16(UInt16(clamping: book.inFlight.count))
        for o in book.inFlight.prefix(Int(UInt16.max)) {
            w.string(o.clientOrderID.rawValue)
            w.string(o.instrument.symbol)
            w.u8(o.side == .buy ? 1 : 2)
            w.i64(o.quantity)
        }
        w.u32(crc32(w.bytes))
        return w.bytes
    }

    public init(decoding bytes: [UInt8]) throws(CheckpointError) {
        guard bytes.count >= RunnerCheckpoint.magic.count + 1 + 4 else { throw .truncated }
        guard Array(bytes.prefix(4)) == RunnerCheckpoint.magic else { throw .badMagic }
        guard bytes[4] == RunnerCheckpoint.version else { throw .unsupportedVersion(bytes[4]) }
        let body = Array(bytes.dropLast(4))
        var tail = ByteReader(Array(bytes.suffix(4)))
        guard let stored = tail.u32(), stored == crc32(body) else { throw .badChecksum }
        var r = ByteReader(body)
        r.offset = 5
        guard let sequence = r.u64() else { throw .truncated }

        guard let positionCount = r.u16() else { throw .truncated }
        var positions: [Position] = []
        var seen: Set<Instrument> = []
        for _ in 0..<positionCount {
            let instrument = try r.instrument()
            guard seen.insert(instrument).inserted else { throw .invalid("instrument \(instrument) twice") }
            guard let net = r.i64(), let average = r.i64(), let realised = r.i64(), let hasLast = r.u8() else { throw .truncated }
            var last: Price?
            switch hasLast {
            case 0: last = nil
            case 1: guard let l = r.i64() else { throw .truncated }; last = Price(micros: l)
            default: throw .invalid("flag \(hasLast)")
            }
            guard let count = r.u64() else { throw .truncated }
            guard count <= UInt64(Int.max),
                  let p = Position(instrument: instrument, netQuantity: net, averagePrice: Price(micros: average),
                                   realisedPnL: Price(micros: realised), lastFillPrice: last, fillCount: Int(count))
            else { throw .invalid("position in \(instrument)") }
            positions.append(p)
        }

        guard let indicatorCount = r.u16() else { throw .truncated }
        var indicators: [Instrument: IndicatorState] = [:]
        for _ in 0..<indicatorCount {
            let instrument = try r.instrument()
            guard indicators[instrument] == nil else { throw .invalid("indicator for \(instrument) twice") }
            guard let short = r.u32(), let long = r.u32(), let rel = r.u8(), let n = r.u32() else { throw .truncated }
            let relation = Int(Int8(bitPattern: rel))
            guard (-1...1).contains(relation), short >= 1, short < long, long <= 100_000, n <= long else {
                throw .invalid("indicator for \(instrument)")
            }
            guard r.remaining >= Int(n) * 8 else { throw .truncated }
            var window: [Price] = []
            window.reserveCapacity(Int(n))
            for _ in 0..<n {
                let v = r.i64()!
                guard v > 0 else { throw .invalid("price in the \(instrument) window") }
                window.append(Price(micros: v))
            }
            indicators[instrument] = IndicatorState(shortWindow: Int(short), longWindow: Int(long), window: window,
                                                    lastRelation: relation)
        }

        guard let inFlightCount = r.u16() else { throw .truncated }
        var inFlight: [Order] = []
        var ids: Set<ClientOrderID> = []
        for _ in 0..<inFlightCount {
            guard let raw = r.string() else { throw .truncated }
            guard let id = try? ClientOrderID(raw) else { throw .invalid("client order id") }
            guard ids.insert(id).inserted else { throw .invalid("client order id \(id) twice") }
            let instrument = try r.instrument()
            guard let sideByte = r.u8(), let quantity = r.i64() else { throw .truncated }
            let side: Side
            switch sideByte {
            case 1: side = .buy
            case 2: side = .sell
            default: throw .invalid("side \(sideByte)")
            }
            guard let order = try? Order(clientOrderID: id, instrument: instrument, side: side, quantity: quantity) else {
                throw .invalid("order \(id)")
            }
            inFlight.append(order)
        }
        guard r.remaining == 0 else { throw .trailingBytes(r.remaining) }
        self.book = RunnerBook(portfolio: Portfolio(positions: positions), sequence: sequence, inFlight: inFlight)
        self.indicators = indicators
    }
}

/// Why bytes are not a runner checkpoint.
public enum CheckpointError: Error, Hashable, Sendable, CustomStringConvertible {
    case truncated
    case badMagic
    case unsupportedVersion(UInt8)
    case badChecksum
    case invalid(String)
    case trailingBytes(Int)

    public var description: String {
        switch self {
        case .truncated: "checkpoint is truncated"
        case .badMagic: "not a strategy-runner checkpoint (bad magic)"
        case .unsupportedVersion(let v): "checkpoint version \(v) is not supported"
        case .badChecksum: "checkpoint checksum does not match (corrupted)"
        case .invalid(let what): "checkpoint has an invalid \(what)"
        case .trailingBytes(let n): "checkpoint has \(n) trailing bytes"
        }
    }
}

// MARK: - Bytes

struct ByteWriter {
    var bytes: [UInt8] = []
    mutating func u8(_ v: UInt8) { bytes.append(v) }
    mutating func int<T: FixedWidthInteger>(_ v: T) { withUnsafeBytes(of: v.littleEndian) { bytes.append(contentsOf: $0) } }
    mutating func u16(_ v: UInt16) { int(v) }
    mutating func u32(_ v: UInt32) { int(v) }
    mutating func u64(_ v: UInt64) { int(v) }
    mutating func i64(_ v: Int64) { int(v) }
    mutating func string(_ s: String) {
        let u = Array(s.utf8.prefix(Int(UInt16.max)))
        u16(UInt16(u.count))
        bytes.append(contentsOf: u)
    }
}

struct ByteReader {
    let bytes: [UInt8]
    var offset = 0
    init(_ bytes: [UInt8]) { self.bytes = bytes }
    var remaining: Int { bytes.count - offset }
    mutating func int<T: FixedWidthInteger>() -> T? {
        let n = MemoryLayout<T>.size
        guard remaining >= n else { return nil }
        var v: T = 0
        for i in 0..<n { v |= T(truncatingIfNeeded: bytes[offset + i]) << (8 * i) }
        offset += n
        return v
    }
    mutating func u8() -> UInt8? { int() }
    mutating func u16() -> UInt16? { int() }
    mutating func u32() -> UInt32? { int() }
    mutating func u64() -> UInt64? { int() }
    mutating func i64() -> Int64? { int() }
    mutating func string() -> String? {
        guard let n = u16(), remaining >= Int(n) else { return nil }
        defer { offset += Int(n) }
        return String(validating: bytes[offset..<offset + Int(n)], as: UTF8.self)
    }
    mutating func instrument() throws(CheckpointError) -> Instrument {
        guard let s = string() else { throw .truncated }
        guard let i = try? Instrument(s) else { throw .invalid("instrument symbol") }
        return i
    }
}

/// CRC-32 (IEEE 802.3, reflected, as zlib computes it).
public func crc32(_ bytes: some Sequence<UInt8>) -> UInt32 {
    var crc: UInt32 = 0xFFFF_FFFF
    for b in bytes {
        crc ^= UInt32(b)
        for _ in 0..<8 { crc = (crc >> 1) ^ (0xEDB8_8320 & (0 &- (crc & 1))) }
    }
    return ~crc
}
