import CShim
@preconcurrency import Glibc

/// A failed socket call: which one, and errno.
public struct SocketError: Error, CustomStringConvertible, Sendable {
    public let operation: String
    public let code: Int32
    public var description: String { "\(operation): \(describe(errno: code))" }
}

/// Unix stream sockets for workers that talk to each other (the exchange gateway and its
/// strategy runners). Every fd returned is CLOEXEC and non-blocking.
public enum UnixSocket {
    /// Longest path `sun_path` holds (107 bytes plus the terminator).
    public static let maximumPathLength = MemoryLayout<sockaddr_un>.size - MemoryLayout<sa_family_t>.size - 1

    /// Binds and listens on `path` with mode 0600. A stale socket file (nobody accepting
    /// behind it) is removed first; a live one is an `EADDRINUSE` error, so two servers never
    /// steal each other's path.
    public static func listen(path: String, backlog: Int32 = 64) throws(SocketError) -> Int32 {
        if let probe = try? connect(path: path) {
            close(probe)
            throw SocketError(operation: "listen \(path): another process is serving it", code: EADDRINUSE)
        }
        if unlink(path) != 0 && errno != ENOENT { throw SocketError(operation: "unlink \(path)", code: errno) }
        let fd = try socket()
        let rc = withAddress(path) { addr, len in bind(fd, addr, len) }
        guard rc == 0 else {
            let e = rc < 0 ? errno : rc
            close(fd)
            throw SocketError(operation: "bind \(path)", code: e)
        }
        chmod(path, 0o600)
        guard Glibc.listen(fd, backlog) == 0 else {
            let e = errno
            close(fd)
            throw SocketError(operation: "listen \(path)", code: e)
        }
        return fd
    }

    /// Connects to `path` (blocking only for the connect itself, which is immediate for
    /// Unix sockets), then makes the fd non-blocking.
    public static func connect(path: String) throws(SocketError) -> Int32 {
        let fd = try socket(nonblocking: false)
        let rc = withAddress(path) { addr, len in Glibc.connect(fd, addr, len) }
        guard rc == 0 else {
            let e = rc < 0 ? errno : rc
            close(fd)
            throw SocketError(operation: "connect \(path)", code: e)
        }
        _ = vigil_set_nonblocking(fd, 1)
        return fd
    }

    /// Accepts one pending connection (non-blocking, CLOEXEC), or nil when none is pending.
    public static func accept(_ listener: Int32) -> Int32? {
        let fd = vigil_accept(listener)
        return fd >= 0 ? fd : nil
    }

    /// Reads what is available: bytes, `[]` at end of stream, nil when nothing is ready.
    /// Throws on a real error (ECONNRESET and friends).
    public static func read(_ fd: Int32, maximum: Int = 65536) throws(SocketError) -> [UInt8]? {
        var buffer = [UInt8](repeating: 0, count: maximum)
        while true {
            let n = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n >= 0 { return Array(buffer[0..<n]) }
            if errno == EINTR { continue }
            if errno == EAGAIN || errno == EWOULDBLOCK { return nil }
            throw SocketError(operation: "read", code: errno)
        }
    }

    /// Writes as much of `bytes` as the socket takes now; returns how many were written.
    /// Throws on a real error (EPIPE when the peer is gone).
    public static func write(_ fd: Int32, _ bytes: ArraySlice<UInt8>) throws(SocketError) -> Int {
        var written = 0
        while written < bytes.count {
            let n = bytes.withUnsafeBytes { raw in
                send(fd, raw.baseAddress! + written, raw.count - written, Int32(MSG_NOSIGNAL) | Int32(MSG_DONTWAIT))
            }
            if n >= 0 { written += n; continue }
            if errno == EINTR { continue }
            if errno == EAGAIN || errno == EWOULDBLOCK { break }
            throw SocketError(operation: "write", code: errno)
        }
        return written
    }

    private static func socket(nonblocking: Bool = true) throws(SocketError) -> Int32 {
        var type = Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue)
        if nonblocking { type |= Int32(SOCK_NONBLOCK.rawValue) }
        let fd = Glibc.socket(AF_UNIX, type, 0)
        guard fd >= 0 else { throw SocketError(operation: "socket", code: errno) }
        return fd
    }

    private static func withAddress(_ path: String, _ body: (UnsafePointer<sockaddr>, socklen_t) -> Int32) -> Int32 {
        let bytes = Array(path.utf8)
        guard !bytes.isEmpty, bytes.count <= maximumPathLength, !bytes.contains(0) else { return ENAMETOOLONG }
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &addr.sun_path) { raw in
            raw.copyBytes(from: bytes)
            raw[bytes.count] = 0
        }
        return withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
    }
}
