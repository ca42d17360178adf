#if canImport(Glibc)
import Glibc
#endif
import CShim

/// Why the control socket could not be set up.
public struct ControlServerError: Error, CustomStringConvertible, Sendable {
    /// What went wrong, for callers that react differently (exit codes, retries).
    public enum Code: Sendable, Equatable {
        /// A live vigil already answers on this socket (or holds its lock).
        case alreadyRunning
        /// The path is too long for `sun_path`, or something that is not a socket is there.
        case invalidPath
        /// A system call failed (see message).
        case system
    }

    /// What kind of failure.
    public var code: Code
    /// The live vigil's pid, for `.alreadyRunning` when it could be learned.
    public var otherPID: pid_t?
    /// One sentence for the operator.
    public var message: String

    /// The message.
    public var description: String { message }
}

/// The listening end of the operator control socket, driven by vigil's epoll loop.
///
/// Why a Unix stream socket with SO_PEERCRED: only local operators, identified by the
/// kernel (not by anything the client says), can steer the tree. The file is mode 0600 in
/// a 0700 directory, and the peer uid is checked again on every connection: the same
/// user as vigil, or root.
///
/// Event-loop use (single thread, nothing here blocks):
///
///     let server = try ControlServer(path: paths.controlSocket)
///     epoll add server.listenFD for EPOLLIN
///     on EPOLLIN of listenFD:
///         for c in server.acceptReady() { epoll add c.fd with c.epollEvents; remember c }
///     on any event of a connection c (EPOLLIN, EPOLLOUT, EPOLLHUP, EPOLLERR):
///         apply(c.handle(events: ev))
///     when the loop's command handler has an answer for a request:
///         apply(c.respond(ok: true, body: text))
///     on each loop tick (or a timer at the earliest c.deadline):
///         apply(c.checkDeadline())
///     apply(p):  switch p {
///         case .request(let r): hand r to the command handler (epoll interest is now 0)
///         case .closed: forget c (its fd is already closed, which removed it from epoll)
///         default: epoll mod c.fd to c.epollEvents }
///
/// Each connection carries one request and one response; see `ControlConnection`.
public final class ControlServer {
    /// The socket's path.
    public let path: String
    /// The listening socket (non-blocking, CLOEXEC): register it for EPOLLIN. -1 once closed.
    public private(set) var listenFD: Int32 = -1
    /// How long a client has, from connecting, to send its request line.
    public let requestTimeout: Duration
    /// How long a client has, from the response being ready, to read all of it.
    public let responseTimeout: Duration

    private var lockFD: Int32 = -1
    private var boundInode: (dev: UInt64, ino: UInt64)?

    /// Creates the parent directory (0700) if missing, takes `PATH.lock` (flock) so two
    /// vigils can never share a runtime directory, replaces a stale socket file only if
    /// nothing answers on it, binds, sets mode 0600 and listens.
    ///
    /// Throws `.alreadyRunning` with "another vigil is running with this runtime directory
    /// (pid N)" if a live vigil answers (or holds the lock).
    public init(path: String, requestTimeout: Duration = .seconds(5),
                responseTimeout: Duration = .seconds(10)) throws(ControlServerError) {
        self.path = path
        self.requestTimeout = requestTimeout
        self.responseTimeout = responseTimeout
        do throws(ControlServerError) {
            try setUp()
        } catch {
            close()
            throw error
        }
    }

    deinit { close() }

