/// The risk guardian's rules as pure functions: what to answer vigil's restart requests,
/// and what to order on its own. Times are nanoseconds on any monotonic clock.

/// The guardian's answer to "may this child be restarted?", independent of the wire.
public enum GuardianDecision: Hashable, Sendable {
    case allow
    case deny(reason: String)
    case safeMode(reason: String)
    case liquidate(reason: String)
}

/// What the guardian orders on its own.
public enum GuardianAction: Hashable, Sendable {
    case safeModeOn(reason: String)
    case safeModeOff(reason: String)
    case liquidate(reason: String)
}

/// The risk picture at one moment, from the fills and the last prices.
public struct RiskSnapshot: Hashable, Sendable {
    public var breaches: [ExposureLimits.Breach]
    /// Realised + unrealised P&L now.
    public var equity: Price
    /// Whether any position is open.
    public var hasOpenPositions: Bool

    public init(breaches: [ExposureLimits.Breach], equity: Price, hasOpenPositions: Bool) {
        self.breaches = breaches
        self.equity = equity
        self.hasOpenPositions = hasOpenPositions
    }
}

/// The rules from the topology's flags.
public struct GuardianRules: Hashable, Sendable {
    /// Largest allowed fall of equity from its peak (nil: no drawdown rule).
    public var maxDrawdown: Price?
    /// Restarts allowed per child within `restartWindowNs` (nil: no restart-rate rule).
    public var maxRestartsPerChild: Int?
    public var restartWindowNs: Int64
    /// How long exposure must stay within limits before safe mode is lifted.
    public var allClearNs: Int64

    public init(maxDrawdown: Price?, maxRestartsPerChild: Int?, restartWindowNs: Int64, allClearNs: Int64) {
        self.maxDrawdown = maxDrawdown
        self.maxRestartsPerChild = maxRestartsPerChild
        self.restartWindowNs = restartWindowNs
        self.allClearNs = allClearNs
    }
}

/// The guardian's memory: restart times per child, the equity peak, what it has ordered.
public struct GuardianState: Hashable, Sendable {
    public let rules: GuardianRules
    /// Times of the restarts allowed per child, oldest first, within the window.
    public private(set) var restarts: [String: [Int64]] = [:]
    /// Highest equity seen since the last liquidation (or start).
    public private(set) var peakEquity: Price?
    /// Whether this guardian has ordered safe mode and not lifted it.
    public private(set) var safeModeOrdered = false
    /// Whether a liquidation was ordered and positions are not flat yet.
    public private(set) var liquidationOrdered = false
    /// Since when exposure has been within limits (nil: breached now).
    public private(set) var withinLimitsSince: Int64?
    /// The last snapshot observed.
    public private(set) var last: RiskSnapshot?
    /// An operator lifted safe mode during this exposure breach (see `safeModeLifted`).
    public private(set) var breachAcknowledged = false

    public init(rules: GuardianRules) { self.rules = rules }

    /// What a guardian must remember across its own restarts: whether it ordered safe mode
    /// or a liquidation (only then may its all-clear lift them), the equity peak its
    /// drawdown is measured from, and the restarts it allowed per child within the window
    /// (the last `Memory.restartsKept` of each: a restart-rate limit must not reset when
    /// the guardian itself is restarted).
    public struct Memory: Hashable, Sendable {
        public static let restartsKept = 64
        public var safeModeOrdered: Bool
        public var liquidationOrdered: Bool
        public var peakEquity: Price?
        public var restarts: [String: [Int64]]
        public init(safeModeOrdered: Bool, liquidationOrdered: Bool, peakEquity: Price?, restarts: [String: [Int64]] = [:]) {
            self.safeModeOrdered = safeModeOrdered
            self.liquidationOrdered = liquidationOrdered
            self.peakEquity = peakEquity
            self.restarts = restarts
        }
    }

    public var memory: Memory {
        Memory(safeModeOrdered: safeModeOrdered, liquidationOrdered: liquidationOrdered, peakEquity: peakEquity,
               restarts: restarts.mapValues { Array($0.suffix(Memory.restartsKept)) }.filter { !$0.value.isEmpty })
    }

    /// A guardian that continues from what its previous incarnation checkpointed.
    public init(rules: GuardianRules, restoring m: Memory) {
        self.rules = rules
        safeModeOrdered = m.safeModeOrdered
        liquidationOrdered = m.liquidationOrdered
        peakEquity = m.peakEquity
        restarts = m.restarts
    }

