import CShim
import Glibc
import VigilCore

/// The HTTP listener for Prometheus scrapes, on loopback, driven by vigil's epoll loop.
///
/// Why a hand-written server this small: it runs inside the supervisor's one thread, so it
/// must never block and never let a client hold anything for long. A connection carries
/// one request (`GET /metrics` → 200, anything else → 404) and is closed after its answer;
/// a client that does not send its request head within `requestTimeout`, sends more than
/// `maxRequestBytes`, or does not read its answer within `responseTimeout` is cut off, and
/// more than `maxConnections` at once are refused, so no client can stall or exhaust vigil.
final class MetricsServer {
    static let maxConnections = 32
    static let maxRequestBytes = 8 * 1024
    static let requestTimeout: Duration = .seconds(2)
    static let responseTimeout: Duration = .seconds(10)

    let endpoint: MetricsEndpoint
    private(set) var listenFD: Int32 = -1

    /// Binds and listens (non-blocking, CLOEXEC, SO_REUSEADDR so a restarted vigil gets
    /// its port back at once).
    init(_ endpoint: MetricsEndpoint) throws(HostError) {
        self.endpoint = endpoint
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        guard fd >= 0 else { throw Self.failure(endpoint, "socket", errno) }
        var one: Int32 = 1
        _ = setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var sa = sockaddr_in()
        sa.sin_family = sa_family_t(AF_INET)
        sa.sin_port = endpoint.port.bigEndian
        let o = endpoint.octets
        sa.sin_addr.s_addr = (UInt32(o.0) << 24 | UInt32(o.1) << 16 | UInt32(o.2) << 8 | UInt32(o.3)).bigEndian
        let rc = withUnsafePointer(to: &sa) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard rc == 0 else {
            let e = errno
            Glibc.close(fd)
            throw Self.failure(endpoint, "bind", e)
        }
        guard listen(fd, 64) == 0 else {
            let e = errno
            Glibc.close(fd)
            throw Self.failure(endpoint, "listen", e)
        }
        listenFD = fd
    }

    deinit { close() }

    func close() {
        if listenFD >= 0 { Glibc.close(listenFD) }
        listenFD = -1
    }

    /// Accepts what is pending; beyond `maxConnections` open ones (`open`), a connection
    /// is closed at once (the scraper retries at its next interval).
    func acceptReady(open: Int, now: Int64) -> [MetricsConnection] {
        var accepted: [MetricsConnection] = []
        guard listenFD >= 0 else { return accepted }
        while true {
            let fd = vigil_accept(listenFD)
            if fd < 0 {
                if -fd == EINTR || -fd == ECONNABORTED { continue }
                break  // EAGAIN: drained; EMFILE: stays queued
            }
            if open + accepted.count >= Self.maxConnections {
                Glibc.close(fd)
                continue
            }
            accepted.append(MetricsConnection(fd: fd, deadline: now &+ Self.requestTimeout.nanoseconds))
        }
        return accepted
    }

    private static func failure(_ endpoint: MetricsEndpoint, _ call: String, _ e: Int32) -> HostError {
        var advice = ""
        if e == EADDRINUSE { advice = "; another program listens there: choose another port for metrics: in the topology, or stop it" }
        if e == EADDRNOTAVAIL { advice = "; this machine has no such loopback address: use 127.0.0.1" }
        return HostError("cannot serve metrics on \(endpoint): \(call): \(String(cString: strerror(e)))\(advice)")
    }
}

/// One scrape: the request head in, one response out, then closed.
final class MetricsConnection {
    enum Progress: Equatable {
        /// The head is not complete yet: keep EPOLLIN.
        case reading
        /// A complete head asking for this path with this method: answer with `respond`.
        case request(method: String, path: String)
        /// Part of the response waits for EPOLLOUT.
        case writing
        /// Done or cut off; the fd is closed.
        case closed
    }

