/// Where the risk guardian reads its risk picture from, tick by tick: the cache warmer when
/// it answers with a fresh book, else the database. Pure: the guardian feeds it what one
/// query of the cache gave and acts on the choice.

/// One of the guardian's two sources.
public enum RiskSource: String, Hashable, Sendable, CustomStringConvertible {
    case cache, database
    public var description: String { rawValue }
}

/// What one query of the cache warmer gave.
public enum CacheReading: Hashable, Sendable {
    /// A well-formed answer to `GET book`.
    case book(CachedBook)
    /// No book: the cache is down (no socket, refused), wedged (no answer in time),
    /// rebuilding (`ERROR cache_rebuilding`), or answered something else. The text says which.
    case failed(String)
}

/// Chooses the source for each tick, and says when the choice changes (once per switch).
///
/// The cache is used while it answers with a book at most `maxAgeNs` old. A cache that
/// keeps serving an old snapshot (its rebuilds fail: the database is flagged, being
/// restored, or missing) is *stale*: its age grows with every failed rebuild, so a book
/// older than a few of its rebuild intervals is no longer trusted. Any failed, stale or
/// malformed reading switches to the database at once (the risk picture must be current);
/// going back to the cache takes `freshReadsToReturn` fresh readings in a row, so a cache
/// that flaps does not make the guardian (and its journal) flap with it.
public struct RiskSourceSelector: Hashable, Sendable {
    public let maxAgeNs: Int64
    public let freshReadsToReturn: Int
    /// The source chosen last; nil before the first choice.
    public private(set) var source: RiskSource?
    /// Fresh readings in a row, up to the last one.
    public private(set) var freshInARow = 0

    public init(maxAgeNs: Int64, freshReadsToReturn: Int = 3) {
        self.maxAgeNs = maxAgeNs
        self.freshReadsToReturn = max(1, freshReadsToReturn)
    }

    /// A change of source, for the journal.
    public struct Switch: Hashable, Sendable, CustomStringConvertible {
        public var from: RiskSource?
        public var to: RiskSource
        /// Why: the cache's generation and age, or what was wrong with it.
        public var why: String

        public var description: String {
            switch to {
            case .cache: "risk data from the cache warmer\(from == nil ? "" : " again") (\(why))"
            case .database: "risk data from the database\(from == nil ? "" : " instead of the cache"): \(why)"
            }
        }
    }

    /// The choice for one tick: the source, the book when it is the cache, and the switch
    /// when the source differs from the last tick's (the first choice is one too).
    public struct Choice: Hashable, Sendable {
        public var source: RiskSource
        public var book: CachedBook?
        public var switched: Switch?
    }

    /// Takes in one reading of the cache and chooses.
    public mutating func choose(_ reading: CacheReading) -> Choice {
        var fresh: CachedBook?
        let why: String
        switch reading {
        case .book(let b) where b.ageNs <= maxAgeNs:
            fresh = b
            why = "generation \(b.generation), \(Duration.nanoseconds(b.ageNs)) old"
        case .book(let b):
            why = "cache stale: generation \(b.generation) is \(Duration.nanoseconds(b.ageNs)) old (at most \(Duration.nanoseconds(maxAgeNs)))"
        case .failed(let problem):
            why = "cache \(problem)"
        }
        freshInARow = fresh == nil ? 0 : freshInARow + 1
        let next: RiskSource
        if let _ = fresh {
            next = source == nil || source == .cache || freshInARow >= freshReadsToReturn ? .cache : .database
        } else {
            next = .database
        }
        defer { source = next }
        let switched = next == source ? nil : Switch(from: source, to: next, why: why)
        return Choice(source: next, book: next == .cache ? fresh : nil, switched: switched)
    }
}
