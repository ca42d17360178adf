#if canImport(Glibc)
import Glibc
#endif
import CShim
import Testing
@testable import VigilHost

// MARK: - Test scaffolding

private func controlTempDir() -> String {
    var template = Array("/tmp/vigil-ctl-XXXXXX".utf8CString)
    return String(cString: template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!)! })
}

private func removeTree(_ path: String) { _ = system("rm -rf '\(path)'") }

private final class ThreadBody { let run: () -> Void; init(_ run: @escaping () -> Void) { self.run = run } }

/// A plain pthread: the server loop must run beside the blocking client.
private func startThread(_ body: @escaping () -> Void) -> pthread_t {
    var tid = pthread_t()
    let box = Unmanaged.passRetained(ThreadBody(body)).toOpaque()
    let rc = pthread_create(&tid, nil, { p in
        Unmanaged<ThreadBody>.fromOpaque(p!).takeRetainedValue().run()
        return nil
    }, box)
    precondition(rc == 0)
    return tid
}

/// What the test server answers: nil means "never answer" (the request stays pending).
private typealias Answer = @Sendable (ControlRequest) -> (ok: Bool, body: String)?

/// A miniature of vigil's event loop: poll instead of epoll, same calls in the same order
/// as the documented recipe. Runs on its own thread until `stop()`.
private final class TestLoop: @unchecked Sendable {
    let server: ControlServer
    private let answer: Answer
    private var wake: [Int32] = [-1, -1]
    private var thread: pthread_t?
    private let lock = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private var _requests: [ControlRequest] = []
    private var _maxOpen = 0

    init(server: ControlServer, answer: @escaping Answer) {
        self.server = server
        self.answer = answer
        pthread_mutex_init(lock, nil)
        precondition(pipe(&wake) == 0)
        thread = startThread { [self] in run() }
    }

    /// Requests seen so far.
    var requests: [ControlRequest] {
        pthread_mutex_lock(lock); defer { pthread_mutex_unlock(lock) }
        return _requests
    }

    func stop() {
        guard let t = thread else { return }
        _ = write(wake[1], "x", 1)
        pthread_join(t, nil)
        thread = nil
        close(wake[0]); close(wake[1])
        server.close()
    }

    deinit { stop(); lock.deallocate() }

    private func run() {
        var connections: [ControlConnection] = []
        while true {
            var fds = [pollfd(fd: wake[0], events: Int16(POLLIN), revents: 0),
                       pollfd(fd: server.listenFD, events: Int16(POLLIN), revents: 0)]
            for c in connections {
                var ev: Int16 = 0
                if c.epollEvents & VIGIL_EPOLLIN != 0 { ev |= Int16(POLLIN) }
                if c.epollEvents & VIGIL_EPOLLOUT != 0 { ev |= Int16(POLLOUT) }
                fds.append(pollfd(fd: c.fd, events: ev, revents: 0))
            }
            _ = poll(&fds, nfds_t(fds.count), 10)
            if fds[0].revents != 0 { break }
            var next: [ControlConnection] = []
            func apply(_ c: ControlConnection, _ p: ControlConnection.Progress) {
                switch p {
                case .closed: return
                case .request(let r):
                    pthread_mutex_lock(lock); _requests.append(r); pthread_mutex_unlock(lock)
                    if let a = answer(r) {
                        apply(c, c.respond(ok: a.ok, body: a.body))
                        return
                    }
                    next.append(c)
                default: next.append(c)
                }
            }
            for (i, c) in connections.enumerated() {
                let re = fds[i + 2].revents
                if re != 0 {
                    var ev: UInt32 = 0
                    if re & Int16(POLLIN) != 0 { ev |= VIGIL_EPOLLIN }
                    if re & Int16(POLLOUT) != 0 { ev |= VIGIL_EPOLLOUT }
                    if re & Int16(POLLHUP) != 0 { ev |= VIGIL_EPOLLHUP }
                    if re & Int16(POLLERR) != 0 { ev |= VIGIL_EPOLLERR }
                    apply(c, c.handle(events: ev))
                } else {
                    apply(c, c.checkDeadline())
                }
            }
            if fds[1].revents != 0 {
                for c in server.acceptReady() { next.append(c) }
            }
            connections = next
        }
        for c in connections { c.close() }
    }
}

