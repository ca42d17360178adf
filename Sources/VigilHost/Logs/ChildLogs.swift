import CShim
import Glibc

/// Each child's stdout and stderr, kept line by line in size-rotated files under the
/// runtime directory (`logs/<child>.log`, then `.1`, `.2`, `.3`, oldest last), each line
/// stamped with the local time and the pid that wrote it:
///
///     2026-12-04 00:38:27.485 [4581] subscribed to 3 instruments
///
/// `vigil logs NAME` reads them (with or without a running vigil). Writes are plain
/// appends to a regular file: they do not block the loop the way a pipe or terminal can.
final class ChildLogs {
    let directory: String
    /// Rotate a file once it has grown past this.
    let maximumBytes: Int
    /// Rotated files kept besides the current one.
    static let keep = 3

    private var open: [String: (fd: Int32, size: Int)] = [:]

    init(directory: String, maximumBytes: Int = 4 << 20) {
        self.directory = directory
        self.maximumBytes = maximumBytes
        _ = mkdir(directory, 0o700)
    }

    deinit {
        for (_, f) in open { close(f.fd) }
    }

    /// The file of `child` (generation 0) or one of its rotated predecessors.
    static func path(_ directory: String, child: String, generation: Int = 0) -> String {
        directory + "/" + child + ".log" + (generation == 0 ? "" : ".\(generation)")
    }

    /// Appends one line (without its newline) written by `pid`.
    func append(_ child: String, pid: Int32, line: ArraySlice<UInt8>, at wallNanoseconds: Int64) {
        guard var f = file(for: child) else { return }
        var bytes = Array("\(LogLine.timestamp(wallNanoseconds)) [\(pid)] ".utf8)
        bytes.append(contentsOf: line)
        bytes.append(0x0A)
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.write(f.fd, $0.baseAddress! + offset, $0.count - offset) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }  // a full disk loses log lines, never the tree
            offset += n
        }
        f.size += offset
        open[child] = f
        if f.size >= maximumBytes { rotate(child) }
    }

    private func file(for child: String) -> (fd: Int32, size: Int)? {
        if let f = open[child] { return f }
        let fd = Glibc.open(Self.path(directory, child: child), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o600)
        guard fd >= 0 else { return nil }
        var st = stat()
        let size = fstat(fd, &st) == 0 ? Int(st.st_size) : 0
        open[child] = (fd, size)
        return open[child]
    }

    /// `x.log.2` -> `x.log.3`, ..., `x.log` -> `x.log.1`; the next line starts a new file.
    private func rotate(_ child: String) {
        if let f = open.removeValue(forKey: child) { close(f.fd) }
        for g in stride(from: Self.keep - 1, through: 0, by: -1) {
            _ = rename(Self.path(directory, child: child, generation: g), Self.path(directory, child: child, generation: g + 1))
        }
    }
}

/// Splits a child's output stream into lines, keeping a partial last line until its newline
/// arrives or the stream ends (`flush`), and cutting lines longer than `maximumLine`.
struct LineAssembler {
    static let maximumLine = 16 * 1024
    private(set) var pending: [UInt8] = []

    /// Feeds bytes; calls `line` for every complete line, in order.
    mutating func feed(_ bytes: UnsafeRawBufferPointer, _ line: (ArraySlice<UInt8>) -> Void) {
        var start = 0
        for (i, b) in bytes.enumerated() where b == 0x0A {
            if pending.isEmpty {
                line(ArraySlice(bytes[start..<i]))
            } else {
                pending.append(contentsOf: bytes[start..<i])
                line(pending[...])
                pending.removeAll(keepingCapacity: true)
            }
            start = i + 1
        }
        if start < bytes.count { pending.append(contentsOf: bytes[start...]) }
        while pending.count >= Self.maximumLine {
            line(pending[..<Self.maximumLine])
            pending.removeFirst(Self.maximumLine)
        }
    }

    /// The stream ended: its last line, even without a newline.
    mutating func flush(_ line: (ArraySlice<UInt8>) -> Void) {
        if !pending.isEmpty { line(pending[...]) }
        pending.removeAll()
    }
}

/// Reading the log files back, for `vigil logs` (no running vigil needed).
public enum ChildLogFiles {
    /// The files of `child` that exist, oldest first.
    public static func files(directory: String, child: String) -> [String] {
        (0...ChildLogs.keep).reversed().map { ChildLogs.path(directory, child: child, generation: $0) }
            .filter { access($0, R_OK) == 0 }
    }

    /// Every child with a log in `directory`, sorted.
    public static func children(directory: String) -> [String] {
        guard let dir = opendir(directory) else { return [] }
        defer { closedir(dir) }
        var names: Set<String> = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            if name.hasSuffix(".log") { names.insert(String(name.dropLast(4))) }
        }
        return names.sorted()
    }

    /// The last `count` lines (all when nil) of `child`'s logs, oldest first.
    public static func tail(directory: String, child: String, count: Int?) -> [String] {
        var lines: [String] = []
        for f in files(directory: directory, child: child) {
            guard let text = readWhole(f) else { continue }
            lines.append(contentsOf: text.split(separator: "\n", omittingEmptySubsequences: false).dropLast().map(String.init))
            if let count, lines.count > count * 2 { lines.removeFirst(lines.count - count) }
        }
        if let count, lines.count > count { lines.removeFirst(lines.count - count) }
        return lines
    }

    /// Prints what is appended to `child`'s current log from byte `offset` on, forever
    /// (until the process is interrupted), following a rotation to the new file.
    public static func follow(directory: String, child: String, write: (String) -> Void) -> Never {
        let path = ChildLogs.path(directory, child: child)
        var st = stat()
        var inode = stat(path, &st) == 0 ? st.st_ino : 0
        var offset = stat(path, &st) == 0 ? Int(st.st_size) : 0
        while true {
            if stat(path, &st) == 0 {
                if st.st_ino != inode { inode = st.st_ino; offset = 0 }  // rotated: a new file
                if Int(st.st_size) > offset, let fd = Optional(open(path, O_RDONLY | O_CLOEXEC)), fd >= 0 {
                    var buffer = [UInt8](repeating: 0, count: 64 * 1024)
                    while true {
                        let n = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, off_t(offset)) }
                        if n <= 0 { break }
                        offset += n
                        write(String(decoding: buffer[0..<n], as: UTF8.self))
                    }
                    close(fd)
                }
            }
            usleep(100_000)
        }
    }

    private static func readWhole(_ path: String) -> String? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var out: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 64 * 1024)
        while true {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n <= 0 { break }
            out.append(contentsOf: buffer[0..<n])
        }
        return String(decoding: out, as: UTF8.self)
    }
}
