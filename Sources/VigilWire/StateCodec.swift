/// A small binary codec for checkpoint state (`Frame.checkpoint` / `Frame.restore`), with
/// no Foundation: a worker writes its state field by field with `StateWriter` and reads it
/// back, in the same order, with `StateReader`.
///
///     var w = StateWriter()
///     w.append(UInt64(1))                 // a format version first: a newer build can
///     w.append(position.lots)             // still recognise an older checkpoint
///     w.append(pnl.micros)
///     w.append(window)                    // [Int64]
///     w.append(inFlight) { w, id in w.append(id) }
///     worker.checkpoint(w.bytes)
///
///     var r = StateReader(state)
///     guard try r.uint64() == 1 else { ... }
///     let lots = try r.int64()
///     ...
///     try r.finish()                      // nothing may be left over
///
/// Encoding: unsigned integers are LEB128 varints (7 bits a byte, low first), signed ones
/// zigzag varints (so small negative numbers stay short), `Double` its 8 IEEE-754 bytes
/// little-endian, `Bool` one byte 0 or 1, strings and byte blobs a varint length then the
/// bytes, arrays a varint count then the elements. The reader is strict: truncation, an
/// over-long or overflowing varint, a `Bool` byte other than 0/1, invalid UTF-8 or a count
/// larger than the bytes left all throw, so one value has exactly one spelling and a
/// damaged checkpoint is refused rather than half-read.
public struct StateWriter: Sendable {
    /// Everything written so far.
    public private(set) var bytes: [UInt8]

    /// An empty writer; `capacity` reserves room up front.
    public init(capacity: Int = 0) {
        bytes = []
        bytes.reserveCapacity(capacity)
    }

    /// Bytes written so far.
    public var count: Int { bytes.count }

    /// An unsigned varint (1 byte below 128, at most 10).
    public mutating func append(_ value: UInt64) {
        var v = value
        while v >= 0x80 {
            bytes.append(UInt8(truncatingIfNeeded: v) | 0x80)
            v >>= 7
        }
        bytes.append(UInt8(v))
    }

    /// A signed zigzag varint (0, -1, 1, -2, ... become 0, 1, 2, 3, ...).
    public mutating func append(_ value: Int64) {
        append(UInt64(bitPattern: (value << 1) ^ (value >> 63)))
    }

    /// An `Int`, written as an `Int64`.
    public mutating func append(_ value: Int) { append(Int64(value)) }

    /// One byte: 1 for true, 0 for false.
    public mutating func append(_ value: Bool) { bytes.append(value ? 1 : 0) }

    /// The 8 bytes of the IEEE-754 bit pattern, little-endian (NaN payloads survive).
    public mutating func append(_ value: Double) {
        var v = value.bitPattern
        for _ in 0..<8 {
            bytes.append(UInt8(truncatingIfNeeded: v))
            v >>= 8
        }
    }

    /// A varint byte count, then the UTF-8.
    public mutating func append(_ value: String) {
        let utf8 = value.utf8
        append(UInt64(utf8.count))
        bytes.append(contentsOf: utf8)
    }

    /// A varint byte count, then the bytes (a nested blob, for example another codec's).
    public mutating func append(bytes blob: [UInt8]) {
        append(UInt64(blob.count))
        bytes.append(contentsOf: blob)
    }

    /// A varint count, then each element as `append(_: Int64)`.
    public mutating func append(_ values: [Int64]) { append(values) { $0.append($1) } }
    /// A varint count, then each element as `append(_: UInt64)`.
    public mutating func append(_ values: [UInt64]) { append(values) { $0.append($1) } }
    /// A varint count, then each element as `append(_: Int)`.
    public mutating func append(_ values: [Int]) { append(values) { $0.append($1) } }
    /// A varint count, then each element as `append(_: Double)`.
    public mutating func append(_ values: [Double]) { append(values) { $0.append($1) } }
    /// A varint count, then each element as `append(_: String)`.
    public mutating func append(_ values: [String]) { append(values) { $0.append($1) } }
    /// A varint count, then each element as `append(_: Bool)`.
    public mutating func append(_ values: [Bool]) { append(values) { $0.append($1) } }

    /// A varint count, then each element written by `each` (read back with
    /// `StateReader.array(_:)`).
    public mutating func append<C: Collection>(_ values: C, each: (inout StateWriter, C.Element) -> Void) {
        append(UInt64(values.count))
        for v in values { each(&self, v) }
    }
}

/// Why checkpoint bytes could not be read back.
public enum StateCodecError: Error, Hashable, Sendable, CustomStringConvertible {
    /// A value needed more bytes than were left (at this offset).
    case truncated(offset: Int)
    /// A varint spelled with more bytes than needed, or larger than 64 bits.
    case badVarint(offset: Int)
    /// A value that does not fit the type asked for (an `Int64` for an `Int`, a length).
    case outOfRange(offset: Int)
    /// A `Bool` byte other than 0 or 1.
    case badBool(offset: Int, byte: UInt8)
    /// A string that is not valid UTF-8.
    case invalidUTF8(offset: Int)
    /// `finish()` found bytes nobody read.
    case trailingBytes(count: Int)

    public var description: String {
        switch self {
        case .truncated(let o): "state truncated at byte \(o)"
        case .badVarint(let o): "malformed varint at byte \(o)"
        case .outOfRange(let o): "value at byte \(o) is out of range"
        case .badBool(let o, let b): "byte \(o) is 0x\(String(b, radix: 16)), not a boolean"
        case .invalidUTF8(let o): "string at byte \(o) is not valid UTF-8"
        case .trailingBytes(let n): "\(n) bytes left over after the state"
        }
    }
}

