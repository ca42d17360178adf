/// The line protocol between the exchange gateway and its clients (strategy runners).
///
/// One message per line, `\n`-terminated, ASCII, fields separated by exactly one space, no
/// leading or trailing space, at most `LineMessage.maximumLength` bytes without the newline.
///
///     client -> gateway
///       SUB                                       subscribe to prices of every instrument
///       ORDER <client-order-id> <symbol> <BUY|SELL> <qty>
///     gateway -> client
///       HELLO PAPER <venue>                       sent on connect; PAPER: no real money
///       SUBSCRIBED <instrument-count>             answer to SUB
///       PRICE <symbol> <price>
///       FILL <fill-id> <client-order-id> <symbol> <BUY|SELL> <qty> <price>
///       REJECT <client-order-id> <reason>         reason is one token, e.g. unknown_instrument
///       ERROR <reason>                            the previous line was not understood
///
/// Prices are decimals with at most 6 fractional digits (`Price(parsing:)`), quantities
/// positive integers without sign or leading zeros. Parsing is strict: anything else is a
/// `LineProtocolError`, never a guess.
public enum LineMessage: Hashable, Sendable {
    case subscribe
    case order(Order)
    case hello(venue: String)
    case subscribed(instruments: Int)
    case price(Instrument, Price)
    case fill(Fill)
    case reject(ClientOrderID, reason: String)
    case error(reason: String)

    /// Longest accepted line in bytes, excluding the newline.
    public static let maximumLength = 256
}

/// Why a line is not a message. `code` is a single token suitable for an `ERROR` reply.
public enum LineProtocolError: Error, Hashable, Sendable, CustomStringConvertible {
    case empty
    case tooLong(Int)
    case notASCII
    case badSpacing
    case unknownVerb(String)
    case wrongFieldCount(verb: String, expected: Int, got: Int)
    case badField(verb: String, field: String)

    public var code: String {
        switch self {
        case .empty: "empty_line"
        case .tooLong: "line_too_long"
        case .notASCII: "not_ascii"
        case .badSpacing: "bad_spacing"
        case .unknownVerb: "unknown_verb"
        case .wrongFieldCount: "wrong_field_count"
        case .badField(_, let field): "bad_\(field)"
        }
    }

    public var description: String {
        switch self {
        case .empty: "empty line"
        case .tooLong(let n): "line of \(n) bytes exceeds \(LineMessage.maximumLength)"
        case .notASCII: "line has non-printable or non-ASCII bytes"
        case .badSpacing: "fields must be separated by exactly one space"
        case .unknownVerb(let v): "unknown verb \(v)"
        case .wrongFieldCount(let v, let e, let g): "\(v) takes \(e) fields, got \(g)"
        case .badField(let v, let f): "\(v) has a bad \(f)"
        }
    }
}

extension LineMessage {
    /// The line for this message, without the newline.
    public var line: String {
        switch self {
        case .subscribe: "SUB"
        case .order(let o): "ORDER \(o.clientOrderID) \(o.instrument) \(o.side) \(o.quantity)"
        case .hello(let venue): "HELLO PAPER \(venue)"
        case .subscribed(let n): "SUBSCRIBED \(n)"
        case .price(let i, let p): "PRICE \(i) \(p)"
        case .fill(let f): "FILL \(f.fillID) \(f.clientOrderID) \(f.instrument) \(f.side) \(f.quantity) \(f.price)"
        case .reject(let id, let reason): "REJECT \(id) \(reason)"
        case .error(let reason): "ERROR \(reason)"
        }
    }

    /// A reason or venue token: 1 to 64 of `a-z A-Z 0-9 _ - .`.
    public static func isToken(_ s: some StringProtocol) -> Bool {
        let u = Array(s.utf8)
        return (1...64).contains(u.count) && u.allSatisfy { b in
            (b >= UInt8(ascii: "a") && b <= UInt8(ascii: "z")) || (b >= UInt8(ascii: "A") && b <= UInt8(ascii: "Z"))
                || isDigit(b) || b == UInt8(ascii: "_") || b == UInt8(ascii: "-") || b == UInt8(ascii: ".")
        }
    }

