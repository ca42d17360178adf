/// Positions, portfolios, exposure and limits.

/// The net position in one instrument, built by applying fills in order.
///
/// Average price is the volume-weighted entry price of the open quantity, rounded to the
/// nearest micro (halves away from zero). Reducing a position realises
/// `(fill price - average) * closed quantity` (sign-adjusted for shorts); a fill that
/// crosses zero closes the old position entirely and opens the remainder at the fill price.
public struct Position: Hashable, Sendable {
    public let instrument: Instrument
    /// Net lots: positive long, negative short, 0 flat.
    public private(set) var netQuantity: Quantity = 0
    /// Average entry price of the open quantity; zero when flat.
    public private(set) var averagePrice: Price = .zero
    /// P&L realised by closing trades, in micros.
    public private(set) var realisedPnL: Price = .zero
    /// Price of the most recent fill (a fallback mark when no market price is known).
    public private(set) var lastFillPrice: Price?
    /// How many fills were applied.
    public private(set) var fillCount = 0

    public init(instrument: Instrument) { self.instrument = instrument }

    /// A position exactly as it was (restored from a checkpoint). Returns nil for a state
    /// `apply` could never produce: a negative average, a flat position with an average, an
    /// open one without, or a negative fill count.
    public init?(instrument: Instrument, netQuantity: Quantity, averagePrice: Price, realisedPnL: Price,
                 lastFillPrice: Price?, fillCount: Int) {
        guard averagePrice.micros >= 0, fillCount >= 0, (netQuantity == 0) == (averagePrice.micros == 0),
              lastFillPrice.map({ $0.micros > 0 }) ?? true, netQuantity == 0 || fillCount > 0
        else { return nil }
        self.instrument = instrument
        self.netQuantity = netQuantity
        self.averagePrice = averagePrice
        self.realisedPnL = realisedPnL
        self.lastFillPrice = lastFillPrice
        self.fillCount = fillCount
    }

    /// Applies one fill. Throws if the fill is for another instrument.
    public mutating func apply(_ fill: Fill) throws(TradingError) {
        guard fill.instrument == instrument else {
            throw .instrumentMismatch(position: instrument.symbol, fill: fill.instrument.symbol)
        }
        let q = fill.signedQuantity
        let p = fill.price
        fillCount += 1
        lastFillPrice = p
        if netQuantity == 0 || (netQuantity > 0) == (q > 0) {
            // Opening or adding: weighted average of old and new.
            let oldAbs = Int128(netQuantity.magnitude), addAbs = Int128(q.magnitude)
            let total = oldAbs + addAbs
            let weighted = Int128(averagePrice.micros) * oldAbs + Int128(p.micros) * addAbs
            averagePrice = Price(micros: Int64(clamping: (weighted + total / 2) / total))
            netQuantity = netQuantity.saturatingAdd(q)
            return
        }
        // Reducing, closing or flipping.
        let closed = min(netQuantity.magnitude, q.magnitude)
        let direction: Int128 = netQuantity > 0 ? 1 : -1
        let pnl = (Int128(p.micros) - Int128(averagePrice.micros)) * Int128(closed) * direction
        realisedPnL = Price(micros: Int64(clamping: Int128(realisedPnL.micros) + pnl))
        netQuantity += q
        if netQuantity == 0 {
            averagePrice = .zero
        } else if (netQuantity > 0) != (direction > 0) {
            averagePrice = p  // flipped through zero: the remainder opened at this fill
        }
    }

    /// |net| * mark.
    public func exposure(at mark: Price) -> Price { notional(netQuantity, at: mark) }

    /// (mark - average) * net: what closing at `mark` would realise.
    public func unrealisedPnL(at mark: Price) -> Price {
        guard netQuantity != 0 else { return .zero }
        let v = (Int128(mark.micros) - Int128(averagePrice.micros)) * Int128(netQuantity)
        return Price(micros: Int64(clamping: v))
    }
}

/// Exposure of a portfolio at a set of marks.
public struct ExposureReport: Hashable, Sendable {
    /// |net| * mark per instrument with a non-zero position.
    public var perInstrument: [Instrument: Price]
    /// The sum over instruments (saturating).
    public var total: Price
    /// Instruments with an open position but no mark at all (counted as zero exposure).
    public var unpriced: [Instrument]
}

/// All positions, keyed by instrument.
public struct Portfolio: Hashable, Sendable {
    public private(set) var positions: [Instrument: Position] = [:]

    public init() {}

    /// A portfolio of restored positions (one per instrument; flat ones are kept too).
    public init(positions: [Position]) {
        for p in positions { self.positions[p.instrument] = p }
    }

    /// The portfolio built by applying `fills` in order.
    public init(fills: some Sequence<Fill>) {
        for f in fills { apply(f) }
    }

    /// Net quantity per instrument, leaving out flat ones.
    public var netQuantities: [Instrument: Quantity] {
        positions.compactMapValues { $0.netQuantity == 0 ? nil : $0.netQuantity }
    }

    /// Realised plus unrealised P&L at `marks` (the last fill price where an instrument has
    /// no mark).
    public func equity(marks: [Instrument: Price]) -> Price {
        positions.values.reduce(.zero) { total, p in
            let mark = marks[p.instrument] ?? p.lastFillPrice
            return total + p.realisedPnL + (mark.map { p.unrealisedPnL(at: $0) } ?? .zero)
        }
    }

    public mutating func apply(_ fill: Fill) {
        var position = positions[fill.instrument] ?? Position(instrument: fill.instrument)
        try! position.apply(fill)  // same instrument by construction
        positions[fill.instrument] = position
    }

    /// Total realised P&L over all instruments.
    public var realisedPnL: Price { positions.values.reduce(.zero) { $0 + $1.realisedPnL } }

    /// Exposure at `marks`; an instrument without a mark falls back to its last fill price.
    public func exposure(marks: [Instrument: Price]) -> ExposureReport {
        var per: [Instrument: Price] = [:]
        var total = Price.zero
        var unpriced: [Instrument] = []
        for (instrument, position) in positions where position.netQuantity != 0 {
            guard let mark = marks[instrument] ?? position.lastFillPrice else {
                unpriced.append(instrument)
                continue
            }
            let e = position.exposure(at: mark)
            per[instrument] = e
            total = total + e
        }
        return ExposureReport(perInstrument: per, total: total, unpriced: unpriced.sorted())
    }
}

/// Exposure limits: on the total, and optionally on every single instrument.
public struct ExposureLimits: Hashable, Sendable {
    public var total: Price?
    public var perInstrument: Price?

    public init(total: Price?, perInstrument: Price? = nil) {
        self.total = total
        self.perInstrument = perInstrument
    }

    /// One limit exceeded (strictly greater than the limit).
    public enum Breach: Hashable, Sendable, CustomStringConvertible {
        case total(exposure: Price, limit: Price)
        case instrument(Instrument, exposure: Price, limit: Price)

        public var description: String {
            switch self {
            case .total(let e, let l): "total exposure \(e) exceeds limit \(l)"
            case .instrument(let i, let e, let l): "\(i) exposure \(e) exceeds per-instrument limit \(l)"
            }
        }
    }

    /// Every breach in `report`: the total first, then instruments by symbol.
    public func breaches(in report: ExposureReport) -> [Breach] {
        var out: [Breach] = []
        if let limit = total, report.total > limit { out.append(.total(exposure: report.total, limit: limit)) }
        if let limit = perInstrument {
            for (i, e) in report.perInstrument.sorted(by: { $0.key < $1.key }) where e > limit {
                out.append(.instrument(i, exposure: e, limit: limit))
            }
        }
        return out
    }
}
