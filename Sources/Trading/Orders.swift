/// Instruments, sides, client order ids, orders and fills.

/// Why a value is not a valid domain value.
public enum TradingError: Error, Hashable, Sendable, CustomStringConvertible {
    case invalidSymbol(String)
    case invalidClientOrderID(String)
    case invalidQuantity(Int64)
    case invalidPrice(Int64)
    case instrumentMismatch(position: String, fill: String)

    public var description: String {
        switch self {
        case .invalidSymbol(let s): "invalid instrument symbol \"\(s)\""
        case .invalidClientOrderID(let s): "invalid client order id \"\(s)\""
        case .invalidQuantity(let q): "invalid quantity \(q) (must be 1...\(Order.maximumQuantity))"
        case .invalidPrice(let p): "invalid price \(Price(micros: p)) (must be positive)"
        case .instrumentMismatch(let p, let f): "fill for \(f) applied to a position in \(p)"
        }
    }
}

/// A tradable instrument, named by its symbol: 1 to 16 characters of `A-Z`, `0-9` and `-`,
/// starting with a letter (`BTC-USD`).
public struct Instrument: Hashable, Comparable, Sendable, CustomStringConvertible {
    public let symbol: String

    public init(_ symbol: String) throws(TradingError) {
        guard Instrument.isValid(symbol) else { throw .invalidSymbol(symbol) }
        self.symbol = symbol
    }

    public static func isValid(_ symbol: some StringProtocol) -> Bool {
        let u = Array(symbol.utf8)
        guard (1...16).contains(u.count), let first = u.first,
              first >= UInt8(ascii: "A") && first <= UInt8(ascii: "Z") else { return false }
        return u.allSatisfy { ($0 >= UInt8(ascii: "A") && $0 <= UInt8(ascii: "Z")) || isDigit($0) || $0 == UInt8(ascii: "-") }
    }

    public static func < (a: Instrument, b: Instrument) -> Bool { a.symbol < b.symbol }
    public var description: String { symbol }
}

/// Buy or sell.
public enum Side: String, Hashable, Sendable, CaseIterable, CustomStringConvertible {
    case buy = "BUY"
    case sell = "SELL"

    /// +1 for a buy, -1 for a sell: the sign a fill's quantity adds to a position.
    public var sign: Int64 { self == .buy ? 1 : -1 }
    public var description: String { rawValue }
}

/// The id a client gives its order; the venue treats a repeated id as the same order.
/// 1 to 64 characters of `A-Z a-z 0-9 . _ : -`.
public struct ClientOrderID: Hashable, Sendable, CustomStringConvertible {
    public let rawValue: String

    public init(_ rawValue: String) throws(TradingError) {
        guard ClientOrderID.isValid(rawValue) else { throw .invalidClientOrderID(rawValue) }
        self.rawValue = rawValue
    }

    public static func isValid(_ s: some StringProtocol) -> Bool {
        let u = Array(s.utf8)
        return (1...64).contains(u.count) && u.allSatisfy { b in
            (b >= UInt8(ascii: "A") && b <= UInt8(ascii: "Z")) || (b >= UInt8(ascii: "a") && b <= UInt8(ascii: "z"))
                || isDigit(b) || b == UInt8(ascii: ".") || b == UInt8(ascii: "_") || b == UInt8(ascii: ":")
                || b == UInt8(ascii: "-")
        }
    }

    public var description: String { rawValue }
}

/// A market order: buy or sell `quantity` lots of `instrument` at the venue's price.
public struct Order: Hashable, Sendable {
    /// The largest quantity one order may carry (keeps notionals far from overflow).
    public static let maximumQuantity: Int64 = 1_000_000_000

    public let clientOrderID: ClientOrderID
    public let instrument: Instrument
    public let side: Side
    /// Always positive; the side gives the direction.
    public let quantity: Quantity

    public init(clientOrderID: ClientOrderID, instrument: Instrument, side: Side, quantity: Quantity) throws(TradingError) {
        guard (1...Order.maximumQuantity).contains(quantity) else { throw .invalidQuantity(quantity) }
        self.clientOrderID = clientOrderID
        self.instrument = instrument
        self.side = side
        self.quantity = quantity
    }
}

/// An execution of an order: the whole quantity at one price (the paper venue fills
/// market orders completely).
public struct Fill: Hashable, Sendable {
    /// The venue's id for this fill (the database row id).
    public let fillID: Int64
    public let clientOrderID: ClientOrderID
    public let instrument: Instrument
    public let side: Side
    public let quantity: Quantity
    public let price: Price

    public init(fillID: Int64, clientOrderID: ClientOrderID, instrument: Instrument, side: Side,
                quantity: Quantity, price: Price) throws(TradingError) {
        guard (1...Order.maximumQuantity).contains(quantity) else { throw .invalidQuantity(quantity) }
        guard price.micros > 0 else { throw .invalidPrice(price.micros) }
        self.fillID = fillID
        self.clientOrderID = clientOrderID
        self.instrument = instrument
        self.side = side
        self.quantity = quantity
        self.price = price
    }

    /// The fill of `order` at `price`.
    public init(fillID: Int64, order: Order, price: Price) throws(TradingError) {
        try self.init(fillID: fillID, clientOrderID: order.clientOrderID, instrument: order.instrument,
                      side: order.side, quantity: order.quantity, price: price)
    }

    /// Whether this fill executes exactly `order` (same id, instrument, side, quantity).
    public func matches(_ order: Order) -> Bool {
        clientOrderID == order.clientOrderID && instrument == order.instrument && side == order.side
            && quantity == order.quantity
    }

    /// The signed quantity this fill adds to a position.
    public var signedQuantity: Quantity { side.sign * quantity }
}
