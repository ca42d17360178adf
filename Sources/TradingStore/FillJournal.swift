// The fill journal: every fill the gateway commits to the trading database is also appended
// to a plain, append-only file and fsync'd before the FILL reaches the client. It is what
// survives when the database itself does not (a damaged page, a truncated or deleted
// file): db-watchdog restores the newest good snapshot and replays the journal into it
// (`TradingStore.replay`), so no acknowledged fill is lost.
//
// Text, one fill a line, so a person can read it and a torn last line (a crash half-way
// through a write) is recognisable: every line ends with the CRC-32 of what precedes it.
@preconcurrency import Glibc
import Trading

/// One journaled fill: what the fills table holds for it.
public struct JournalEntry: Hashable, Sendable {
    public var fillID: Int64
    public var clientOrderID: ClientOrderID
    public var instrument: Instrument
    public var side: Side
    public var quantity: Quantity
    public var price: Price
    /// Nanoseconds since the epoch, as in `fills.filled_ns`.
    public var filledNs: Int64

    public init(fillID: Int64, clientOrderID: ClientOrderID, instrument: Instrument, side: Side, quantity: Quantity,
                price: Price, filledNs: Int64) {
        self.fillID = fillID
        self.clientOrderID = clientOrderID
        self.instrument = instrument
        self.side = side
        self.quantity = quantity
        self.price = price
        self.filledNs = filledNs
    }

    public init(_ fill: Fill, filledNs: Int64) {
        self.init(fillID: fill.fillID, clientOrderID: fill.clientOrderID, instrument: fill.instrument, side: fill.side,
                  quantity: fill.quantity, price: fill.price, filledNs: filledNs)
    }

    /// The line written for this entry, without the newline:
    /// `F1 <fill id> <client order id> <symbol> <side> <quantity> <price micros> <filled ns> <crc32 hex>`.
    public var line: String {
        let body = "F1 \(fillID) \(clientOrderID.rawValue) \(instrument.symbol) \(side.rawValue) \(quantity) \(price.micros) \(filledNs)"
        return body + " " + hex(crc32(Array(body.utf8)))
    }

    /// Parses one line (without its newline); nil for anything that is not a whole,
    /// checksummed entry (a torn write, a foreign line).
    public init?(line: some StringProtocol) {
        let words = line.split(separator: " ", omittingEmptySubsequences: false)
        guard words.count == 9, words[0] == "F1" else { return nil }
        let bodyLength = line.utf8.count - words[8].utf8.count - 1
        guard hex(crc32(Array(line.utf8.prefix(bodyLength)))) == words[8],
              let fillID = Int64(words[1]), fillID > 0,
              let c = try? ClientOrderID(String(words[2])), let i = try? Instrument(String(words[3])),
              let side = Side(rawValue: String(words[4])), let q = Int64(words[5]), (1...Order.maximumQuantity).contains(q),
              let micros = Int64(words[6]), micros > 0, let ns = Int64(words[7]) else { return nil }
        self.init(fillID: fillID, clientOrderID: c, instrument: i, side: side, quantity: q, price: Price(micros: micros), filledNs: ns)
    }

    /// The fill this entry records.
    public var fill: Fill? {
        try? Fill(fillID: fillID, clientOrderID: clientOrderID, instrument: instrument, side: side, quantity: quantity, price: price)
    }
}

/// A failed journal file operation: which one, and errno.
public struct JournalError: Error, CustomStringConvertible, Sendable {
    public let operation: String
    public let code: Int32
    public var description: String { "\(operation): \(String(cString: strerror(code)))" }
}

/// The journal file. Appends open, write, fsync and close each time: a journal deleted or
/// moved by hand is simply started again, never written into the void.
public struct FillJournal: Sendable {
    public let path: String

    public init(path: String) { self.path = path }

    /// `fills.journal` beside the database.
    public static func defaultPath(databasePath: String) -> String {
        parentDirectory(of: databasePath) + "/fills.journal"
    }

    /// Appends `entries` in one write and fsyncs; returns once they are on disk.
    public func append(_ entries: [JournalEntry]) throws(JournalError) {
        guard !entries.isEmpty else { return }
        var bytes = Array(entries.map { $0.line + "\n" }.joined().utf8)
        let fd = open(path, O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw JournalError(operation: "open \(path)", code: errno) }
        defer { close(fd) }
        // A torn last line (a crash half-way through a write) is ended first, so this entry
        // starts a line of its own instead of being glued to the fragment and lost with it.
        var st = stat()
        if fstat(fd, &st) == 0 && st.st_size > 0 {
            var last: UInt8 = 0
            if pread(fd, &last, 1, off_t(st.st_size - 1)) == 1 && last != 10 { bytes.insert(10, at: 0) }
        }
        var offset = 0
        while offset < bytes.count {
            let n = bytes[offset...].withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                throw JournalError(operation: "write \(path)", code: errno)
            }
            offset += n
        }
        guard fsync(fd) == 0 else { throw JournalError(operation: "fsync \(path)", code: errno) }
    }

    /// Every whole entry in file order, and how many lines were not (torn or foreign).
    /// A missing file is an empty journal.
    public func read() throws(JournalError) -> (entries: [JournalEntry], damagedLines: Int) {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        if fd < 0 {
            if errno == ENOENT { return ([], 0) }
            throw JournalError(operation: "open \(path)", code: errno)
        }
        defer { close(fd) }
        var data: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let n = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                throw JournalError(operation: "read \(path)", code: errno)
            }
            if n == 0 { break }
            data.append(contentsOf: chunk[0..<n])
        }
        return FillJournal.parse(data)
    }

    /// Splits journal bytes into entries; a last line without its newline is torn.
    public static func parse(_ data: [UInt8]) -> (entries: [JournalEntry], damagedLines: Int) {
        var entries: [JournalEntry] = [], damaged = 0
        let lines = data.split(separator: 10, omittingEmptySubsequences: false)
        for (n, raw) in lines.enumerated() {
            let isLast = n == lines.count - 1
            if isLast && raw.isEmpty { break }  // the file ended with a newline
            if !isLast, let e = JournalEntry(line: String(decoding: raw, as: UTF8.self)) { entries.append(e) } else { damaged += 1 }
        }
        return (entries, damaged)
    }
}

/// The directory part of `path` ("." for a bare name).
func parentDirectory(of path: String) -> String {
    guard let slash = path.lastIndex(of: "/") else { return "." }
    return slash == path.startIndex ? "/" : String(path[..<slash])
}

private func hex(_ v: UInt32) -> String {
    let s = String(v, radix: 16)
    return String(repeating: "0", count: 8 - s.count) + s
}

/// CRC-32 (IEEE 802.3, as zlib), bit by bit: the journal is small and this keeps it
/// dependency-free.
func crc32(_ bytes: [UInt8]) -> UInt32 {
    var crc: UInt32 = 0xFFFF_FFFF
    for b in bytes {
        crc ^= UInt32(b)
        for _ in 0..<8 { crc = (crc >> 1) ^ (0xEDB8_8320 & (0 &- (crc & 1))) }
    }
    return ~crc
}