    /// Parses one line (without its newline; a trailing `\r` is rejected like any control byte).
    public init(parsing line: some StringProtocol) throws(LineProtocolError) {
        let bytes = Array(line.utf8)
        guard !bytes.isEmpty else { throw .empty }
        guard bytes.count <= LineMessage.maximumLength else { throw .tooLong(bytes.count) }
        guard bytes.allSatisfy({ $0 >= 0x20 && $0 < 0x7F }) else { throw .notASCII }
        let fields = bytes.split(separator: UInt8(ascii: " "), omittingEmptySubsequences: false)
            .map { String(decoding: $0, as: UTF8.self) }
        guard !fields.contains(where: \.isEmpty) else { throw .badSpacing }
        let verb = fields[0]
        let args = Array(fields.dropFirst())

        func expect(_ n: Int) throws(LineProtocolError) {
            guard args.count == n else { throw .wrongFieldCount(verb: verb, expected: n, got: args.count) }
        }
        func bad(_ field: String) -> LineProtocolError { .badField(verb: verb, field: field) }
        func clientOrderID(_ s: String) throws(LineProtocolError) -> ClientOrderID {
            guard let id = try? ClientOrderID(s) else { throw bad("client_order_id") }
            return id
        }
        func instrument(_ s: String) throws(LineProtocolError) -> Instrument {
            guard let i = try? Instrument(s) else { throw bad("symbol") }
            return i
        }
        func side(_ s: String) throws(LineProtocolError) -> Side {
            guard let side = Side(rawValue: s) else { throw bad("side") }
            return side
        }
        func positive(_ s: String, field: String, max: Int64) throws(LineProtocolError) -> Int64 {
            guard let v = LineMessage.strictInteger(s), v >= 1, v <= max else { throw bad(field) }
            return v
        }
        func price(_ s: String) throws(LineProtocolError) -> Price {
            guard let p = Price(parsing: s), p.micros > 0 else { throw bad("price") }
            return p
        }

        switch verb {
        case "SUB":
            try expect(0)
            self = .subscribe
        case "ORDER":
            try expect(4)
            let id = try clientOrderID(args[0]), i = try instrument(args[1]), s = try side(args[2])
            let q = try positive(args[3], field: "quantity", max: Order.maximumQuantity)
            self = .order(try! Order(clientOrderID: id, instrument: i, side: s, quantity: q))
        case "HELLO":
            try expect(2)
            guard args[0] == "PAPER" else { throw bad("mode") }
            guard LineMessage.isToken(args[1]) else { throw bad("venue") }
            self = .hello(venue: args[1])
        case "SUBSCRIBED":
            try expect(1)
            guard let n = LineMessage.strictInteger(args[0]), n <= 1_000_000 else { throw bad("count") }
            self = .subscribed(instruments: Int(n))
        case "PRICE":
            try expect(2)
            self = .price(try instrument(args[0]), try price(args[1]))
        case "FILL":
            try expect(6)
            let fillID = try positive(args[0], field: "fill_id", max: .max)
            let id = try clientOrderID(args[1]), i = try instrument(args[2]), s = try side(args[3])
            let q = try positive(args[4], field: "quantity", max: Order.maximumQuantity)
            let p = try price(args[5])
            self = .fill(try! Fill(fillID: fillID, clientOrderID: id, instrument: i, side: s, quantity: q, price: p))
        case "REJECT":
            try expect(2)
            let id = try clientOrderID(args[0])
            guard LineMessage.isToken(args[1]) else { throw bad("reason") }
            self = .reject(id, reason: args[1])
        case "ERROR":
            try expect(1)
            guard LineMessage.isToken(args[0]) else { throw bad("reason") }
            self = .error(reason: args[0])
        default:
            throw .unknownVerb(verb.count <= 16 ? verb : String(verb.prefix(16)))
        }
    }

    /// A non-negative decimal integer with no sign and no leading zeros, or nil.
    static func strictInteger(_ s: String) -> Int64? {
        let u = Array(s.utf8)
        guard !u.isEmpty, u.count <= 19, u.allSatisfy(isDigit), u.count == 1 || u[0] != UInt8(ascii: "0") else { return nil }
        return Int64(s)
    }
}

/// Splits a byte stream into lines. Feed it what `read` returned; take complete lines out.
/// A line longer than the limit poisons the stream (`overflowed`): the peer is broken.
public struct LineBuffer: Sendable {
    private var pending: [UInt8] = []
    public private(set) var overflowed = false
    public let limit: Int

    public init(limit: Int = LineMessage.maximumLength) { self.limit = limit }

    /// Appends bytes and returns every complete line (without `\n`), in order.
    public mutating func append(_ bytes: some Sequence<UInt8>) -> [String] {
        guard !overflowed else { return [] }
        var lines: [String] = []
        for b in bytes {
            if b == UInt8(ascii: "\n") {
                lines.append(String(decoding: pending, as: UTF8.self))
                pending.removeAll(keepingCapacity: true)
            } else {
                pending.append(b)
                if pending.count > limit {
                    overflowed = true
                    pending.removeAll()
                    return lines
                }
            }
        }
        return lines
    }

    /// Bytes of an unfinished line.
    public var pendingCount: Int { pending.count }
}
