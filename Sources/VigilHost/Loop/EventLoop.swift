import CShim
import Glibc

/// A single-threaded epoll loop. Everything vigil does happens on the thread that runs it:
/// one owner for the supervision tree, no locks, no lost wake-ups, and children are always
/// spawned by the same long-lived thread (PR_SET_PDEATHSIG follows the spawning thread).
///
/// Sources are registered with a `Token`, a small value the caller chooses, and come back
/// from `wait` as (token, events).
public final class EventLoop {
    /// What an fd is to the loop's owner.
    public enum Token: Hashable, Sendable {
        case signals
        case timer
        case controlListener
        case controlConnection(Int32)
        case channel(Int32)
        case notify
        case childNotify(Int32)
        case output(Int32)
        /// A pidfd of an adopted process (not vigil's child: no SIGCHLD), readable once it
        /// has exited.
        case pidfd(Int32)
        case metricsListener
        case metricsConnection(Int32)
    }

    public struct Readiness: Sendable {
        public var token: Token
        public var readable: Bool
        public var writable: Bool
        public var hangup: Bool
        /// The raw epoll event bits, for handlers that want them.
        public var events: UInt32
    }

    private let epfd: Int32
    private var tokens: [UInt64: Token] = [:]
    private var nextKey: UInt64 = 1
    private var keys: [Int32: UInt64] = [:]
    private var buffer = [vigil_event](repeating: vigil_event(), count: 128)

    public init() throws(SystemError) {
        let fd = vigil_epoll_create()
        guard fd >= 0 else { throw SystemError("epoll_create1", errno: -fd) }
        epfd = fd
    }

    deinit { close(epfd) }

    /// Watches `fd` for readability (and writability when asked).
    public func register(_ fd: Int32, as token: Token, writable: Bool = false, events explicit: UInt32? = nil) throws(SystemError) {
        let key = nextKey
        nextKey += 1
        var events = VIGIL_EPOLLIN | VIGIL_EPOLLRDHUP
        if writable { events |= VIGIL_EPOLLOUT }
        if let explicit { events = explicit }
        let rc = vigil_epoll_ctl(epfd, 0, fd, events, key)
        guard rc == 0 else { throw SystemError("epoll_ctl(ADD)", errno: -rc) }
        tokens[key] = token
        keys[fd] = key
    }

    /// Changes whether `fd` is also watched for writability.
    public func update(_ fd: Int32, writable: Bool) {
        guard let key = keys[fd] else { return }
        var events = VIGIL_EPOLLIN | VIGIL_EPOLLRDHUP
        if writable { events |= VIGIL_EPOLLOUT }
        _ = vigil_epoll_ctl(epfd, 1, fd, events, key)
    }

    /// Sets the exact epoll interest for `fd` (0: none, the fd stays registered).
    public func setInterest(_ fd: Int32, events: UInt32) {
        guard let key = keys[fd] else { return }
        _ = vigil_epoll_ctl(epfd, 1, fd, events, key)
    }

    /// Forgets an fd that was already closed (closing removed it from epoll).
    public func forget(_ fd: Int32) {
        guard let key = keys.removeValue(forKey: fd) else { return }
        tokens.removeValue(forKey: key)
    }

    /// Stops watching `fd` (call before closing it).
    public func unregister(_ fd: Int32) {
        guard let key = keys.removeValue(forKey: fd) else { return }
        tokens.removeValue(forKey: key)
        _ = vigil_epoll_ctl(epfd, 2, fd, 0, 0)
    }

    /// Waits up to `timeoutMilliseconds` (-1: forever) and returns what is ready.
    public func wait(timeoutMilliseconds: Int32) -> [Readiness] {
        let n = buffer.withUnsafeMutableBufferPointer {
            vigil_epoll_wait(epfd, $0.baseAddress, Int32($0.count), timeoutMilliseconds)
        }
        guard n > 0 else { return [] }
        var ready: [Readiness] = []
        ready.reserveCapacity(Int(n))
        for e in buffer[0..<Int(n)] {
            guard let token = tokens[e.data] else { continue }
            ready.append(Readiness(token: token,
                                   readable: e.events & (VIGIL_EPOLLIN | VIGIL_EPOLLHUP | VIGIL_EPOLLERR | VIGIL_EPOLLRDHUP) != 0,
                                   writable: e.events & VIGIL_EPOLLOUT != 0,
                                   hangup: e.events & (VIGIL_EPOLLHUP | VIGIL_EPOLLERR) != 0,
                                   events: e.events))
        }
        return ready
    }
}

/// A failed system call: which one, and errno's text.
public struct SystemError: Error, CustomStringConvertible, Sendable {
    public var call: String
    public var errno: Int32

    public init(_ call: String, errno: Int32) {
        self.call = call
        self.errno = errno
    }

    public var description: String { "\(call): \(String(cString: strerror(errno)))" }
}
