import Testing
@testable import Trading

private let btc = try! Instrument("BTC-USD")
private let eth = try! Instrument("ETH-USD")
private let second: Int64 = 1_000_000_000

private func rules(drawdown: String? = "100", restarts: Int? = 3) -> GuardianRules {
    GuardianRules(maxDrawdown: drawdown.map { Price(parsing: $0)! }, maxRestartsPerChild: restarts,
                  restartWindowNs: 60 * second, allClearNs: 10 * second)
}

private func snapshot(equity: String, breached: Bool = false, open: Bool = true) -> RiskSnapshot {
    RiskSnapshot(breaches: breached ? [.total(exposure: Price(units: 2), limit: Price(units: 1))] : [],
                 equity: Price(parsing: equity, allowNegative: true)!, hasOpenPositions: open)
}

@Suite("Risk guardian rules")
struct GuardianRulesTests {
    @Test func allowsUntilTheRestartLimitWithinTheWindow() {
        var g = GuardianState(rules: rules())
        _ = g.observe(snapshot(equity: "0"), at: 0)
        for k in 0..<3 { #expect(g.decide(restartOf: "strategy-runner.1", at: Int64(k) * second) == .allow) }
        guard case .deny = g.decide(restartOf: "strategy-runner.1", at: 3 * second) else { Issue.record("not denied"); return }
        // Another child has its own count.
        do { let r = g.decide(restartOf: "strategy-runner.2", at: 3 * second); #expect(r == .allow) }
        // Denials are not restarts: once the window slides past the first, one more is allowed.
        do { let r = g.decide(restartOf: "strategy-runner.1", at: 60 * second); #expect(r == .allow) }
        guard case .deny = g.decide(restartOf: "strategy-runner.1", at: 60 * second + 1) else { Issue.record("not denied"); return }
    }

    @Test func noRestartLimitMeansAlwaysAllow() {
        var g = GuardianState(rules: rules(restarts: nil))
        for k in 0..<100 { #expect(g.decide(restartOf: "x", at: Int64(k)) == .allow) }
    }

    @Test func exposureBreachAnswersSafeMode() {
        var g = GuardianState(rules: rules())
        _ = g.observe(snapshot(equity: "0", breached: true), at: 0)
        guard case .safeMode(let why) = g.decide(restartOf: "exchange-gateway", at: 0) else { Issue.record("no safe mode"); return }
        #expect(why.contains("total exposure"))
    }

    @Test func drawdownBreachAnswersLiquidateAndBeatsExposure() {
        var g = GuardianState(rules: rules())
        _ = g.observe(snapshot(equity: "500"), at: 0)
        _ = g.observe(snapshot(equity: "399.99", breached: true), at: second)
        #expect(g.drawdown == Price(parsing: "100.01"))
        guard case .liquidate = g.decide(restartOf: "strategy-runner.3", at: second) else { Issue.record("no liquidation"); return }
    }

    @Test func drawdownAtTheLimitIsNotABreach() {
        var g = GuardianState(rules: rules())
        _ = g.observe(snapshot(equity: "500"), at: 0)
        do { let r = g.observe(snapshot(equity: "400"), at: second); #expect(r.isEmpty) }
        do { let r = g.decide(restartOf: "a", at: second); #expect(r == .allow) }
    }

    @Test func ordersSafeModeOnceAndAllClearAfterTheQuietPeriod() {
        var g = GuardianState(rules: rules())
        guard case .safeModeOn = g.observe(snapshot(equity: "0", breached: true), at: 0).first else { Issue.record("no order"); return }
        do { let r = g.observe(snapshot(equity: "0", breached: true), at: second); #expect(r.isEmpty) }  // once
        do { let r = g.observe(snapshot(equity: "0"), at: 2 * second); #expect(r.isEmpty) }
        do { let r = g.observe(snapshot(equity: "0"), at: 11 * second); #expect(r.isEmpty) }  // 9 s quiet
        guard case .safeModeOff = g.observe(snapshot(equity: "0"), at: 12 * second).first else { Issue.record("no all-clear"); return }
        do { let r = g.observe(snapshot(equity: "0"), at: 13 * second); #expect(r.isEmpty) }
        // A breach inside the quiet period restarts it.
        guard case .safeModeOn = g.observe(snapshot(equity: "0", breached: true), at: 14 * second).first else { Issue.record("no order"); return }
        _ = g.observe(snapshot(equity: "0"), at: 15 * second)
        _ = g.observe(snapshot(equity: "0", breached: true), at: 16 * second)
        do { let r = g.observe(snapshot(equity: "0"), at: 17 * second); #expect(r.isEmpty) }
        do { let r = g.observe(snapshot(equity: "0"), at: 26 * second); #expect(r.isEmpty) }
        do { let r = g.observe(snapshot(equity: "0"), at: 27 * second); #expect(r.first.map { if case .safeModeOff = $0 { true } else { false } } == true) }
    }

    @Test func ordersLiquidationOnceThenRearmsWhenFlat() {
        var g = GuardianState(rules: rules())
        _ = g.observe(snapshot(equity: "1000"), at: 0)
        guard case .liquidate = g.observe(snapshot(equity: "800"), at: second).first else { Issue.record("no liquidation"); return }
        do { let r = g.observe(snapshot(equity: "700"), at: 2 * second); #expect(r.isEmpty) }  // still flattening: once
        // Flat: the loss is realised and the peak starts over from here.
        do { let r = g.observe(snapshot(equity: "700", open: false), at: 3 * second); #expect(r.isEmpty) }
        #expect(g.drawdown == .zero)
        do { let r = g.decide(restartOf: "a", at: 3 * second); #expect(r == .allow) }
        do { let r = g.observe(snapshot(equity: "650"), at: 4 * second); #expect(r.isEmpty) }
        guard case .liquidate = g.observe(snapshot(equity: "599"), at: 5 * second).first else { Issue.record("not re-armed"); return }
    }

    @Test func noDrawdownRule() {
        var g = GuardianState(rules: rules(drawdown: nil))
        _ = g.observe(snapshot(equity: "1000000"), at: 0)
        do { let r = g.observe(snapshot(equity: "-1000000"), at: 1); #expect(r.isEmpty) }
        do { let r = g.decide(restartOf: "a", at: 1); #expect(r == .allow) }
    }
}

@Suite("Liquidation orders")
struct LiquidationTests {
    @Test func flattensEveryOpenPositionInSymbolOrder() {
        let orders = liquidationOrders(nets: [eth: -3, btc: 2, try! Instrument("SOL-USD"): 0], liquidation: 4, firstStep: 1)
        #expect(orders.map(\.clientOrderID.rawValue) == ["liquidation.4.1", "liquidation.4.2"])
        #expect(orders[0].instrument == btc && orders[0].side == .sell && orders[0].quantity == 2)
        #expect(orders[1].instrument == eth && orders[1].side == .buy && orders[1].quantity == 3)
    }

    @Test func nothingToDoWhenFlat() {
        #expect(liquidationOrders(nets: [:], liquidation: 1, firstStep: 1).isEmpty)
        #expect(liquidationOrders(nets: [btc: 0], liquidation: 1, firstStep: 1).isEmpty)
    }

    @Test func hugePositionsTakeSeveralOrders() {
        let orders = liquidationOrders(nets: [btc: Order.maximumQuantity * 2 + 5], liquidation: 1, firstStep: 9)
        #expect(orders.map(\.quantity) == [Order.maximumQuantity, Order.maximumQuantity, 5])
        #expect(orders.last?.clientOrderID.rawValue == "liquidation.1.11")
    }

    @Test func applyingTheOrdersFlattens() {
        let fills = [(btc, Side.buy, Int64(3)), (eth, .sell, 2), (btc, .sell, 1)].enumerated().map { k, t in
            try! Fill(fillID: Int64(k + 1), clientOrderID: ClientOrderID("r.\(k)"), instrument: t.0, side: t.1, quantity: t.2,
                      price: Price(units: 10))
        }
        let nets = netQuantities(fills)
        #expect(nets == [btc: 2, eth: -2])
        let flatten = liquidationOrders(nets: nets, liquidation: 1, firstStep: 1).enumerated().map { k, o in
            try! Fill(fillID: Int64(100 + k), order: o, price: Price(units: 11))
        }
        #expect(netQuantities(fills + flatten).isEmpty)
        // Run again over the result: nothing more (never flattens twice).
        #expect(liquidationOrders(nets: netQuantities(fills + flatten), liquidation: 1, firstStep: 3).isEmpty)
    }

    @Test func anOperatorOverrideIsNotOverruledDuringTheSameBreach() {
        var g = GuardianState(rules: rules())
        #expect(g.observe(snapshot(equity: "0", breached: true), at: 0) == [.safeModeOn(reason: "total exposure 2 exceeds limit 1")])
        g.safeModeLifted()  // vigil safe-mode off, by an operator
        #expect(g.observe(snapshot(equity: "0", breached: true), at: second).isEmpty)
        #expect(g.decide(restartOf: "exchange-gateway", at: second) == .allow)
        // Back within limits once: the next breach orders safe mode again.
        #expect(g.observe(snapshot(equity: "0"), at: 2 * second).isEmpty)
        #expect(g.observe(snapshot(equity: "0", breached: true), at: 3 * second).count == 1)
        guard case .safeMode = g.decide(restartOf: "exchange-gateway", at: 3 * second) else { Issue.record("no safe mode"); return }
    }

    @Test func aRestartedGuardianStillOwnsTheSafeModeItOrdered() {
        var g = GuardianState(rules: rules())
        _ = g.observe(snapshot(equity: "50"), at: 0)
        _ = g.observe(snapshot(equity: "40", breached: true), at: second)
        let m = g.memory
        #expect(m == GuardianState.Memory(safeModeOrdered: true, liquidationOrdered: false, peakEquity: Price(units: 50)))
        var next = GuardianState(rules: rules(), restoring: m)
        // No second order for the same breach; the all-clear after 10 s within limits.
        #expect(next.observe(snapshot(equity: "40", breached: true), at: 2 * second).isEmpty)
        #expect(next.observe(snapshot(equity: "40"), at: 3 * second).isEmpty)
        #expect(next.observe(snapshot(equity: "40"), at: 13 * second) == [.safeModeOff(reason: "exposure within limits for 10.0 seconds")])
        // The drawdown is measured from the restored peak: 50 - (-60) = 110 > 100.
        #expect(next.observe(snapshot(equity: "-60"), at: 14 * second) == [.liquidate(reason: "drawdown 110 exceeds 100")])
    }

    @Test func theRestartRateLimitHoldsAcrossARestartOfTheGuardian() throws {
        var g = GuardianState(rules: rules(restarts: 3))
        _ = g.observe(snapshot(equity: "0"), at: 0)
        for k in 0..<3 { #expect(g.decide(restartOf: "strategy-runner.1", at: Int64(k) * second) == .allow) }
        // The guardian is restarted: its successor restores the checkpoint.
        let bytes = g.memory.encoded()
        var next = GuardianState(rules: rules(restarts: 3), restoring: try GuardianState.Memory(decoding: bytes))
        _ = next.observe(snapshot(equity: "0"), at: 3 * second)
        guard case .deny = next.decide(restartOf: "strategy-runner.1", at: 3 * second) else { Issue.record("the limit was forgotten"); return }
        #expect(next.decide(restartOf: "strategy-runner.2", at: 3 * second) == .allow)
    }

    @Test func guardianMemoryRoundTripsAndIsDecodedStrictly() throws {
        for m in [GuardianState.Memory(safeModeOrdered: false, liquidationOrdered: false, peakEquity: nil),
                  GuardianState.Memory(safeModeOrdered: true, liquidationOrdered: true, peakEquity: Price(micros: -123_456_789)),
                  GuardianState.Memory(safeModeOrdered: false, liquidationOrdered: false, peakEquity: nil,
                                       restarts: ["strategy-runner.1": [1, 2, 3], "exchange-gateway": [-5]])] {
            #expect(try GuardianState.Memory(decoding: m.encoded()) == m)
        }
        let good = GuardianState.Memory(safeModeOrdered: true, liquidationOrdered: false, peakEquity: Price(units: 7)).encoded()
        #expect(throws: CheckpointError.truncated) { try GuardianState.Memory(decoding: Array(good.prefix(9))) }
        #expect(throws: CheckpointError.badMagic) { try GuardianState.Memory(decoding: RunnerCheckpoint(book: RunnerBook(), indicators: [:]).encoded()) }
        for i in good.indices {
            var bad = good
            bad[i] ^= 0x10
            #expect(throws: (any Error).self) { try GuardianState.Memory(decoding: bad) }
        }
    }

    @Test func ordersBelongToTheStrategyWhoseIdSpaceTheyAreIn() throws {
        #expect(orderOwner(try ClientOrderID("strategy-runner.2.3.mk2x1.17")) == "strategy-runner.2")
        #expect(orderOwner(try ClientOrderID("alpha.1.s.1")) == "alpha")
        #expect(orderOwner(try ClientOrderID("strategy-runner.2.0.liq4.1")) == "strategy-runner.2")
        for venue in ["liquidation.4.1", "a.b.c", "x.y.z.w", ".1.s.1", "r.1.2", "r..s.1"] {
            #expect(orderOwner(try ClientOrderID(venue)) == nil, "\(venue)")
        }
        let own = liquidationOrders(nets: [btc: -2], owner: "strategy-runner.2", liquidation: 4, firstStep: 3)
        #expect(own.map(\.clientOrderID.rawValue) == ["strategy-runner.2.0.liq4.3"])
        #expect(orderOwner(own[0].clientOrderID) == "strategy-runner.2", "the flattening fill counts in the owner's book")
        // A name too long for an id falls back to the venue's own id.
        #expect(liquidationOrderID(owner: String(repeating: "n", count: 60), liquidation: 1, step: 1).rawValue == "liquidation.1.1")
    }
}