    private func setUp() throws(ControlServerError) {
        guard Array(path.utf8).count <= ControlSocketAddress.maxPathBytes else {
            throw ControlServerError(code: .invalidPath, message:
                "control socket path \(path) is longer than \(ControlSocketAddress.maxPathBytes) bytes; choose a shorter runtime directory (VIGIL_RUNTIME_DIR)")
        }
        let directory = RuntimePaths.parent(of: path)
        do throws(RuntimePathsError) {
            try RuntimePaths.makeDirectories(directory)
        } catch {
            throw ControlServerError(code: .system, message: "cannot create \(directory): \(error.message)")
        }
        var st = stat()
        if stat(directory, &st) == 0, st.st_uid != geteuid(), st.st_uid != 0 {
            throw ControlServerError(code: .invalidPath, message:
                "\(directory) is owned by uid \(st.st_uid), not by this user; refusing to put the control socket there")
        }

        // The lock says "a vigil owns this directory" without racing on the socket file.
        lockFD = Glibc.open(path + ".lock", O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard lockFD >= 0 else { throw Self.system("cannot open \(path).lock", errno) }
        if flock(lockFD, LOCK_EX | LOCK_NB) != 0 {
            let e = errno
            guard e == EWOULDBLOCK else { throw Self.system("cannot lock \(path).lock", e) }
            let pid: pid_t? = if case .live(let p) = Self.probe(path) { p } else { nil }
            throw Self.alreadyRunning(pid)
        }

        if lstat(path, &st) == 0 {
            guard st.st_mode & 0o170000 == 0o140000 else {
                throw ControlServerError(code: .invalidPath, message:
                    "\(path) exists and is not a socket; refusing to replace it")
            }
            switch Self.probe(path) {
            case .live(let pid):
                // Holding the lock yet something answers: a vigil that does not lock.
                throw Self.alreadyRunning(pid)
            case .stale:
                if unlink(path) != 0 && errno != ENOENT { throw Self.system("cannot remove stale \(path)", errno) }
            case .failed(let e):
                throw Self.system("cannot check the existing socket \(path)", e)
            }
        }

        listenFD = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        guard listenFD >= 0 else { throw Self.system("socket", errno) }
        let rc = ControlSocketAddress.with(path) { bind(listenFD, $0, $1) } ?? -1
        guard rc == 0 else { throw Self.system("cannot bind \(path)", errno) }
        // The 0700 directory covers the moment between bind and chmod.
        guard chmod(path, 0o600) == 0 else { throw Self.system("cannot chmod \(path)", errno) }
        guard listen(listenFD, 64) == 0 else { throw Self.system("cannot listen on \(path)", errno) }
        if lstat(path, &st) == 0 { boundInode = (UInt64(st.st_dev), UInt64(st.st_ino)) }
    }

    /// Stops listening, removes the socket file (if it is still the one we bound) and
    /// releases the lock. Open connections are not touched. Idempotent; also on deinit.
    public func close() {
        if listenFD >= 0 {
            Glibc.close(listenFD)
            listenFD = -1
            var st = stat()
            if let b = boundInode, lstat(path, &st) == 0, UInt64(st.st_dev) == b.dev, UInt64(st.st_ino) == b.ino {
                unlink(path)
            }
            boundInode = nil
        }
        if lockFD >= 0 {
            Glibc.close(lockFD)  // releases the flock; the lock file stays (unlinking races)
            lockFD = -1
        }
    }

    /// Accepts every pending connection (call on EPOLLIN of `listenFD`).
    ///
    /// Peers whose uid is neither vigil's effective uid nor root get
    /// `error permission denied` and are closed here; the rest are returned, waiting for
    /// their request line, with a deadline of now + `requestTimeout`.
    /// - Parameter now: CLOCK_MONOTONIC nanoseconds (the loop's clock).
    public func acceptReady(now: Int64 = vigil_monotonic_ns()) -> [ControlConnection] {
        var accepted: [ControlConnection] = []
        guard listenFD >= 0 else { return accepted }
        let me = geteuid()
        while true {
            let fd = vigil_accept(listenFD)
            if fd < 0 {
                let e = -fd
                if e == EINTR || e == ECONNABORTED || e == EPROTO { continue }
                // EAGAIN: drained. EMFILE/ENFILE: the connection stays queued for later.
                break
            }
            var pid: pid_t = 0
            var uid: uid_t = 0
            var gid: gid_t = 0
            guard vigil_peer_credentials(fd, &pid, &uid, &gid) == 0 else {
                Glibc.close(fd)
                continue
            }
            guard Self.isPermitted(peerUID: uid, serverUID: me) else {
                let denial = ControlProtocol.encodeResponse(ok: false, message: "permission denied", body: "")
                _ = denial.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL) | Int32(MSG_DONTWAIT)) }
                ControlConnection.drainAndClose(fd)
                continue
            }
            accepted.append(ControlConnection(
                fd: fd, peerUID: uid, peerPID: pid, now: now,
                requestTimeout: requestTimeout, responseTimeout: responseTimeout))
        }
        return accepted
    }

    /// Who may steer the tree: the user vigil runs as, and root.
    static func isPermitted(peerUID: uid_t, serverUID: uid_t) -> Bool {
        peerUID == serverUID || peerUID == 0
    }

    // MARK: - Probing an existing socket

    enum Probe { case live(pid_t?), stale, failed(Int32) }

    /// Connects without blocking to learn whether a server listens at `path`, and its pid
    /// (SO_PEERCRED of a connected client socket gives the listener's credentials).
    static func probe(_ path: String) -> Probe {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        guard fd >= 0 else { return .failed(errno) }
        defer { Glibc.close(fd) }
        let rc = ControlSocketAddress.with(path) { connect(fd, $0, $1) } ?? -1
        if rc == 0 {
            var pid: pid_t = 0, uid: uid_t = 0, gid: gid_t = 0
            return .live(vigil_peer_credentials(fd, &pid, &uid, &gid) == 0 && pid > 0 ? pid : nil)
        }
        switch errno {
        case ECONNREFUSED, ENOENT: return .stale
        case EAGAIN: return .live(nil)  // backlog full: very much alive
        case let e: return .failed(e)
        }
    }

    private static func alreadyRunning(_ pid: pid_t?) -> ControlServerError {
        ControlServerError(code: .alreadyRunning, otherPID: pid, message:
            "another vigil is running with this runtime directory (pid \(pid.map(String.init) ?? "unknown"))")
    }

    private static func system(_ what: String, _ e: Int32) -> ControlServerError {
        ControlServerError(code: .system, message: "\(what): \(RuntimePaths.errnoText(e))")
    }
}

