import Foundation
import Testing

/// vigil upward to systemd, checked with our own NOTIFY_SOCKET (no systemd runs here) and
/// `systemd-analyze verify` on the shipped unit.
@Suite("vigil and systemd")
struct SystemdIntegrationTests {
    /// A bound AF_UNIX datagram socket standing in for systemd's notify socket.
    final class NotifyListener {
        let path: String
        let fd: Int32

        init(path: String) {
            self.path = path
            fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
            var addr = sockaddr_un()
            addr.sun_family = sa_family_t(AF_UNIX)
            withUnsafeMutableBytes(of: &addr.sun_path) { raw in
                for (i, b) in path.utf8.enumerated() { raw[i] = b }
            }
            _ = withUnsafePointer(to: &addr) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
            }
        }

        deinit { close(fd); unlink(path) }

        /// Datagrams until one contains `needle`, or nil after `timeout` seconds.
        func receive(until needle: String, timeout: Double = 15) -> [String]? {
            var seen: [String] = []
            let deadline = Date().addingTimeInterval(timeout)
            while Date() < deadline {
                var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
                guard poll(&pfd, 1, 50) > 0 else { continue }
                var buffer = [UInt8](repeating: 0, count: 4096)
                let n = recv(fd, &buffer, buffer.count, 0)
                guard n > 0 else { continue }
                let text = String(decoding: buffer[0..<n], as: UTF8.self)
                seen.append(text)
                if text.contains(needle) { return seen }
            }
            return nil
        }
    }

    @Test func readyOnlyOnceTheTreeIsReadyThenWatchdogAndStopping() throws {
        let v = try VigilUnderTest("""
        name: t
        children:
          - worker: slow
            argv: [WORKER]
            env: {TW_READY_DELAY_MS: "300"}
        """, start: false)
        let listener = NotifyListener(path: v.directory + "/notify.sock")
        try v.launch(["up", v.topologyPath], environment: ["NOTIFY_SOCKET": listener.path, "WATCHDOG_USEC": "200000"])
        let untilReady = listener.receive(until: "READY=1")
        #expect(untilReady != nil, "no READY=1\n\(v.log)")
        #expect(untilReady?.last?.contains("STATUS=1/1 workers running") == true, "\(untilReady ?? [])")
        // READY came after the worker's READY, which the journal recorded first.
        #expect(v.events().contains { $0.contains(" ready ") && $0.contains(" slow ") })
        #expect(listener.receive(until: "WATCHDOG=1", timeout: 5) != nil)
        kill(v.process.processIdentifier, SIGTERM)
        #expect(listener.receive(until: "STOPPING=1", timeout: 10) != nil)
        #expect(v.waitForExit() == 0)
    }

    @Test func shippedUnitFilePassesSystemdAnalyzeVerify() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let unit = try String(contentsOf: root.appendingPathComponent("Deploy/vigil.service"), encoding: .utf8)
        #expect(unit.contains("Type=notify") && unit.contains("WatchdogSec="))
        let dir = NSTemporaryDirectory() + "vigil-unit-\(getpid())"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        // verify insists the ExecStart binary exists: point it at the one just built.
        try unit.replacingOccurrences(of: "/usr/local/lib/vigil/vigil", with: VigilUnderTest.vigil)
            .write(toFile: dir + "/vigil.service", atomically: true, encoding: .utf8)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/systemd-analyze")
        p.arguments = ["verify", dir + "/vigil.service"]
        let pipe = Pipe()
        p.standardOutput = pipe
        p.standardError = pipe
        try p.run()
        let out = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        #expect(p.terminationStatus == 0, "\(out)")
        #expect(out.isEmpty, "\(out)")
    }
}
