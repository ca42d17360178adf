/// What the risk guardian's exposure and drawdown rules read, in a form both of its sources
/// give exactly: every owner's net position and cost per instrument, and the last fill price
/// per instrument (the fallback mark). The guardian builds it from the fills in the database,
/// or reads it whole from the cache warmer (`GET book`); the numbers are the same either way,
/// so a switch of source never moves exposure or equity.
///
/// Equity is marked to market exactly: for each holding, `net * mark - cost`, where `cost`
/// is the sum of `signed quantity * fill price` over its fills (what was paid, less what was
/// received). That is realised plus unrealised P&L, without the rounding of an average price.
public struct RiskBook: Hashable, Sendable {
    /// One owner's holding of one instrument.
    public struct Holding: Hashable, Sendable {
        /// Net lots: positive long, negative short.
        public var net: Quantity
        /// Sum of `signed quantity * price` over the fills, in micros (saturating): a flat
        /// holding's cost is minus its realised P&L.
        public var cost: Price

        public init(net: Quantity, cost: Price) {
            self.net = net
            self.cost = cost
        }
    }

    /// Holdings per owner (`orderOwner`; `CacheSnapshot.venueOwner` for fills without
    /// one) and instrument. Flat holdings are kept: their cost is realised P&L.
    public private(set) var holdings: [String: [Instrument: Holding]] = [:]
    /// The price of the most recent fill (highest fill id) per instrument.
    public private(set) var lastFillPrices: [Instrument: Price] = [:]
    /// How many fills were applied, and the highest fill id among them.
    public private(set) var fillCount = 0
    public private(set) var lastFillID: Int64 = 0

    public init() {}

    /// A book exactly as given (parsed from the cache).
    public init(holdings: [String: [Instrument: Holding]], lastFillPrices: [Instrument: Price], fillCount: Int, lastFillID: Int64) {
        self.holdings = holdings
        self.lastFillPrices = lastFillPrices
        self.fillCount = fillCount
        self.lastFillID = lastFillID
    }

    /// The book of `fills`, applied in order.
    public init(fills: some Sequence<Fill>) {
        for f in fills { apply(f) }
    }

    /// Applies one fill (in fill-id order).
    public mutating func apply(_ fill: Fill) {
        let owner = orderOwner(fill.clientOrderID) ?? CacheSnapshot.venueOwner
        var h = holdings[owner, default: [:]][fill.instrument] ?? Holding(net: 0, cost: .zero)
        h.net = h.net.saturatingAdd(fill.signedQuantity)
        let paid = Price(micros: Int64(clamping: Int128(fill.signedQuantity) * Int128(fill.price.micros)))
        h.cost = h.cost + paid
        holdings[owner, default: [:]][fill.instrument] = h
        if fill.fillID >= lastFillID {
            lastFillPrices[fill.instrument] = fill.price
            lastFillID = fill.fillID
        }
        fillCount += 1
    }

    /// Net quantity per instrument over every owner (flat ones left out).
    public var netQuantities: [Instrument: Quantity] {
        var out: [Instrument: Quantity] = [:]
        for byInstrument in holdings.values {
            for (i, h) in byInstrument { out[i, default: 0] = out[i, default: 0].saturatingAdd(h.net) }
        }
        return out.filter { $0.value != 0 }
    }

    /// Net quantity per owner and instrument (flat ones kept), as the cache's positions.
    public var positions: [String: [Instrument: Quantity]] { holdings.mapValues { $0.mapValues(\.net) } }

    /// Whether any instrument has a non-zero net position over all owners.
    public var hasOpenPositions: Bool { !netQuantities.isEmpty }

    /// The mark of `instrument`: `marks` (the gateway's last prices), else the last fill price.
    func mark(_ instrument: Instrument, _ marks: [Instrument: Price]) -> Price? {
        marks[instrument] ?? lastFillPrices[instrument]
    }

    /// Exposure, |net over all owners| * mark, per instrument and in total (as `Portfolio`).
    public func exposure(marks: [Instrument: Price]) -> ExposureReport {
        var per: [Instrument: Price] = [:]
        var total = Price.zero
        var unpriced: [Instrument] = []
        for (instrument, net) in netQuantities {
            guard let m = mark(instrument, marks) else {
                unpriced.append(instrument)
                continue
            }
            let e = notional(net, at: m)
            per[instrument] = e
            total = total + e
        }
        return ExposureReport(perInstrument: per, total: total, unpriced: unpriced.sorted())
    }

    /// Realised plus unrealised P&L at `marks`: the sum of `net * mark - cost` over every
    /// holding (each has a fill, so a mark: at worst its instrument's last fill price).
    public func equity(marks: [Instrument: Price]) -> Price {
        var total = Int128(0)
        for byInstrument in holdings.values {
            for (i, h) in byInstrument {
                let value = mark(i, marks).map { Int128(h.net) * Int128($0.micros) } ?? 0
                total += value - Int128(h.cost.micros)
            }
        }
        return Price(micros: Int64(clamping: total))
    }
}