/// One operator connection on the server side: one request in, one response out.
///
/// A small state machine the event loop drives; no call blocks:
///
///     awaitingRequest --handleReadable--> request(r)    (complete line: interest none)
///                     --handleReadable--> writing/closed (bad request: error response)
///     awaitingResponse --respond--> writing --handleWritable--> closed
///                                   (or closed at once when the response fits the socket)
///     any state --checkDeadline past deadline / peer gone / I/O error--> closed
///
/// After every call, `epollEvents` is the interest the loop should set for `fd`
/// (EPOLLIN while reading, EPOLLOUT while writing, 0 while vigil works on the request).
/// `.closed` means the fd is closed already; drop the connection. Key connections by
/// something other than the fd number if the loop can see stale events for a closed fd
/// in the same batch as a new accept reusing the number.
public final class ControlConnection {
    /// What happened, and so what the loop should do next.
    public enum Progress: Equatable, Sendable {
        /// Keep waiting for EPOLLIN: the request line is not complete.
        case awaitingRequest
        /// A complete, valid request: act on it, then call `respond`. The connection asks
        /// for no events meanwhile (EPOLLHUP may still arrive: call `handle(events:)`).
        case request(ControlRequest)
        /// Still waiting for the loop's `respond` (returned when nothing changed).
        case awaitingResponse
        /// Part of the response is still buffered: wait for EPOLLOUT.
        case writing
        /// Finished or abandoned; the fd is closed.
        case closed
    }

    private enum State { case reading, awaitingResponse, writing, closed }

    /// The connected socket (non-blocking, CLOEXEC). Closed once `isClosed`.
    public let fd: Int32
    /// Client's uid from SO_PEERCRED.
    public let peerUID: uid_t
    /// Client's pid from SO_PEERCRED.
    public let peerPID: pid_t
    /// CLOCK_MONOTONIC ns after which `checkDeadline` closes the connection: set while
    /// reading the request and while writing the response, nil while vigil works on the
    /// request (a slow client must not hold vigil, but vigil's own work is not timed here).
    public private(set) var deadline: Int64?

