#if canImport(Glibc)
import Glibc
#endif
import Testing
@testable import VigilHost

/// A datagram socket standing in for systemd's notify socket.
private final class FakeSystemd {
    let fd: Int32
    /// What NOTIFY_SOCKET must say to reach it.
    let address: String
    private let cleanupPath: String?

    /// `abstract: true` binds in the abstract namespace (`@name`), as systemd does for
    /// user managers in containers.
    init(abstract: Bool) {
        fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        precondition(fd >= 0)
        let name: String
        if abstract {
            name = "vigil-notify-test-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
            address = "@" + name
            cleanupPath = nil
        } else {
            var template = Array("/tmp/vigil-notify-test-XXXXXX".utf8CString)
            let dir = String(cString: template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!)! })
            name = dir + "/notify.sock"
            address = name
            cleanupPath = dir
        }
        var sa = sockaddr_un()
        sa.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(name.utf8)
        let offset = abstract ? 1 : 0
        withUnsafeMutableBytes(of: &sa.sun_path) { raw in
            for (i, b) in bytes.enumerated() { raw[i + offset] = b }
        }
        let length = socklen_t(MemoryLayout<sa_family_t>.size + bytes.count + offset + (abstract ? 0 : 1))
        let rc = withUnsafePointer(to: &sa) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) }
        }
        precondition(rc == 0, "bind: \(String(cString: strerror(errno)))")
    }

    deinit {
        close(fd)
        if let cleanupPath {
            unlink(cleanupPath + "/notify.sock")
            rmdir(cleanupPath)
        }
    }

    /// The next datagram's text, or nil if none arrives within a second.
    func receive() -> String? {
        var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        guard poll(&p, 1, 1000) == 1 else { return nil }
        var buffer = [UInt8](repeating: 0, count: 4096)
        let n = recv(fd, &buffer, buffer.count, 0)
        guard n >= 0 else { return nil }
        return String(decoding: buffer[..<n], as: UTF8.self)
    }

    /// True when no datagram is waiting.
    func isEmpty() -> Bool {
        var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        return poll(&p, 1, 50) == 0
    }
}

/// These tests change the process environment, so they run one at a time.
@Suite("SystemdNotifier", .serialized)
struct SystemdNotifierTests {
    private func withEnvironment(_ vars: [String: String?], _ body: () throws -> Void) throws {
        let keys = ["NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"]
        let saved = keys.map { k in getenv(k).map { String(cString: $0) } }
        for (k, v) in vars {
            if let v { setenv(k, v, 1) } else { unsetenv(k) }
        }
        defer {
            for (k, v) in zip(keys, saved) {
                if let v { setenv(k, v, 1) } else { unsetenv(k) }
            }
        }
        try body()
    }

    private func exerciseAllMessages(_ fake: FakeSystemd) throws {
        try withEnvironment(["NOTIFY_SOCKET": fake.address, "WATCHDOG_USEC": nil, "WATCHDOG_PID": nil]) { () throws in
            let n = SystemdNotifier()
            #expect(n.isEnabled)
            #expect(n.notifySocket == fake.address)
            #expect(try n.ready(status: "tree up: 7 workers ready"))
            #expect(fake.receive() == "READY=1\nSTATUS=tree up: 7 workers ready")
            try n.status("safe mode\nsecond line")
            #expect(fake.receive() == "STATUS=safe mode second line")
            try n.watchdog()
            #expect(fake.receive() == "WATCHDOG=1")
            try n.stopping()
            #expect(fake.receive() == "STOPPING=1")
            try n.reloading(monotonicMicros: 123_456_789)
            #expect(fake.receive() == "RELOADING=1\nMONOTONIC_USEC=123456789")
            // sd_notify(unset_environment = 0) leaves the variable for the next call.
            #expect(getenv("NOTIFY_SOCKET").map { String(cString: $0) } == fake.address)
            #expect(fake.isEmpty())
        }
    }

    @Test func pathSocket() throws {
        try exerciseAllMessages(FakeSystemd(abstract: false))
    }

    @Test func abstractSocket() throws {
        try exerciseAllMessages(FakeSystemd(abstract: true))
    }

    @Test func disabledWithoutNotifySocket() throws {
        try withEnvironment(["NOTIFY_SOCKET": nil, "WATCHDOG_USEC": nil, "WATCHDOG_PID": nil]) { () throws in
            let n = SystemdNotifier()
            #expect(!n.isEnabled)
            #expect(n.watchdogInterval == nil)
            #expect(try n.ready(status: "x") == false)
            #expect(try n.watchdog() == false)
        }
        // An explicit environment without NOTIFY_SOCKET disables sending even when the
        // process has one.
        let fake = FakeSystemd(abstract: false)
        try withEnvironment(["NOTIFY_SOCKET": fake.address]) { () throws in
            let n = SystemdNotifier(environment: [:])
            #expect(!n.isEnabled)
            #expect(try n.watchdog() == false)
            #expect(fake.isEmpty())
        }
    }

    @Test func unreachableSocketThrows() throws {
        try withEnvironment(["NOTIFY_SOCKET": "/nonexistent/vigil/notify.sock"]) { () throws in
            let n = SystemdNotifier()
            #expect(n.isEnabled)
            #expect(throws: SystemdNotifyError.self) { try n.watchdog() }
        }
    }

    @Test func watchdogIntervalFromProcessEnvironment() throws {
        // Through sd_watchdog_enabled.
        try withEnvironment(["WATCHDOG_USEC": "2000000", "WATCHDOG_PID": nil]) { () throws in
            #expect(SystemdNotifier().watchdogInterval == .seconds(1))
        }
        try withEnvironment(["WATCHDOG_USEC": "2000000", "WATCHDOG_PID": String(getpid())]) { () throws in
            #expect(SystemdNotifier().watchdogInterval == .seconds(1))
        }
        try withEnvironment(["WATCHDOG_USEC": "2000000", "WATCHDOG_PID": "1"]) { () throws in
            #expect(SystemdNotifier().watchdogInterval == nil)  // meant for another process
        }
        try withEnvironment(["WATCHDOG_USEC": "0", "WATCHDOG_PID": nil]) { () throws in
            #expect(SystemdNotifier().watchdogInterval == nil)
        }
        try withEnvironment(["WATCHDOG_USEC": "soon", "WATCHDOG_PID": nil]) { () throws in
            #expect(SystemdNotifier().watchdogInterval == nil)
        }
    }

    @Test func watchdogIntervalFromExplicitEnvironment() {
        let me = String(getpid())
        #expect(SystemdNotifier(environment: ["WATCHDOG_USEC": "2000000"]).watchdogInterval == .seconds(1))
        #expect(SystemdNotifier(environment: ["WATCHDOG_USEC": "3000", "WATCHDOG_PID": me]).watchdogInterval == .microseconds(1500))
        #expect(SystemdNotifier(environment: ["WATCHDOG_USEC": "2000000", "WATCHDOG_PID": "1"]).watchdogInterval == nil)
        #expect(SystemdNotifier(environment: ["WATCHDOG_USEC": "-5"]).watchdogInterval == nil)
        #expect(SystemdNotifier(environment: ["WATCHDOG_USEC": ""]).watchdogInterval == nil)
        #expect(SystemdNotifier(environment: ["NOTIFY_SOCKET": ""]).isEnabled == false)
    }
}
