import Foundation
import Testing

/// What the prometheus-client package's own parser made of vigil's metrics.
struct ParsedMetrics {
    var contentType: String?
    /// Sample name -> its samples (labels, value).
    var samples: [String: [(labels: [String: String], value: Double)]] = [:]
    var types: [String: String] = [:]

    /// The value of the one sample `name` whose labels include `labels`.
    func value(_ name: String, _ labels: [String: String] = [:]) -> Double? {
        let matching = (samples[name] ?? []).filter { s in labels.allSatisfy { s.labels[$0.key] == $0.value } }
        return matching.count == 1 ? matching[0].value : nil
    }

    static let script: String = {
        let file = #filePath  // Tests/IntegrationTests/THIS
        var url = URL(fileURLWithPath: file)
        for _ in 0..<3 { url.deleteLastPathComponent() }
        return url.path + "/Scripts/parse-metrics.py"
    }()

    /// Runs `Scripts/parse-metrics.py SOURCE` (a URL, or `-` with `input` on stdin).
    static func parse(_ source: String, input: String? = nil, sourceLocation: SourceLocation = #_sourceLocation) -> ParsedMetrics? {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["python3", script, source]
        let out = Pipe(), err = Pipe(), inp = Pipe()
        p.standardOutput = out
        p.standardError = err
        p.standardInput = inp
        do { try p.run() } catch {
            Issue.record("cannot run python3: \(error)", sourceLocation: sourceLocation)
            return nil
        }
        if let input { inp.fileHandleForWriting.write(Data(input.utf8)) }
        try? inp.fileHandleForWriting.close()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        let problems = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        guard p.terminationStatus == 0,
              let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
              let families = object["families"] as? [[String: Any]] else {
            Issue.record("parse-metrics.py \(source) failed (\(p.terminationStatus)): \(problems)", sourceLocation: sourceLocation)
            return nil
        }
        var parsed = ParsedMetrics(contentType: object["content_type"] as? String)
        for f in families {
            parsed.types[f["name"] as! String] = f["type"] as? String
            for s in f["samples"] as! [[String: Any]] {
                let value = (s["value"] as? Double) ?? (s["value"] as? Int).map(Double.init) ?? .nan
                parsed.samples[s["name"] as! String, default: []].append((s["labels"] as? [String: String] ?? [:], value))
            }
        }
        return parsed
    }
}

/// A loopback TCP port nothing listens on right now (bound, read back, released).
func freeLoopbackPort() -> UInt16 {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var sa = sockaddr_in()
    sa.sin_family = sa_family_t(AF_INET)
    sa.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    withUnsafeMutablePointer(to: &sa) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            precondition(bind(fd, $0, length) == 0)
            precondition(getsockname(fd, $0, &length) == 0)
        }
    }
    return UInt16(bigEndian: sa.sin_port)
}

/// A raw TCP client on 127.0.0.1:port, for clients that misbehave.
final class RawClient {
    let fd: Int32

    init(port: UInt16) {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        var sa = sockaddr_in()
        sa.sin_family = sa_family_t(AF_INET)
        sa.sin_port = port.bigEndian
        sa.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
        let rc = withUnsafePointer(to: &sa) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        precondition(rc == 0, "connect: \(errno)")
    }

    deinit { close(fd) }

    /// Sends up to `bytes` of `A`s, stopping when the server cuts the connection off;
    /// true when it did.
    func flood(_ bytes: Int, timeout: Double) -> Bool {
        let chunk = [UInt8](repeating: UInt8(ascii: "A"), count: 64 * 1024)
        var sent = 0
        let deadline = Date().addingTimeInterval(timeout)
        while sent < bytes && Date() < deadline {
            var p = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
            guard poll(&p, 1, 50) == 1 else { continue }
            let n = chunk.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL) | Int32(MSG_DONTWAIT)) }
            if n < 0 { return errno == EPIPE || errno == ECONNRESET }
            sent += n
        }
        return false
    }

    /// Everything the server sends until it closes, or nil if it has not closed within
    /// `timeout` seconds.
    func readToEnd(timeout: Double) -> String? {
        var data: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&p, 1, 20) == 1 else { continue }
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n < 0 && errno == ECONNRESET { return String(decoding: data, as: UTF8.self) }
            if n <= 0 { return String(decoding: data, as: UTF8.self) }
            data += buffer[0..<n]
        }
        return nil
    }

    func write(_ text: String) {
        _ = Array(text.utf8).withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
    }
}

/// `metrics:` over HTTP and `vigil metrics`, parsed by prometheus-client, against a real
/// tree whose worker is killed with SIGKILL.
@Suite("Prometheus metrics")
struct MetricsIntegrationTests {
    static func topology(port: UInt16) -> String {
        """
        name: t
        metrics: 127.0.0.1:\(port)
        children:
          - supervisor: s
            max_restarts: 4
            period: 1m
            children:
              - worker: feed
                argv: [WORKER]
        """
    }

