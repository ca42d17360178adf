/// Money and quantities as integers: no floating point ever touches a price.
///
/// A `Price` is a count of micro-units of the quote currency (1 USD = 1_000_000 micros), so
/// `60123.45` is `60_123_450_000`. A `Quantity` is a signed count of whole lots. A notional
/// (price times quantity) is again micros; arithmetic that would overflow `Int64` saturates
/// instead of trapping, because a risk check must never crash on a silly number.

/// Micro-units per whole unit of the quote currency.
public let microsPerUnit: Int64 = 1_000_000

/// A price (or any amount of money) in micro-units of the quote currency.
public struct Price: Hashable, Comparable, Sendable, CustomStringConvertible {
    /// Micro-units; may be negative for P&L and differences, never for a quoted price.
    public var micros: Int64

    public init(micros: Int64) { self.micros = micros }

    /// A whole number of units (`Price(units: 3)` is 3.000000).
    public init(units: Int64) { self.micros = units.saturatingMultiply(microsPerUnit) }

    public static let zero = Price(micros: 0)

    public static func < (a: Price, b: Price) -> Bool { a.micros < b.micros }
    public static func + (a: Price, b: Price) -> Price { Price(micros: a.micros.saturatingAdd(b.micros)) }
    public static func - (a: Price, b: Price) -> Price { Price(micros: a.micros.saturatingAdd(b.micros.saturatingNegate())) }

    /// Canonical decimal text: `-12.5`, `60123.45`, `0.000001`, `7` (no trailing zeros).
    public var description: String {
        let negative = micros < 0
        let magnitude = micros.magnitude
        let whole = magnitude / UInt64(microsPerUnit)
        var fraction = magnitude % UInt64(microsPerUnit)
        var text = (negative ? "-" : "") + String(whole)
        if fraction != 0 {
            var digits = 6
            while fraction % 10 == 0 { fraction /= 10; digits -= 1 }
            let f = String(fraction)
            text += "." + String(repeating: "0", count: digits - f.count) + f
        }
        return text
    }

    /// Parses the strict decimal form: `digits[.digits]` with 1 to 6 fractional digits,
    /// no sign unless `allowNegative`, no leading zeros (except a lone `0`), no exponent,
    /// no spaces. Returns nil for anything else, including values that overflow.
    public init?(parsing text: some StringProtocol, allowNegative: Bool = false) {
        var utf8 = Substring(text).utf8[...]
        var negative = false
        if allowNegative, utf8.first == UInt8(ascii: "-") {
            negative = true
            utf8 = utf8.dropFirst()
        }
        let parts = utf8.split(separator: UInt8(ascii: "."), maxSplits: 1, omittingEmptySubsequences: false)
        guard let wholePart = parts.first, !wholePart.isEmpty, wholePart.count <= 13,
              wholePart.allSatisfy(isDigit),
              wholePart.count == 1 || wholePart.first != UInt8(ascii: "0")
        else { return nil }
        var whole: Int64 = 0
        for d in wholePart { whole = whole * 10 + Int64(d - UInt8(ascii: "0")) }
        var fraction: Int64 = 0
        if parts.count == 2 {
            let fractionPart = parts[1]
            guard (1...6).contains(fractionPart.count), fractionPart.allSatisfy(isDigit) else { return nil }
            for d in fractionPart { fraction = fraction * 10 + Int64(d - UInt8(ascii: "0")) }
            for _ in fractionPart.count..<6 { fraction *= 10 }
        }
        let (scaled, o1) = whole.multipliedReportingOverflow(by: microsPerUnit)
        let (sum, o2) = scaled.addingReportingOverflow(fraction)
        guard !o1, !o2 else { return nil }
        if negative && sum == 0 { return nil }  // "-0" is not canonical
        self.micros = negative ? -sum : sum
    }
}

/// A signed number of whole lots. Positive is long (or a buy), negative short.
public typealias Quantity = Int64

/// The notional value of `quantity` lots at `price`: |quantity| * price, saturating.
public func notional(_ quantity: Quantity, at price: Price) -> Price {
    Price(micros: Int64(clamping: quantity.magnitude).saturatingMultiply(price.micros))
}

@inline(__always)
func isDigit(_ b: UInt8) -> Bool { b >= UInt8(ascii: "0") && b <= UInt8(ascii: "9") }

extension Int64 {
    /// `self * other`, clamped to the representable range instead of trapping.
    public func saturatingMultiply(_ other: Int64) -> Int64 {
        let (r, overflow) = multipliedReportingOverflow(by: other)
        if !overflow { return r }
        return (self < 0) == (other < 0) ? .max : .min
    }

    /// `self + other`, clamped to the representable range instead of trapping.
    public func saturatingAdd(_ other: Int64) -> Int64 {
        let (r, overflow) = addingReportingOverflow(other)
        if !overflow { return r }
        return other > 0 ? .max : .min
    }

    /// `-self`, with `-Int64.min` clamped to `Int64.max`.
    public func saturatingNegate() -> Int64 { self == .min ? .max : -self }
}