    private let responseTimeout: Duration
    private var state: State = .reading
    private var input: [UInt8] = []
    private var output: [UInt8] = []
    private var written = 0

    init(fd: Int32, peerUID: uid_t, peerPID: pid_t, now: Int64,
         requestTimeout: Duration, responseTimeout: Duration) {
        self.fd = fd
        self.peerUID = peerUID
        self.peerPID = peerPID
        self.responseTimeout = responseTimeout
        self.deadline = now &+ Self.nanoseconds(requestTimeout)
    }

    deinit { if state != .closed { Glibc.close(fd) } }

    /// True once the fd is closed.
    public var isClosed: Bool { state == .closed }

    /// The epoll interest for `fd` in the current state (VIGIL_EPOLLIN, VIGIL_EPOLLOUT or 0).
    public var epollEvents: UInt32 {
        switch state {
        case .reading: VIGIL_EPOLLIN
        case .writing: VIGIL_EPOLLOUT
        case .awaitingResponse, .closed: 0
        }
    }

    /// Dispatches one epoll event mask: EPOLLOUT to `handleWritable`, anything else
    /// (EPOLLIN, EPOLLHUP, EPOLLERR) to `handleReadable` or, while writing, to
    /// `handleWritable` (whose send reports the error).
    public func handle(events: UInt32, now: Int64 = vigil_monotonic_ns()) -> Progress {
        state == .writing ? handleWritable(now: now) : handleReadable(now: now)
    }

