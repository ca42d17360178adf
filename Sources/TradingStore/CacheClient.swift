// A client of the cache warmer's socket (`$VIGIL_RUNTIME_DIR/cache.sock`) that never
// blocks for longer than its timeout: a cache that is down, wedged (stopped, its accept
// queue full) or slow costs the caller at most `timeout`, and the caller carries on.
@preconcurrency import Glibc
import CShim
import Trading

/// Asks the cache warmer one batch of request lines per connection. Every call opens a
/// fresh non-blocking connection and closes it, so an answer cut short by the deadline
/// can never be taken for the answer to a later request.
public struct CacheClient: Sendable {
    public let path: String
    /// The whole exchange (connect, send, every answer line) gets this long.
    public let timeout: Duration
    /// An answer longer than this is refused (the cache's answers are a few KiB).
    public let maximumAnswerBytes: Int

    public init(path: String, timeout: Duration = .milliseconds(50), maximumAnswerBytes: Int = 1 << 20) {
        self.path = path
        self.timeout = timeout
        self.maximumAnswerBytes = maximumAnswerBytes
    }

    /// The default socket path: `$VIGIL_RUNTIME_DIR/cache.sock`, else `./cache.sock`.
    public static func defaultPath(runtimeDirectory: String?) -> String {
        guard let dir = runtimeDirectory else { return "./cache.sock" }
        return dir.hasSuffix("/") ? dir + "cache.sock" : dir + "/cache.sock"
    }

    /// Why a request got no (whole) answer.
    public enum Failure: Error, Hashable, Sendable, CustomStringConvertible {
        /// Nothing serves the socket: no file, connection refused, accept queue full (a
        /// wedged server), or another connect error; errno.
        case down(Int32)
        /// Connected, but the answers did not all arrive within the timeout.
        case timedOut(Duration)
        /// The server closed the connection before answering every line.
        case closed
        /// A send or receive failed; errno.
        case io(Int32)
        case tooLarge(Int)

        public var description: String {
            switch self {
            case .down(let e): "down (\(CacheClient.describe(e)))"
            case .timedOut(let t): "wedged or slow: no answer within \(t)"
            case .closed: "closed the connection before answering"
            case .io(let e): "unreadable (\(CacheClient.describe(e)))"
            case .tooLarge(let n): "answered more than \(n) bytes"
            }
        }
    }

    /// Sends `requests` (one line each, in one write) and returns one answer line each.
    public func ask(_ requests: [String]) -> Result<[String], Failure> {
        let (seconds, attoseconds) = timeout.components
        let deadline = vigil_monotonic_ns() + Int64(clamping: Int128(seconds) * 1_000_000_000 + Int128(attoseconds / 1_000_000_000))
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return .failure(.io(errno)) }
        defer { close(fd) }
        switch connect(fd, deadline: deadline) {
        case .success: break
        case .failure(let f): return .failure(f)
        }
        var out = ArraySlice(Array(requests.map { $0 + "\n" }.joined().utf8))
        var received: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 16384)
        var lines = 0
        while lines < requests.count {
            if !out.isEmpty {
                let n = out.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL) | Int32(MSG_DONTWAIT)) }
                if n > 0 { out = out.dropFirst(n); continue }
                if n < 0 && errno != EAGAIN && errno != EINTR { return .failure(.io(errno)) }
            }
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
            if n > 0 {
                received += buffer[0..<n]
                lines += buffer[0..<n].reduce(0) { $1 == 10 ? $0 + 1 : $0 }
                if received.count > maximumAnswerBytes { return .failure(.tooLarge(maximumAnswerBytes)) }
                continue
            }
            if n == 0 { return .failure(.closed) }
            if errno == EINTR { continue }
            guard errno == EAGAIN else { return .failure(.io(errno)) }
            guard wait(fd, for: Int16(POLLIN) | (out.isEmpty ? 0 : Int16(POLLOUT)), until: deadline) else {
                return .failure(.timedOut(timeout))
            }
        }
        let text = String(decoding: received, as: UTF8.self)
        return .success(text.split(separator: "\n", omittingEmptySubsequences: false).prefix(requests.count).map(String.init))
    }

    /// The cache's book (`GET book`), or why there is none, for `RiskSourceSelector`.
    public func book() -> CacheReading {
        switch ask(["GET book"]) {
        case .failure(let f):
            return .failed(f.description)
        case .success(let lines):
            do { return .book(try CachedBook(parsing: lines.first ?? "")) } catch {
                if case .refused("cache_rebuilding") = error { return .failed("rebuilding (no snapshot yet)") }
                return .failed("\(error)")
            }
        }
    }

    // MARK: - Sockets

    private func connect(_ fd: Int32, deadline: Int64) -> Result<Void, Failure> {
        let bytes = Array(path.utf8)
        guard !bytes.isEmpty, bytes.count < MemoryLayout.size(ofValue: sockaddr_un().sun_path), !bytes.contains(0) else {
            return .failure(.down(ENAMETOOLONG))
        }
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &addr.sun_path) { raw in
            raw.copyBytes(from: bytes)
            raw[bytes.count] = 0
        }
        var rc: Int32
        repeat {
            rc = withUnsafePointer(to: &addr) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
            }
        } while rc != 0 && errno == EINTR
        if rc == 0 { return .success(()) }
        // A Unix socket connects at once or not at all: EAGAIN is a full accept queue (a
        // server that does not accept), which waiting a few ms would not change.
        guard errno == EINPROGRESS else { return .failure(.down(errno)) }
        guard wait(fd, for: Int16(POLLOUT), until: deadline) else { return .failure(.timedOut(timeout)) }
        var error: Int32 = 0
        var length = socklen_t(MemoryLayout<Int32>.size)
        guard getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length) == 0 else { return .failure(.down(errno)) }
        return error == 0 ? .success(()) : .failure(.down(error))
    }

    /// Waits for `events` on `fd` until `deadline` (monotonic ns); false when it passed.
    private func wait(_ fd: Int32, for events: Int16, until deadline: Int64) -> Bool {
        while true {
            let left = deadline - vigil_monotonic_ns()
            guard left > 0 else { return false }
            var p = pollfd(fd: fd, events: events, revents: 0)
            let n = poll(&p, 1, Int32(clamping: (left + 999_999) / 1_000_000))
            if n > 0 { return true }
            if n < 0 && errno != EINTR { return true }  // let the next call report the error
        }
    }

    static func describe(_ code: Int32) -> String {
        guard let s = strerror(code) else { return "errno \(code)" }
        return String(cString: s)
    }
}