/// A blocking raw client for requests ControlClient refuses to send.
private func rawExchange(_ path: String, _ bytes: [UInt8], readTimeoutMs: Int32 = 2000) -> String? {
    let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
    defer { close(fd) }
    guard ControlSocketAddress.with(path, { connect(fd, $0, $1) }) == 0 else { return nil }
    var sent = 0
    while sent < bytes.count {
        let n = bytes.withUnsafeBytes { send(fd, $0.baseAddress! + sent, $0.count - sent, Int32(MSG_NOSIGNAL)) }
        if n <= 0 { break }  // the server may stop reading and answer early
        sent += n
    }
    var out: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 65536)
    while true {
        var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        guard poll(&p, 1, readTimeoutMs) == 1 else { return nil }
        let n = recv(fd, &chunk, chunk.count, 0)
        if n <= 0 { break }
        out.append(contentsOf: chunk[..<n])
    }
    return String(decoding: out, as: UTF8.self)
}

private func fileMode(_ path: String) -> mode_t? {
    var st = stat()
    return lstat(path, &st) == 0 ? st.st_mode : nil
}

/// Leaves a socket file with nobody listening, as a crashed vigil does.
private func makeStaleSocket(_ path: String) {
    let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
    _ = ControlSocketAddress.with(path) { bind(fd, $0, $1) }
    close(fd)
}

// MARK: - Tests