    /// vigil left safe mode on an operator's word: this guardian's order no longer stands,
    /// so a later breach orders it afresh instead of assuming it is still on.
    /// The exposure breach standing at that moment counts as acknowledged: it orders no
    /// safe mode and vetoes no restart until exposure has been back within limits once
    /// (an operator who overrides the guardian is not overruled a second later).
    public mutating func safeModeLifted() {
        safeModeOrdered = false
        liquidationOrdered = false
        breachAcknowledged = !(last?.breaches.isEmpty ?? true)
    }

    /// Equity below peak now (zero when at or above it).
    public var drawdown: Price {
        guard let peak = peakEquity, let e = last?.equity, e < peak else { return .zero }
        return peak - e
    }

    public var drawdownBreached: Bool {
        guard let limit = rules.maxDrawdown else { return false }
        return drawdown > limit
    }

    /// Takes in a new snapshot and returns what to order, at most one action per kind, in
    /// order: liquidation first (it implies safe mode), then safe mode on or off.
    public mutating func observe(_ s: RiskSnapshot, at now: Int64) -> [GuardianAction] {
        last = s
        if liquidationOrdered && !s.hasOpenPositions {
            // Flat after a liquidation: the loss is realised; measure drawdown afresh.
            liquidationOrdered = false
            peakEquity = s.equity
        }
        if peakEquity.map({ s.equity > $0 }) ?? true { peakEquity = s.equity }
        var actions: [GuardianAction] = []
        if drawdownBreached && s.hasOpenPositions && !liquidationOrdered {
            liquidationOrdered = true
            actions.append(.liquidate(reason: "drawdown \(drawdown) exceeds \(rules.maxDrawdown!)"))
        }
        if s.breaches.isEmpty {
            breachAcknowledged = false
            if withinLimitsSince == nil { withinLimitsSince = now }
            if safeModeOrdered && !liquidationOrdered && now - withinLimitsSince! >= rules.allClearNs {
                safeModeOrdered = false
                actions.append(.safeModeOff(reason: "exposure within limits for \(Duration.nanoseconds(rules.allClearNs))"))
            }
        } else {
            withinLimitsSince = nil
            if !safeModeOrdered && !breachAcknowledged {
                safeModeOrdered = true
                actions.append(.safeModeOn(reason: s.breaches.map(\.description).joined(separator: "; ")))
            }
        }
        return actions
    }

    /// Answers a restart request for `child` at `now`, and remembers an allowed restart.
    /// Drawdown beats exposure beats the restart rate.
    public mutating func decide(restartOf child: String, at now: Int64) -> GuardianDecision {
        if drawdownBreached {
            return .liquidate(reason: "drawdown \(drawdown) exceeds \(rules.maxDrawdown!)")
        }
        if let s = last, !s.breaches.isEmpty, !breachAcknowledged {
            return .safeMode(reason: s.breaches.map(\.description).joined(separator: "; "))
        }
        var times = (restarts[child] ?? []).filter { now - $0 < rules.restartWindowNs }
        if let limit = rules.maxRestartsPerChild, times.count >= limit {
            restarts[child] = times
            return .deny(reason: "\(child) restarted \(times.count) times within \(Duration.nanoseconds(rules.restartWindowNs)) (limit \(limit))")
        }
        times.append(now)
        restarts[child] = times
        return .allow
    }
}

// MARK: - Liquidation

/// The strategy that owns a client order id, or nil for the venue's own and foreign ids.
/// A runner's ids are `<owner>.<incarnation>.<session>.<sequence>` with a numeric
/// incarnation (the owner, its tree name, may itself hold dots: `strategy-runner.2`).
public func orderOwner(_ id: ClientOrderID) -> String? {
    let parts = id.rawValue.split(separator: ".", omittingEmptySubsequences: false)
    guard parts.count >= 4, !parts[parts.count - 3].isEmpty, parts[parts.count - 3].utf8.allSatisfy(isDigit) else { return nil }
    let owner = parts.dropLast(3).joined(separator: ".")
    return owner.isEmpty ? nil : owner
}

/// The client order id of liquidation step `step`: the owner's own id space (incarnation
/// 0, which no runner has, session `liq<liquidation>`), so the flattening fill counts in
/// that strategy's book; the venue's `liquidation.<liquidation>.<step>` without an owner
/// (or when the owner's name would not fit an id).
public func liquidationOrderID(owner: String?, liquidation: Int64, step: Int) -> ClientOrderID {
    if let owner, let id = try? ClientOrderID("\(owner).0.liq\(liquidation).\(step)") { return id }
    return try! ClientOrderID("liquidation.\(liquidation).\(step)")  // digits and dots
}