    /// Reads what the socket has (up to the request limit). Returns `.request` once the
    /// line is complete; answers an oversize, non-UTF-8, empty or unterminated request
    /// with an error response; closes when the peer went away.
    public func handleReadable(now: Int64 = vigil_monotonic_ns()) -> Progress {
        switch state {
        case .closed: return .closed
        case .writing: return .writing
        case .awaitingResponse: return checkPeerWhileWaiting()
        case .reading: break
        }
        var chunk = [UInt8](repeating: 0, count: ControlProtocol.maxRequestBytes)
        while true {
            let room = ControlProtocol.maxRequestBytes - input.count
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, room, Int32(MSG_DONTWAIT)) }
            if n < 0 {
                let e = errno
                if e == EINTR { continue }
                if e == EAGAIN || e == EWOULDBLOCK { return .awaitingRequest }
                return closeNow()
            }
            if n == 0 {
                // EOF. Nothing sent: a liveness probe (another vigil starting). Otherwise
                // the client half-closed without a newline; it may still read.
                if input.isEmpty { return closeNow() }
                return fail("request is not terminated by a newline", now: now)
            }
            let start = input.count
            input.append(contentsOf: chunk[..<n])
            if let nl = input[start...].firstIndex(of: UInt8(ascii: "\n")) {
                switch ControlProtocol.parseRequestLine(input[..<nl]) {
                case .failure(let refusal):
                    return fail(refusal.message, now: now)
                case .success(let words):
                    state = .awaitingResponse
                    deadline = nil
                    input = []
                    return .request(ControlRequest(words: words, peerUID: peerUID, peerPID: peerPID))
                }
            }
            if input.count >= ControlProtocol.maxRequestBytes {
                return fail("request too long (limit \(ControlProtocol.maxRequestBytes) bytes including the newline)", now: now)
            }
        }
    }

    /// Sends more of the buffered response (call on EPOLLOUT). `.closed` when all is sent
    /// or the client is gone.
    public func handleWritable(now: Int64 = vigil_monotonic_ns()) -> Progress {
        switch state {
        case .closed: return .closed
        case .reading: return .awaitingRequest
        case .awaitingResponse: return .awaitingResponse
        case .writing: return flush()
        }
    }

    /// Answers the request: `ok` or `error <first line of body>`. For `ok: false` the
    /// body's first line becomes the error message and the rest the body, so a caller can
    /// pass one string either way. Writes what the socket takes now; the remainder goes
    /// out on EPOLLOUT within `responseTimeout`. A no-op (`.closed`) if the client left.
    @discardableResult
    public func respond(ok: Bool, body: String, now: Int64 = vigil_monotonic_ns()) -> Progress {
        if ok { return queue(ControlProtocol.encodeResponse(ok: true, message: "", body: body), now: now) }
        let lines = body.split(separator: "\n", maxSplits: 1, omittingEmptySubsequences: false)
        let message = lines.first.map(String.init) ?? ""
        let rest = lines.count > 1 ? String(lines[1]) : ""
        return queue(ControlProtocol.encodeResponse(ok: false, message: message, body: rest), now: now)
    }

    /// Answers with `error <message>` and an optional body.
    @discardableResult
    public func respond(error message: String, body: String = "", now: Int64 = vigil_monotonic_ns()) -> Progress {
        queue(ControlProtocol.encodeResponse(ok: false, message: message, body: body), now: now)
    }

    /// Closes the connection if its deadline has passed (telling a client that never
    /// finished its request why, if the socket takes it). Call on each loop tick or at a
    /// timer for the earliest deadline.
    public func checkDeadline(now: Int64 = vigil_monotonic_ns()) -> Progress {
        guard let deadline, now >= deadline else { return progress }
        if state == .reading {
            let bytes = ControlProtocol.encodeResponse(ok: false, message: "timed out waiting for the request line", body: "")
            _ = bytes.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL) | Int32(MSG_DONTWAIT)) }
        }
        return closeNow()
    }

    /// Closes at once, dropping any unsent response (vigil shutting down).
    public func close() { _ = closeNow() }

    // MARK: - Internals

    private var progress: Progress {
        switch state {
        case .reading: .awaitingRequest
        case .awaitingResponse: .awaitingResponse
        case .writing: .writing
        case .closed: .closed
        }
    }

    private func fail(_ message: String, now: Int64) -> Progress {
        queue(ControlProtocol.encodeResponse(ok: false, message: message, body: ""), now: now, force: true)
    }

    private func queue(_ bytes: [UInt8], now: Int64, force: Bool = false) -> Progress {
        guard state == .awaitingResponse || (force && state == .reading) else { return progress }
        output = bytes
        written = 0
        state = .writing
        deadline = now &+ Self.nanoseconds(responseTimeout)
        return flush()
    }

    private func flush() -> Progress {
        while written < output.count {
            let n = output.withUnsafeBytes {
                send(fd, $0.baseAddress! + written, $0.count - written, Int32(MSG_NOSIGNAL) | Int32(MSG_DONTWAIT))
            }
            if n < 0 {
                let e = errno
                if e == EINTR { continue }
                if e == EAGAIN || e == EWOULDBLOCK { return .writing }
                return closeNow()  // EPIPE, ECONNRESET: the client left
            }
            written += n
        }
        output = []
        state = .closed
        deadline = nil
        Self.drainAndClose(fd)
        return .closed
    }

    /// While vigil works on the request the loop asks for no events, but EPOLLHUP still
    /// comes when the client is gone entirely: close then. A half-closed client (shut its
    /// write side, still reading) is kept.
    private func checkPeerWhileWaiting() -> Progress {
        var p = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
        if poll(&p, 1, 0) == 1 && (Int32(p.revents) & (Int32(POLLHUP) | Int32(POLLERR))) != 0 {
            return closeNow()
        }
        return .awaitingResponse
    }

    private func closeNow() -> Progress {
        if state != .closed {
            state = .closed
            Glibc.close(fd)
        }
        deadline = nil
        output = []
        input = []
        return .closed
    }

    /// Reads and discards what the client sent beyond its request, then closes: closing a
    /// Unix stream socket with unread input makes the client's read end with ECONNRESET
    /// instead of a clean EOF after the response.
    static func drainAndClose(_ fd: Int32) {
        var sink = [UInt8](repeating: 0, count: 4096)
        for _ in 0..<16 {
            let n = sink.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
            if n <= 0 { break }
        }
        Glibc.close(fd)
    }

    private static func nanoseconds(_ d: Duration) -> Int64 {
        let (s, atto) = d.components
        let (ns, overflow) = s.multipliedReportingOverflow(by: 1_000_000_000)
        return overflow ? Int64.max / 2 : ns &+ atto / 1_000_000_000
    }
}
