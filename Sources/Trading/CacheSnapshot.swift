// The cache warmer's cache: instruments, last prices and every owner's positions, built in
// one go from one read of the database and never changed afterwards. A rebuild makes a new
// snapshot and replaces the old one in a single assignment, so a lookup sees one whole
// snapshot or the other, never a cache half-way through a rebuild.

/// One immutable cache of the trading database.
public struct CacheSnapshot: Sendable {
    /// The last price of an instrument: from the gateway, or the seed price until it has one.
    public struct Quote: Hashable, Sendable {
        public var price: Price
        /// Nanoseconds since the epoch of the gateway's update; nil for a seed price.
        public var updatedNs: Int64?
    }

    /// Counts up with every rebuild in one cache warmer.
    public let generation: Int
    public let seeds: [Instrument: Price]
    public let quotes: [Instrument: Quote]
    /// Net quantity per owner (`orderOwner`; `venue` for fills without one) and instrument.
    public let positions: [String: [Instrument: Quantity]]
    public let fillCount: Int
    /// The highest fill id included: a lookup answers for the fills up to this one.
    public let lastFillID: Int64

    /// The owner name of fills whose client order id names no strategy (the venue's own).
    public static let venueOwner = "venue"

    /// Why a snapshot cannot be built: the cache would not be warm.
    public enum BuildError: Error, Equatable, CustomStringConvertible {
        case noInstruments
        public var description: String { "no instruments in the database" }
    }

    /// Builds a snapshot from one consistent read of the database: `instruments` with
    /// their seed prices, the `lastPrices` the gateway stored, and every fill.
    public init(generation: Int, instruments: [(Instrument, seed: Price)],
                lastPrices: [Instrument: (price: Price, updatedNs: Int64)], fills: [Fill]) throws(BuildError) {
        guard !instruments.isEmpty else { throw .noInstruments }
        self.generation = generation
        var seeds: [Instrument: Price] = [:], quotes: [Instrument: Quote] = [:]
        for (i, seed) in instruments {
            seeds[i] = seed
            quotes[i] = lastPrices[i].map { Quote(price: $0.price, updatedNs: $0.updatedNs) } ?? Quote(price: seed, updatedNs: nil)
        }
        var positions: [String: [Instrument: Quantity]] = [:]
        for f in fills {
            let owner = orderOwner(f.clientOrderID) ?? CacheSnapshot.venueOwner
            positions[owner, default: [:]][f.instrument, default: 0] = positions[owner, default: [:]][f.instrument, default: 0].saturatingAdd(f.signedQuantity)
        }
        self.seeds = seeds
        self.quotes = quotes
        self.positions = positions
        fillCount = fills.count
        lastFillID = fills.map(\.fillID).max() ?? 0
    }

    /// Quotes with a gateway price (not only a seed).
    public var livePrices: Int { quotes.values.filter { $0.updatedNs != nil }.count }

    /// Answers one request line of the cache protocol with one line (no newline):
    ///
    ///     GET price <symbol>             PRICE <symbol> <price> <updated ns | seed>
    ///     GET instrument <symbol>        INSTRUMENT <symbol> <seed price>
    ///     GET position <owner> <symbol>  POSITION <owner> <symbol> <net quantity>
    ///     INFO                           CACHE generation=<n> instruments=<n> fills=<n> last_fill=<id>
    ///
    /// An instrument the database does not have is `NOTFOUND instrument <symbol>`; an owner
    /// without fills has position 0. Anything else is `ERROR <reason>`.
    public func answer(_ request: String) -> String {
        let words = request.split(separator: " ", omittingEmptySubsequences: true).map(String.init)
        func instrument(_ s: String) -> Instrument? { (try? Instrument(s)).flatMap { seeds[$0] != nil ? $0 : nil } }
        switch (words.first, words.count) {
        case ("INFO", 1):
            return "CACHE generation=\(generation) instruments=\(seeds.count) fills=\(fillCount) last_fill=\(lastFillID)"
        case ("GET", 3) where words[1] == "price":
            guard let i = instrument(words[2]), let q = quotes[i] else { return "NOTFOUND instrument \(words[2])" }
            return "PRICE \(i) \(q.price) \(q.updatedNs.map(String.init) ?? "seed")"
        case ("GET", 3) where words[1] == "instrument":
            guard let i = instrument(words[2]) else { return "NOTFOUND instrument \(words[2])" }
            return "INSTRUMENT \(i) \(seeds[i]!)"
        case ("GET", 4) where words[1] == "position":
            guard ClientOrderID.isValid(words[2]) else { return "ERROR bad_owner" }
            guard let i = instrument(words[3]) else { return "NOTFOUND instrument \(words[3])" }
            return "POSITION \(words[2]) \(i) \(positions[words[2]]?[i] ?? 0)"
        case ("GET", _):
            return "ERROR unknown_lookup"
        default:
            return "ERROR unknown_request"
        }
    }
}
