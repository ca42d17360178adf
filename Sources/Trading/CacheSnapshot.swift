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
    /// Every owner's net position and cost per instrument, and the last fill prices: what
    /// the risk guardian reads (`GET book`).
    public let book: RiskBook
    /// Net quantity per owner (`orderOwner`; `venue` for fills without one) and instrument.
    public var positions: [String: [Instrument: Quantity]] { book.positions }
    public let fillCount: Int
    /// The highest fill id included: a lookup answers for the fills up to this one.
    public let lastFillID: Int64
    /// When the read it was built from began, on the system's monotonic clock (nanoseconds;
    /// CLOCK_MONOTONIC is one clock for every process of the machine), for its age.
    public let builtNs: Int64

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
                lastPrices: [Instrument: (price: Price, updatedNs: Int64)], fills: [Fill], builtNs: Int64 = 0) throws(BuildError) {
        guard !instruments.isEmpty else { throw .noInstruments }
        self.generation = generation
        self.builtNs = builtNs
        var seeds: [Instrument: Price] = [:], quotes: [Instrument: Quote] = [:]
        for (i, seed) in instruments {
            seeds[i] = seed
            quotes[i] = lastPrices[i].map { Quote(price: $0.price, updatedNs: $0.updatedNs) } ?? Quote(price: seed, updatedNs: nil)
        }
        self.seeds = seeds
        self.quotes = quotes
        book = RiskBook(fills: fills)
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
    ///     GET book                       BOOK generation=<n> age_ms=<ms> fills=<n> last_fill=<id>
    ///                                      | PRICE <symbol> <price> <updated ns | seed> ...
    ///                                      | LASTFILL <symbol> <price> ...
    ///                                      | HOLDING <owner> <symbol> <net> <cost> ...
    ///
    /// `GET book` is everything the risk guardian reads, from this one snapshot, on one line
    /// (parts separated by ` | `, see `CachedBook`): every instrument's quote, the last fill
    /// price of each traded instrument, every owner's holding (net lots and cost, see
    /// `RiskBook`), and the snapshot's age at `now` (monotonic ns; `builtNs` if not given).
    /// An instrument the database does not have is `NOTFOUND instrument <symbol>`; an owner
    /// without fills has position 0. Anything else is `ERROR <reason>`.
    public func answer(_ request: String, now: Int64? = nil) -> String {
        let words = request.split(separator: " ", omittingEmptySubsequences: true).map(String.init)
        func instrument(_ s: String) -> Instrument? { (try? Instrument(s)).flatMap { seeds[$0] != nil ? $0 : nil } }
        switch (words.first, words.count) {
        case ("INFO", 1):
            return "CACHE generation=\(generation) instruments=\(seeds.count) fills=\(fillCount) last_fill=\(lastFillID)"
        case ("GET", 2) where words[1] == "book":
            return bookLine(ageNs: max(0, (now ?? builtNs) - builtNs))
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

extension CacheSnapshot {
    /// The answer to `GET book` (see `answer`), parts in a stable order.
    func bookLine(ageNs: Int64) -> String {
        var parts = ["BOOK generation=\(generation) age_ms=\(ageNs / 1_000_000) fills=\(fillCount) last_fill=\(lastFillID)"]
        for (i, q) in quotes.sorted(by: { $0.key < $1.key }) {
            parts.append("PRICE \(i) \(q.price) \(q.updatedNs.map(String.init) ?? "seed")")
        }
        for (i, p) in book.lastFillPrices.sorted(by: { $0.key < $1.key }) { parts.append("LASTFILL \(i) \(p)") }
        for (owner, byInstrument) in book.holdings.sorted(by: { $0.key < $1.key }) {
            for (i, h) in byInstrument.sorted(by: { $0.key < $1.key }) { parts.append("HOLDING \(owner) \(i) \(h.net) \(h.cost)") }
        }
        return parts.joined(separator: " | ")
    }
}

/// The cache warmer's answer to `GET book`, parsed: what the risk guardian reads from it.
public struct CachedBook: Hashable, Sendable {
    /// The snapshot's generation (counts up with every rebuild of one cache warmer).
    public var generation: Int
    /// How old the snapshot was when it answered (millisecond resolution).
    public var ageNs: Int64
    /// The gateway's last prices (a seed price is no mark, as in the database's `lastPrices`).
    public var marks: [Instrument: Price]
    public var book: RiskBook

    public init(generation: Int, ageNs: Int64, marks: [Instrument: Price], book: RiskBook) {
        self.generation = generation
        self.ageNs = ageNs
        self.marks = marks
        self.book = book
    }

    /// Why an answer is no book.
    public enum ParseError: Error, Hashable, Sendable, CustomStringConvertible {
        /// `ERROR <reason>` from the cache (`cache_rebuilding` while it has no snapshot).
        case refused(String)
        /// Anything else that is not a well-formed `BOOK` line.
        case malformed(String)

        public var description: String {
            switch self {
            case .refused(let r): "the cache answered ERROR \(r)"
            case .malformed(let why): "not a book: \(why)"
            }
        }
    }

    /// Parses one answer line (without its newline). Strict: a part, field or number that
    /// is not exactly what `CacheSnapshot.answer` writes is `.malformed`.
    public init(parsing line: String) throws(ParseError) {
        if line.hasPrefix("ERROR") {
            let reason = line.dropFirst(5).drop { $0 == " " }
            throw .refused(reason.isEmpty ? "unknown" : String(reason))
        }
        let parts = line.split(separator: " | ", omittingEmptySubsequences: false)
        guard let head = parts.first?.split(separator: " ", omittingEmptySubsequences: false),
              head.count == 5, head[0] == "BOOK" else {
            throw .malformed("does not start with BOOK and its four fields: \(line.prefix(80))")
        }
        func field(_ word: Substring, _ name: String) throws(ParseError) -> Int64 {
            guard word.hasPrefix(name + "="), let v = Int64(word.dropFirst(name.count + 1)), v >= 0 else {
                throw .malformed("expected \(name)=<n>, got \(word.prefix(40))")
            }
            return v
        }
        let generation = try field(head[1], "generation")
        let ageMs = try field(head[2], "age_ms")
        let fillCount = try field(head[3], "fills")
        let lastFill = try field(head[4], "last_fill")
        func instrument(_ w: Substring) throws(ParseError) -> Instrument {
            guard let i = try? Instrument(String(w)) else { throw .malformed("bad symbol \(w.prefix(20))") }
            return i
        }
        func price(_ w: Substring, negative: Bool = false) throws(ParseError) -> Price {
            guard let p = Price(parsing: w, allowNegative: negative) else { throw .malformed("bad amount \(w.prefix(30))") }
            return p
        }
        var marks: [Instrument: Price] = [:], lastFills: [Instrument: Price] = [:]
        var holdings: [String: [Instrument: RiskBook.Holding]] = [:]
        for part in parts.dropFirst() {
            let w = part.split(separator: " ", omittingEmptySubsequences: false)
            switch (w.first, w.count) {
            case ("PRICE", 4):
                let i = try instrument(w[1]), p = try price(w[2])
                if w[3] != "seed" {
                    guard Int64(w[3]) != nil else { throw .malformed("bad update time \(w[3].prefix(30))") }
                    guard marks.updateValue(p, forKey: i) == nil else { throw .malformed("\(i) priced twice") }
                }
            case ("LASTFILL", 3):
                let i = try instrument(w[1])
                guard lastFills.updateValue(try price(w[2]), forKey: i) == nil else { throw .malformed("\(i) last fill twice") }
            case ("HOLDING", 5):
                guard ClientOrderID.isValid(w[1]) else { throw .malformed("bad owner \(w[1].prefix(70))") }
                let i = try instrument(w[2])
                guard let net = Int64(w[3]) else { throw .malformed("bad net quantity \(w[3].prefix(30))") }
                let h = RiskBook.Holding(net: net, cost: try price(w[4], negative: true))
                guard holdings[String(w[1]), default: [:]].updateValue(h, forKey: i) == nil else {
                    throw .malformed("\(w[1]) holds \(i) twice")
                }
            default:
                throw .malformed("unknown part \(part.prefix(40))")
            }
        }
        guard let g = Int(exactly: generation), let n = Int(exactly: fillCount) else { throw .malformed("numbers out of range") }
        self.init(generation: g, ageNs: ageMs.saturatingMultiply(1_000_000),
                  marks: marks, book: RiskBook(holdings: holdings, lastFillPrices: lastFills, fillCount: n, lastFillID: lastFill))
    }
}
