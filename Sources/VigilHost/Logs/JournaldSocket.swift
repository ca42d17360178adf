import Glibc

/// vigil's datagram socket to systemd-journald, used only when vigil's own stderr *is* the
/// journal.
///
/// systemd sets `JOURNAL_STREAM=DEV:INODE` for a service whose stdout or stderr it connects
/// to the journal; `systemd.exec(5)` says a program should compare that with `fstat()` of
/// its stderr and speak the native protocol only when they match, since a shell or a
/// wrapper may have redirected stderr while the variable was inherited. So a mismatch, an
/// unset variable or a malformed one keeps the text lines.
///
/// Sends never block the event loop: the socket is non-blocking and a send that fails for
/// any reason (journald gone, its queue full: EAGAIN, an entry too large for one datagram)
/// returns false, and the caller writes the text line to stderr instead.
final class JournaldSocket {
    /// Where journald listens for the native protocol.
    static let defaultPath = "/run/systemd/journal/socket"
    /// Overrides `defaultPath` (tests stand in for journald with a socket of their own).
    static let pathVariable = "VIGIL_JOURNAL_SOCKET"

    let path: String
    private let fd: Int32

    /// The socket to journald when `environment`'s `JOURNAL_STREAM` names descriptor
    /// `stderr` (fd 2), else nil.
    static func forStderr(environment: [String: String], stderr: Int32 = 2) -> JournaldSocket? {
        guard let stream = environment["JOURNAL_STREAM"], names(stream, descriptor: stderr) else { return nil }
        let path = environment[pathVariable].flatMap { $0.isEmpty ? nil : $0 } ?? defaultPath
        return JournaldSocket(path: path)
    }

    /// True when `value` (`DEV:INODE`, decimal) is the device and inode of `descriptor`.
    static func names(_ value: String, descriptor: Int32) -> Bool {
        let parts = value.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 2, let dev = UInt64(parts[0]), let ino = UInt64(parts[1]) else { return false }
        var st = stat()
        guard fstat(descriptor, &st) == 0 else { return false }
        return UInt64(st.st_dev) == dev && UInt64(st.st_ino) == ino
    }

    private init?(path: String) {
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        guard fd >= 0 else { return nil }
        // As sd-journal does: room for a burst (a cascade's records) in the send buffer.
        var size: Int32 = 8 << 20
        _ = setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, socklen_t(MemoryLayout<Int32>.size))
        self.fd = fd
        self.path = path
    }

    deinit { close(fd) }

    /// Sends one entry as one datagram, without waiting; false when it was not sent.
    func send(_ datagram: [UInt8]) -> Bool {
        let rc = datagram.withUnsafeBytes { bytes in
            ControlSocketAddress.with(path) { address, length in
                sendto(fd, bytes.baseAddress, bytes.count, Int32(MSG_DONTWAIT) | Int32(MSG_NOSIGNAL), address, length)
            } ?? -1
        }
        return rc == datagram.count
    }
}
