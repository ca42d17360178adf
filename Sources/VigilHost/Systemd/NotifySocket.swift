import CShim
import Glibc
import VigilWire

/// vigil's `NOTIFY_SOCKET` for its children: an AF_UNIX datagram socket with SO_PASSCRED,
/// so every datagram names its sender's pid (the kernel's word, not the sender's), which
/// vigil maps to a child by pid or process group. Descriptors sent with SCM_RIGHTS come
/// out CLOEXEC and owned by the caller.
final class NotifySocket {
    let path: String
    let fd: Int32
    private var buffer = [UInt8](repeating: 0, count: NotifyMessage.maximumSize + 1)
    private var fdBuffer = [Int32](repeating: -1, count: 253)

    struct Datagram {
        var pid: Int32
        var uid: UInt32
        /// nil when the datagram was larger than `NotifyMessage.maximumSize` (cut short).
        var bytes: [UInt8]?
        var length: Int
        /// Owned by the receiver: store or close each.
        var fds: [Int32]
    }

    init(path: String) throws(HostError) {
        let fd = vigil_notify_socket(path)
        guard fd >= 0 else { throw HostError("cannot create the notify socket \(path): \(String(cString: strerror(-fd)))") }
        self.fd = fd
        self.path = path
    }

    deinit {
        close(fd)
        unlink(path)
    }

    /// The next datagram, or nil when none is waiting.
    func receive() -> Datagram? {
        var pid: pid_t = 0, uid: uid_t = 0, count: Int32 = 0
        let n = buffer.withUnsafeMutableBufferPointer { b in
            fdBuffer.withUnsafeMutableBufferPointer { f in
                vigil_notify_receive(fd, b.baseAddress, b.count, &pid, &uid, f.baseAddress, Int32(f.count), &count)
            }
        }
        guard n >= 0 else { return nil }  // EAGAIN (or a transient error: try on the next wake-up)
        let length = Int(n)
        let fds = Array(fdBuffer.prefix(Int(count)))
        let bytes = length <= NotifyMessage.maximumSize ? Array(buffer.prefix(length)) : nil
        return Datagram(pid: pid, uid: uid, bytes: bytes, length: length, fds: fds)
    }
}