/// Reads what a `StateWriter` wrote, in the same order; every read throws on bad input.
public struct StateReader: Sendable {
    private let input: [UInt8]
    /// Where the next read starts.
    public private(set) var offset = 0

    /// A reader over `bytes` (a restored checkpoint).
    public init(_ bytes: some Collection<UInt8>) { input = Array(bytes) }

    /// Bytes not read yet.
    public var remaining: Int { input.count - offset }

    /// True once every byte was read.
    public var isAtEnd: Bool { offset == input.count }

    /// Throws unless every byte was read: call it last, so a checkpoint written by a build
    /// with more fields is noticed rather than silently half-read.
    public func finish() throws(StateCodecError) {
        guard remaining == 0 else { throw .trailingBytes(count: remaining) }
    }

    /// An unsigned varint.
    public mutating func uint64() throws(StateCodecError) -> UInt64 {
        let start = offset
        var value: UInt64 = 0
        var shift: UInt64 = 0
        while true {
            guard offset < input.count else { throw .truncated(offset: start) }
            let b = input[offset]
            offset += 1
            // The 10th byte may only carry the top bit of a 64-bit value.
            if shift == 63 && b > 1 { offset = start; throw .badVarint(offset: start) }
            value |= UInt64(b & 0x7F) << shift
            if b & 0x80 == 0 {
                // Minimal spelling only: a last byte of 0 after others is a wasted byte.
                if b == 0 && offset - start > 1 { offset = start; throw .badVarint(offset: start) }
                return value
            }
            shift += 7
        }
    }

    /// A signed zigzag varint.
    public mutating func int64() throws(StateCodecError) -> Int64 {
        let z = try uint64()
        return Int64(bitPattern: z >> 1) ^ -Int64(bitPattern: z & 1)
    }

    /// An `Int` (written as an `Int64`).
    public mutating func int() throws(StateCodecError) -> Int {
        let start = offset
        let v = try int64()
        guard let i = Int(exactly: v) else { offset = start; throw .outOfRange(offset: start) }
        return i
    }

    /// One byte, 0 or 1.
    public mutating func bool() throws(StateCodecError) -> Bool {
        guard offset < input.count else { throw .truncated(offset: offset) }
        let b = input[offset]
        guard b <= 1 else { throw .badBool(offset: offset, byte: b) }
        offset += 1
        return b == 1
    }

    /// 8 bytes of IEEE-754 bit pattern, little-endian.
    public mutating func double() throws(StateCodecError) -> Double {
        guard remaining >= 8 else { throw .truncated(offset: offset) }
        var v: UInt64 = 0
        for i in 0..<8 { v |= UInt64(input[offset + i]) << (8 * UInt64(i)) }
        offset += 8
        return Double(bitPattern: v)
    }

    /// A length-prefixed UTF-8 string.
    public mutating func string() throws(StateCodecError) -> String {
        let start = offset
        let slice = try blob()
        guard let s = String(validating: slice, as: UTF8.self) else { offset = start; throw .invalidUTF8(offset: start) }
        return s
    }

    /// A length-prefixed byte blob (`StateWriter.append(bytes:)`).
    public mutating func bytes() throws(StateCodecError) -> [UInt8] {
        Array(try blob())
    }

    /// `[Int64]` as `StateWriter.append(_: [Int64])` wrote it.
    public mutating func int64s() throws(StateCodecError) -> [Int64] { try array { (r) throws(StateCodecError) in try r.int64() } }
    /// `[UInt64]` as `StateWriter.append(_: [UInt64])` wrote it.
    public mutating func uint64s() throws(StateCodecError) -> [UInt64] { try array { (r) throws(StateCodecError) in try r.uint64() } }
    /// `[Int]` as `StateWriter.append(_: [Int])` wrote it.
    public mutating func ints() throws(StateCodecError) -> [Int] { try array { (r) throws(StateCodecError) in try r.int() } }
    /// `[Double]` as `StateWriter.append(_: [Double])` wrote it.
    public mutating func doubles() throws(StateCodecError) -> [Double] { try array { (r) throws(StateCodecError) in try r.double() } }
    /// `[String]` as `StateWriter.append(_: [String])` wrote it.
    public mutating func strings() throws(StateCodecError) -> [String] { try array { (r) throws(StateCodecError) in try r.string() } }
    /// `[Bool]` as `StateWriter.append(_: [Bool])` wrote it.
    public mutating func bools() throws(StateCodecError) -> [Bool] { try array { (r) throws(StateCodecError) in try r.bool() } }

    /// A varint count, then that many elements read by `each`. A count larger than the
    /// bytes left is refused before anything is allocated (every element takes a byte).
    public mutating func array<T>(_ each: (inout StateReader) throws(StateCodecError) -> T) throws(StateCodecError) -> [T] {
        let start = offset
        let n = try uint64()
        guard n <= UInt64(remaining) else { offset = start; throw .truncated(offset: start) }
        var out: [T] = []
        out.reserveCapacity(Int(n))
        for _ in 0..<n { out.append(try each(&self)) }
        return out
    }

    private mutating func blob() throws(StateCodecError) -> ArraySlice<UInt8> {
        let start = offset
        let n = try uint64()
        guard n <= UInt64(remaining) else { offset = start; throw .truncated(offset: start) }
        defer { offset += Int(n) }
        return input[offset..<offset + Int(n)]
    }
}