    let fd: Int32
    private(set) var deadline: Int64?
    private var input: [UInt8] = []
    private var output: [UInt8] = []
    private var written = 0
    private(set) var isClosed = false

    init(fd: Int32, deadline: Int64) {
        self.fd = fd
        self.deadline = deadline
    }

    deinit { if !isClosed { Glibc.close(fd) } }

    var isWriting: Bool { !output.isEmpty && !isClosed }

    /// Reads what is there. A head over the limit is answered with 431 and cut off.
    func handleReadable(now: Int64) -> Progress {
        if isClosed { return .closed }
        if isWriting { return flush() }
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let room = min(chunk.count, MetricsServer.maxRequestBytes - input.count)
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, room, Int32(MSG_DONTWAIT)) }
            if n < 0 {
                if errno == EINTR { continue }
                return errno == EAGAIN || errno == EWOULDBLOCK ? .reading : closeNow()
            }
            if n == 0 { return closeNow() }  // gone before a whole request
            input.append(contentsOf: chunk[..<n])
            if let head = Self.requestLine(input) { return head }
            if input.count >= MetricsServer.maxRequestBytes {
                return respond(status: "431 Request Header Fields Too Large",
                               body: "request head over \(MetricsServer.maxRequestBytes) bytes\n", contentType: Self.plain, now: now)
            }
        }
    }

    /// The method and path once the head is complete (an empty line ends it), else nil.
    static func requestLine(_ bytes: [UInt8]) -> Progress? {
        // Bytes, not Characters: "\r\n" is one Character in Swift.
        let lf: UInt8 = 0x0A, cr: UInt8 = 0x0D
        let ended = bytes.indices.contains { i in
            bytes[i] == lf && ((i >= 1 && bytes[i - 1] == lf) || (i >= 2 && bytes[i - 1] == cr && bytes[i - 2] == lf))
        }
        guard ended else { return nil }
        let first = String(decoding: bytes.prefix { $0 != cr && $0 != lf }, as: UTF8.self)
        let words = first.split(separator: " ")
        guard words.count == 3, words[2].hasPrefix("HTTP/") else { return .request(method: "", path: "") }
        return .request(method: String(words[0]), path: String(words[1]))
    }

    static let plain = "text/plain; charset=utf-8"
    static let exposition = "text/plain; version=0.0.4; charset=utf-8"

    /// Queues the response and writes what the socket takes now.
    func respond(status: String, body: String, contentType: String, now: Int64) -> Progress {
        if isClosed { return .closed }
        let bodyBytes = Array(body.utf8)
        let head = "HTTP/1.1 \(status)\r\nContent-Type: \(contentType)\r\nContent-Length: \(bodyBytes.count)\r\nConnection: close\r\n\r\n"
        output = Array(head.utf8) + bodyBytes
        written = 0
        input = []
        deadline = now &+ MetricsServer.responseTimeout.nanoseconds
        return flush()
    }

    func handleWritable() -> Progress {
        isClosed ? .closed : flush()
    }

    /// Cuts the connection off once its deadline passed.
    func checkDeadline(now: Int64) -> Progress {
        guard let deadline, now >= deadline else { return isClosed ? .closed : (isWriting ? .writing : .reading) }
        return closeNow()
    }

    private func flush() -> Progress {
        while written < output.count {
            let n = output.withUnsafeBytes {
                send(fd, $0.baseAddress! + written, $0.count - written, Int32(MSG_NOSIGNAL) | Int32(MSG_DONTWAIT))
            }
            if n < 0 {
                if errno == EINTR { continue }
                return errno == EAGAIN || errno == EWOULDBLOCK ? .writing : closeNow()
            }
            written += n
        }
        // All sent: end our side so the client sees EOF after the body, then close.
        _ = shutdown(fd, Int32(SHUT_WR))
        return closeNow()
    }

    private func closeNow() -> Progress {
        if !isClosed {
            isClosed = true
            Glibc.close(fd)
        }
        output = []
        input = []
        deadline = nil
        return .closed
    }
}
