import Foundation
import Testing
import Trading
@testable import TradingStore

/// The cache client never waits longer than its timeout: not for a missing socket, not for
/// a server that accepts nothing (its queue full), not for one that accepts and never answers.
@Suite("Cache client: answers, and a bounded wait for a cache that is down or wedged", .serialized)
struct CacheClientTests {
    let directory: String = {
        let d = NSTemporaryDirectory() + "cache-client-" + UUID().uuidString.prefix(8)
        try! FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
        return d
    }()

    /// A listening socket at `directory/name` that nobody accepts on (a wedged cache warmer).
    func listener(_ name: String, backlog: Int32 = 4) throws -> (fd: Int32, path: String) {
        let path = directory + "/" + name
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        try #require(fd >= 0)
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &addr.sun_path) { raw in
            raw.copyBytes(from: Array(path.utf8))
            raw[path.utf8.count] = 0
        }
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        try #require(rc == 0 && listen(fd, backlog) == 0)
        return (fd, path)
    }

    /// Milliseconds `body` took.
    func timed<T>(_ body: () -> T) -> (T, Double) {
        let start = Date()
        let r = body()
        return (r, Date().timeIntervalSince(start) * 1000)
    }

    @Test func noSocketIsDownAtOnce() {
        let (r, ms) = timed { CacheClient(path: directory + "/none.sock").book() }
        guard case .failed(let why) = r else { Issue.record("\(r)"); return }
        #expect(why.hasPrefix("down ("), "\(why)")
        #expect(ms < 50)
    }

    @Test func aServerThatNeverAnswersCostsTheTimeoutAndNoMore() throws {
        let l = try listener("wedged.sock", backlog: 1)
        defer { close(l.fd) }
        let client = CacheClient(path: l.path, timeout: .milliseconds(50))
        // Connections pile up in the queue unaccepted; once it is full a connect would block
        // a blocking client forever: this one says down, or timed out, within its timeout.
        var reasons: Set<String> = []
        for _ in 0..<6 {
            let (r, ms) = timed { client.ask(["GET book"]) }
            guard case .failure(let f) = r else { Issue.record("answered: \(r)"); return }
            reasons.insert(f.description)
            #expect(ms < 250, "\(f) after \(ms) ms")
        }
        #expect(reasons.contains(CacheClient.Failure.timedOut(.milliseconds(50)).description), "\(reasons)")
    }

    @Test func aServedBookIsRead() throws {
        let l = try listener("served.sock")
        defer { close(l.fd) }
        let btc = try Instrument("BTC-USD")
        let snapshot = try CacheSnapshot(generation: 4, instruments: [(btc, Price(units: 60_000))], lastPrices: [:],
                                         fills: [Fill(fillID: 1, clientOrderID: ClientOrderID("strategy-runner.1.1.a.1"), instrument: btc,
                                                      side: .buy, quantity: 2, price: Price(units: 60_000))])
        let server = Thread { [fd = l.fd] in
            for answer in [snapshot.answer("GET book"), "ERROR cache_rebuilding"] {
                let c = accept(fd, nil, nil)
                guard c >= 0 else { return }
                var buffer = [UInt8](repeating: 0, count: 256)
                _ = buffer.withUnsafeMutableBytes { read(c, $0.baseAddress, $0.count) }
                let bytes = Array((answer + "\n").utf8)
                // In two writes: the client reads until the whole line is there.
                _ = bytes.prefix(10).withUnsafeBytes { write(c, $0.baseAddress, $0.count) }
                usleep(5_000)
                _ = bytes.dropFirst(10).withUnsafeBytes { write(c, $0.baseAddress, $0.count) }
                close(c)
            }
        }
        server.start()
        let client = CacheClient(path: l.path, timeout: .milliseconds(500))
        guard case .book(let b) = client.book() else { Issue.record("no book"); return }
        #expect(b.generation == 4 && b.book == snapshot.book && b.book.netQuantities == [btc: 2])
        #expect(client.book() == .failed("rebuilding (no snapshot yet)"))
    }

    @Test func aServerThatClosesIsNoAnswer() throws {
        let l = try listener("closing.sock")
        defer { close(l.fd) }
        let server = Thread { [fd = l.fd] in
            let c = accept(fd, nil, nil)
            if c >= 0 { close(c) }
        }
        server.start()
        // A generous bound: on a loaded machine the server thread may take a while to run.
        let r = CacheClient(path: l.path, timeout: .seconds(5)).ask(["INFO"])
        #expect(r == .failure(.closed) || r == .failure(.io(ECONNRESET)) || r == .failure(.io(EPIPE)), "\(r)")
    }
}