    @Test func httpAndTheCLIAgreeAndAKillCountsOneRestart() throws {
        let port = freeLoopbackPort()
        let v = try VigilUnderTest(Self.topology(port: port))
        let s = v.waitFor("feed ready", v.allReady(["feed"]))
        let pid = try #require(s["feed"]?.pid)
        let url = "http://127.0.0.1:\(port)/metrics"

        let before = try #require(ParsedMetrics.parse(url))
        #expect(before.contentType == "text/plain; version=0.0.4; charset=utf-8")
        #expect(before.types["vigil_child_restarts"] == "counter" && before.types["vigil_child_state"] == "gauge")
        let feed = ["child": "feed", "supervisor": "s"]
        #expect(before.value("vigil_child_restarts_total", feed) == 0)
        #expect(before.value("vigil_child_incarnation", feed) == 1)
        #expect(before.value("vigil_child_state", ["child": "feed", "state": "ready"]) == 1)
        #expect(before.samples["vigil_child_state"]?.filter { $0.value == 1 }.count == 1, "one state at a time")
        #expect((before.value("vigil_child_resident_memory_bytes", feed) ?? 0) > 0)
        #expect(before.value("vigil_supervisor_intensity_restarts", ["supervisor": "s"]) == 0)
        #expect(before.value("vigil_supervisor_intensity_max_restarts", ["supervisor": "s"]) == 4)
        #expect(before.value("vigil_supervisor_intensity_period_seconds", ["supervisor": "s"]) == 60)
        #expect(before.value("vigil_safe_mode") == 0 && before.value("vigil_liquidation_ordered") == 0)
        #expect(before.value("vigil_predictor_advisories_total") == 0)

        kill(pid, SIGKILL)
        v.waitFor("feed back", { $0["feed"]?.incarnation == 2 && $0["feed"]?.state == "ready" })
        let (code, text) = runVigil(["metrics", "--runtime-dir", v.runtimeDirectory])
        #expect(code == 0, "\(text)")
        let after = try #require(ParsedMetrics.parse("-", input: text))
        #expect(after.value("vigil_child_restarts_total", feed) == 1)
        #expect(after.value("vigil_child_incarnation", feed) == 2)
        #expect(after.value("vigil_child_last_exit_signal", feed) == 9)
        #expect(after.value("vigil_child_last_exit_code", feed) == nil, "killed by a signal: no exit code")
        #expect(after.value("vigil_supervisor_intensity_restarts", ["supervisor": "s"]) == 1)
        #expect((after.value("vigil_child_resident_memory_bytes", feed) ?? 0) > 0)
        #expect((after.value("vigil_child_uptime_seconds", feed) ?? -1) >= 0)
        let overHTTP = try #require(ParsedMetrics.parse(url))
        #expect(overHTTP.value("vigil_child_restarts_total", feed) == 1, "the endpoint says the same")
        #expect(v.interrupt() == 0)
    }

    @Test func slowFloodingAndWrongClientsAreCutOffAndNeverStallVigil() throws {
        let port = freeLoopbackPort()
        let v = try VigilUnderTest(Self.topology(port: port))
        v.waitFor("feed ready", v.allReady(["feed"]))

        // Never sends a request: vigil goes on serving others, and cuts it off.
        let silent = RawClient(port: port)
        let started = Date()
        let other = RawClient(port: port)
        other.write("GET /metrics HTTP/1.0\r\n\r\n")
        let answer = try #require(other.readToEnd(timeout: 5))
        #expect(answer.hasPrefix("HTTP/1.1 200 OK\r\n") && answer.contains("vigil_child_restarts_total"))
        #expect(silent.readToEnd(timeout: 10) != nil, "a silent client is closed")
        #expect(Date().timeIntervalSince(started) >= 1.5, "after the request timeout, not at once")

        // Megabytes with no end of head: cut off after the limit.
        let flooder = RawClient(port: port)
        let cut = flooder.flood(16 << 20, timeout: 10) || flooder.readToEnd(timeout: 5) != nil
        #expect(cut, "a flooding client is cut off")

        // Anything but GET /metrics: 404.
        for request in ["GET / HTTP/1.1\r\nHost: x\r\n\r\n", "POST /metrics HTTP/1.1\r\n\r\n", "garbage\n\n"] {
            let c = RawClient(port: port)
            c.write(request)
            let reply = c.readToEnd(timeout: 5) ?? ""
            #expect(reply.hasPrefix("HTTP/1.1 404 Not Found\r\n"), "\(request.debugDescription): \(reply)")
        }
        // vigil is still fine.
        #expect(try v.control(["status"]).ok)
        #expect(ParsedMetrics.parse("http://127.0.0.1:\(port)/metrics")?.value("vigil_safe_mode") == 0)
        #expect(v.interrupt() == 0)
    }

    @Test func aPortInUseIsRefusedWithWhatToDo() throws {
        let port = freeLoopbackPort()
        let holder = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(holder) }
        var sa = sockaddr_in()
        sa.sin_family = sa_family_t(AF_INET)
        sa.sin_port = port.bigEndian
        sa.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
        let rc = withUnsafePointer(to: &sa) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(holder, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        try #require(rc == 0 && listen(holder, 1) == 0)
        let v = try VigilUnderTest(Self.topology(port: port))
        #expect(v.waitForExit() == 1)
        #expect(v.log.contains("cannot serve metrics on 127.0.0.1:\(port): bind: Address already in use; another program listens there"), "\(v.log)")
    }
}