@Suite("ControlSocket", .serialized)
struct ControlSocketTests {
    @Test func roundTripAndErrorResponse() throws {
        let dir = controlTempDir()
        defer { removeTree(dir) }
        let path = dir + "/run/control.sock"
        let loop = TestLoop(server: try ControlServer(path: path)) { r in
            switch r.command {
            case "status": (true, "tree: up\nworkers: 7\n")
            case "stop": (false, "no child named \(r.arguments.first ?? "?")\ntry: vigil status")
            default: (false, "unknown command \(r.command)")
            }
        }
        defer { loop.stop() }

        #expect(fileMode(path).map { $0 & 0o777 } == 0o600)
        #expect(fileMode(dir + "/run").map { $0 & 0o777 } == 0o700)

        let ok = try ControlClient.send(["status", "--json"], to: path, timeout: .seconds(5))
        #expect(ok == ControlResponse(ok: true, message: "", body: "tree: up\nworkers: 7\n"))

        let err = try ControlClient.send(["stop", "db-watchdog"], to: path, timeout: .seconds(5))
        #expect(err == ControlResponse(ok: false, message: "no child named db-watchdog", body: "try: vigil status"))

        let reqs = loop.requests
        #expect(reqs.map(\.words) == [["status", "--json"], ["stop", "db-watchdog"]])
        #expect(reqs.allSatisfy { $0.peerUID == geteuid() && $0.peerPID == getpid() })

        // Raw: extra spaces and tabs, CRLF, bytes after the newline are all tolerated.
        #expect(rawExchange(path, Array("  kill\tstrategy-runner.2   KILL\r\nignored".utf8))
                == "error unknown command kill\n")
        #expect(loop.requests.last?.words == ["kill", "strategy-runner.2", "KILL"])
    }

    @Test func malformedRequestsGetErrors() throws {
        let dir = controlTempDir()
        defer { removeTree(dir) }
        let path = dir + "/control.sock"
        let loop = TestLoop(server: try ControlServer(path: path)) { _ in (true, "") }
        defer { loop.stop() }

        let long = [UInt8](repeating: UInt8(ascii: "a"), count: 10_000) + [10]
        #expect(rawExchange(path, long)?.hasPrefix("error request too long") == true)
        // Exactly at the limit is fine; one byte more is not.
        let atLimit = [UInt8](repeating: UInt8(ascii: "b"), count: ControlProtocol.maxRequestBytes - 1) + [10]
        #expect(rawExchange(path, atLimit) == "ok\n")
        let overLimit = [UInt8](repeating: UInt8(ascii: "b"), count: ControlProtocol.maxRequestBytes) + [10]
        #expect(rawExchange(path, overLimit)?.hasPrefix("error request too long") == true)

        #expect(rawExchange(path, [0x73, 0xff, 0xfe, 10]) == "error request is not valid UTF-8\n")
        #expect(rawExchange(path, Array("   \n".utf8)) == "error empty request\n")
        #expect(loop.requests.count == 1)

        // The client refuses what the server would.
        #expect(throws: ControlClientError.self) { try ControlClient.send([], to: path, timeout: .seconds(1)) }
        do {
            _ = try ControlClient.send(["stop", "a b"], to: path, timeout: .seconds(1))
            Issue.record("sent a word with a space")
        } catch { #expect(error.code == .invalidRequest) }
        do {
            _ = try ControlClient.send([String(repeating: "x", count: 5000)], to: path, timeout: .seconds(1))
            Issue.record("sent an oversize request")
        } catch { #expect(error.code == .invalidRequest) }
    }

    @Test func refusesToStartOverLiveServer() throws {
        let dir = controlTempDir()
        defer { removeTree(dir) }
        let path = dir + "/control.sock"
        let first = try ControlServer(path: path)
        do {
            _ = try ControlServer(path: path)
            Issue.record("a second server started")
        } catch {
            #expect(error.code == .alreadyRunning)
            #expect(error.otherPID == getpid())
            #expect(error.message == "another vigil is running with this runtime directory (pid \(getpid()))")
        }
        // Still the first one's socket, still listening.
        #expect(ControlServer.probe(path).isLive)
        first.close()
        #expect(fileMode(path) == nil)  // removed on close
        let again = try ControlServer(path: path)
        #expect(again.listenFD >= 0)
    }

    @Test func liveServerWithoutLockIsDetected() throws {
        // A listener that does not take the lock (another tool, an older vigil).
        let dir = controlTempDir()
        defer { removeTree(dir) }
        let path = dir + "/control.sock"
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        defer { close(fd) }
        #expect(ControlSocketAddress.with(path, { bind(fd, $0, $1) }) == 0)
        #expect(listen(fd, 4) == 0)
        do {
            _ = try ControlServer(path: path)
            Issue.record("started over a live listener")
        } catch {
            #expect(error.code == .alreadyRunning)
            #expect(error.otherPID == getpid())
        }
        #expect(fileMode(path) != nil)  // not unlinked
    }

    @Test func replacesStaleSocketButNotOtherFiles() throws {
        let dir = controlTempDir()
        defer { removeTree(dir) }
        let path = dir + "/control.sock"
        makeStaleSocket(path)
        #expect(fileMode(path).map { $0 & 0o170000 } == 0o140000)

        do {
            _ = try ControlClient.send(["status"], to: path, timeout: .seconds(1))
            Issue.record("talked to a stale socket")
        } catch {
            #expect(error.code == .staleSocket)
            #expect(error.message.contains("stale control socket at \(path)"))
        }

        let loop = TestLoop(server: try ControlServer(path: path)) { _ in (true, "fresh") }
        #expect(try ControlClient.send(["status"], to: path, timeout: .seconds(5)).body == "fresh")
        loop.stop()

        let file = dir + "/not-a-socket"
        close(open(file, O_CREAT | O_WRONLY, 0o600))
        do {
            _ = try ControlServer(path: file)
            Issue.record("replaced a regular file")
        } catch {
            #expect(error.code == .invalidPath)
            #expect(error.message.contains("not a socket"))
        }
        #expect(fileMode(file).map { $0 & 0o170000 } == 0o100000)
    }

    @Test func clientErrors() throws {
        let dir = controlTempDir()
        defer { removeTree(dir) }
        let missing = dir + "/control.sock"
        do {
            _ = try ControlClient.send(["status"], to: missing, timeout: .seconds(1))
            Issue.record("no error without a socket")
        } catch {
            #expect(error.code == .notRunning)
            #expect(error.message == "vigil is not running (no control socket at \(missing)); start one with `vigil up FILE`, or point at the running one with --runtime-dir")
        }

        // A listener that never answers: the client gives up at its timeout.
        let path = dir + "/silent.sock"
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        defer { close(fd) }
        _ = ControlSocketAddress.with(path) { bind(fd, $0, $1) }
        listen(fd, 4)
        let t0 = vigil_monotonic_ns()
        do {
            _ = try ControlClient.send(["status"], to: path, timeout: .milliseconds(200))
            Issue.record("no timeout")
        } catch {
            #expect(error.code == .timeout)
        }
        let waited = vigil_monotonic_ns() - t0
        #expect(waited >= 190_000_000 && waited < 2_000_000_000)

        // A vigil that accepts the request but is still working on it: same timeout.
        let slow = dir + "/slow.sock"
        let loop = TestLoop(server: try ControlServer(path: slow)) { _ in nil }
        defer { loop.stop() }
        do {
            _ = try ControlClient.send(["restart", "x"], to: slow, timeout: .milliseconds(200))
            Issue.record("no timeout")
        } catch {
            #expect(error.code == .timeout)
        }
    }

    @Test func slowClientNeverBlocksTheServer() throws {
        let dir = controlTempDir()
        defer { removeTree(dir) }
        let path = dir + "/control.sock"
        let big = String(repeating: "0123456789abcdef", count: 1 << 18)  // 4 MiB
        let loop = TestLoop(server: try ControlServer(path: path)) { r in
            r.command == "big" ? (true, big) : (true, "small")
        }
        defer { loop.stop() }

        // Client A asks for 4 MiB and does not read for a while.
        let a = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        defer { close(a) }
        #expect(ControlSocketAddress.with(path, { connect(a, $0, $1) }) == 0)
        _ = send(a, "big\n", 4, 0)
        usleep(100_000)

        // Meanwhile client B is served promptly.
        let t0 = vigil_monotonic_ns()
        #expect(try ControlClient.send(["status"], to: path, timeout: .seconds(2)).body == "small")
        #expect(vigil_monotonic_ns() - t0 < 500_000_000)

        // A now reads everything, intact.
        var got: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = recv(a, &chunk, chunk.count, 0)
            if n <= 0 { break }
            got.append(contentsOf: chunk[..<n])
        }
        #expect(got.count == 3 + big.utf8.count)
        #expect(String(decoding: got, as: UTF8.self) == "ok\n" + big)
    }

    @Test func deadlinesCloseIdleClients() throws {
        let dir = controlTempDir()
        defer { removeTree(dir) }
        let path = dir + "/control.sock"
        let loop = TestLoop(server: try ControlServer(path: path, requestTimeout: .milliseconds(150))) { _ in (true, "") }
        defer { loop.stop() }
        let t0 = vigil_monotonic_ns()
        // Connects, sends half a line, then waits.
        #expect(rawExchange(path, Array("stat".utf8)) == "error timed out waiting for the request line\n")
        let waited = vigil_monotonic_ns() - t0
        #expect(waited >= 140_000_000 && waited < 1_500_000_000)
    }

    @Test func connectionStateMachineDirectly() throws {
        // Without a loop: a socketpair-like setup through a real server, stepping by hand.
        let dir = controlTempDir()
        defer { removeTree(dir) }
        let path = dir + "/control.sock"
        let server = try ControlServer(path: path)
        #expect(server.acceptReady().isEmpty)  // nothing pending: returns at once

        let client = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        defer { close(client) }
        #expect(ControlSocketAddress.with(path, { connect(client, $0, $1) }) == 0)
        let conns = server.acceptReady(now: 1_000)
        #expect(conns.count == 1)
        let c = conns[0]
        #expect(c.epollEvents == VIGIL_EPOLLIN)
        #expect(c.deadline == Int64(5_000_001_000))
        #expect(c.handleReadable() == .awaitingRequest)  // nothing sent yet

        _ = send(client, "sta", 3, 0)
        #expect(c.handleReadable() == .awaitingRequest)
        _ = send(client, "tus\n", 4, 0)
        let p = c.handleReadable()
        #expect(p == .request(ControlRequest(words: ["status"], peerUID: geteuid(), peerPID: getpid())))
        #expect(c.epollEvents == 0)
        #expect(c.deadline == nil)
        #expect(c.checkDeadline(now: Int64.max) == .awaitingResponse)  // vigil's work is not timed
        #expect(c.handleReadable() == .awaitingResponse)

        #expect(c.respond(error: "busy", body: "later\n") == .closed)
        #expect(c.isClosed)
        #expect(c.respond(ok: true, body: "again") == .closed)  // no-op
        var buf = [UInt8](repeating: 0, count: 100)
        let n = recv(client, &buf, 100, 0)
        #expect(String(decoding: buf[..<max(0, n)], as: UTF8.self) == "error busy\nlater\n")

        // A client that vanishes while vigil works on its request is closed on HUP.
        let d = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        #expect(ControlSocketAddress.with(path, { connect(d, $0, $1) }) == 0)
        _ = send(d, "stop x\n", 7, 0)
        let e = server.acceptReady()[0]
        #expect(e.handleReadable() == .request(ControlRequest(words: ["stop", "x"], peerUID: geteuid(), peerPID: getpid())))
        close(d)
        #expect(e.handle(events: VIGIL_EPOLLHUP) == .closed)
        #expect(e.respond(ok: true, body: "done") == .closed)
    }

    @Test func permissionCheck() throws {
        #expect(ControlServer.isPermitted(peerUID: 1000, serverUID: 1000))
        #expect(ControlServer.isPermitted(peerUID: 0, serverUID: 1000))
        #expect(!ControlServer.isPermitted(peerUID: 1001, serverUID: 1000))
        #expect(!ControlServer.isPermitted(peerUID: 1000, serverUID: 0))

        // End to end when we can become another user: open the file modes up so only the
        // SO_PEERCRED check stands in the way.
        guard geteuid() == 0, access("/usr/bin/setpriv", X_OK) == 0, access("/usr/bin/python3", X_OK) == 0 else { return }
        let dir = controlTempDir()
        defer { removeTree(dir) }
        let path = dir + "/control.sock"
        let loop = TestLoop(server: try ControlServer(path: path)) { _ in (true, "secret") }
        defer { loop.stop() }
        chmod(dir, 0o755)
        chmod(path, 0o666)
        let out = dir + "/out.txt"
        let script = "import socket; s=socket.socket(socket.AF_UNIX); s.connect('\(path)')\ntry: s.sendall(b'status\\n')\nexcept OSError: pass\nd=b''\nwhile True:\n  try: c=s.recv(100)\n  except OSError: break\n  if not c: break\n  d+=c\nprint(d.decode(), end='')"
        let cmd = "/usr/bin/setpriv --reuid=65534 --regid=65534 --clear-groups /usr/bin/python3 -c \"\(script)\" > \(out) 2>&1"
        #expect(system(cmd) == 0)
        let fd = open(out, O_RDONLY)
        var buf = [UInt8](repeating: 0, count: 1000)
        let n = read(fd, &buf, buf.count)
        close(fd)
        #expect(String(decoding: buf[..<max(0, n)], as: UTF8.self) == "error permission denied\n")
        #expect(loop.requests.isEmpty)
    }
}

extension ControlServer.Probe {
    fileprivate var isLive: Bool { if case .live = self { true } else { false } }
}