/// The market orders that flatten `nets` (net quantity per instrument) of `owner` (nil:
/// the venue), by symbol, numbered from `firstStep` (see `liquidationOrderID`). Flat
/// instruments get no order; a position larger than one order may carry takes several.
public func liquidationOrders(nets: [Instrument: Quantity], owner: String? = nil, liquidation: Int64, firstStep: Int) -> [Order] {
    var orders: [Order] = []
    var step = firstStep
    for (instrument, net) in nets.sorted(by: { $0.key < $1.key }) where net != 0 {
        var remaining = net.magnitude
        while remaining > 0 {
            let q = min(remaining, UInt64(Order.maximumQuantity))
            remaining -= q
            let id = liquidationOrderID(owner: owner, liquidation: liquidation, step: step)
            orders.append(try! Order(clientOrderID: id, instrument: instrument, side: net > 0 ? .sell : .buy, quantity: Int64(q)))
            step += 1
        }
    }
    return orders
}

/// Net quantity per instrument over `fills` (flat instruments left out).
public func netQuantities(_ fills: some Sequence<Fill>) -> [Instrument: Quantity] {
    var out: [Instrument: Quantity] = [:]
    for f in fills { out[f.instrument, default: 0] = out[f.instrument, default: 0].saturatingAdd(f.signedQuantity) }
    return out.filter { $0.value != 0 }
}

// MARK: - Checkpoint

extension GuardianState.Memory {
    static let magic: [UInt8] = Array("VGRG".utf8)

    /// `"VGRG" u8 version=2, u8 flags (1 safe mode ordered, 2 liquidation ordered,
    /// 4 has peak), [i64 peak micros], u16 children, each: str name, u16 n, n x i64 restart
    /// time; u32 CRC-32 of every byte before it`. Version 1 had no restarts.
    public func encoded() -> [UInt8] {
        var w = ByteWriter()
        w.bytes.append(contentsOf: Self.magic)
        w.u8(2)
        w.u8((safeModeOrdered ? 1 : 0) | (liquidationOrdered ? 2 : 0) | (peakEquity == nil ? 0 : 4))
        if let p = peakEquity { w.i64(p.micros) }
        let children = restarts.sorted { $0.key < $1.key }.prefix(Int(UInt16.max))
        w.u16(UInt16(children.count))
        for (child, times) in children {
            w.string(child)
            let kept = times.suffix(GuardianState.Memory.restartsKept)
            w.u16(UInt16(kept.count))
            for t in kept { w.i64(t) }
        }
        w.u32(crc32(w.bytes))
        return w.bytes
    }

    /// Strict: anything but what `encoded()` writes is a `CheckpointError`.
    public init(decoding bytes: [UInt8]) throws(CheckpointError) {
        guard bytes.count >= 10 else { throw .truncated }
        guard Array(bytes.prefix(4)) == Self.magic else { throw .badMagic }
        guard bytes[4] == 1 || bytes[4] == 2 else { throw .unsupportedVersion(bytes[4]) }
        var tail = ByteReader(Array(bytes.suffix(4)))
        guard tail.u32() == crc32(bytes.dropLast(4)) else { throw .badChecksum }
        let flags = bytes[5]
        guard flags & ~7 == 0 else { throw .invalid("flags \(flags)") }
        var r = ByteReader(Array(bytes.dropLast(4)))
        r.offset = 6
        var peak: Price?
        if flags & 4 != 0 {
            guard let micros = r.i64() else { throw .truncated }
            peak = Price(micros: micros)
        }
        var restarts: [String: [Int64]] = [:]
        if bytes[4] == 2 {
            guard let children = r.u16() else { throw .truncated }
            for _ in 0..<children {
                guard let child = r.string(), let n = r.u16() else { throw .truncated }
                guard restarts[child] == nil else { throw .invalid("child \(child) twice") }
                var times: [Int64] = []
                for _ in 0..<n {
                    guard let t = r.i64() else { throw .truncated }
                    times.append(t)
                }
                restarts[child] = times
            }
        }
        guard r.remaining == 0 else { throw .trailingBytes(r.remaining) }
        self.init(safeModeOrdered: flags & 1 != 0, liquidationOrdered: flags & 2 != 0, peakEquity: peak, restarts: restarts)
    }
}
