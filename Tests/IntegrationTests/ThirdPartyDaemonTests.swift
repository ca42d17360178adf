import Foundation
import Testing

/// A real third-party daemon, unmodified: redis-server speaks sd_notify when started with
/// `--supervised systemd` (Scripts/setup.sh installs Debian's redis-server).
@Suite("an unmodified daemon: redis-server --supervised systemd")
struct ThirdPartyDaemonTests {
    static let redis = "/usr/bin/redis-server"

    @Test func redisComesUpReadyThroughSdNotifyAndIsResurrectedAfterKillNine() throws {
        try #require(FileManager.default.isExecutableFile(atPath: Self.redis), "run Scripts/setup.sh: it installs redis-server")
        let v = try VigilUnderTest("""
        name: t
        children:
          - worker: redis
            argv: [\(Self.redis), --supervised, systemd, --port, "0", --unixsocket, redis.sock,
                   --save, "", --appendonly, "no", --dir, ., --loglevel, warning]
            working_directory: .
            readiness: notify
            ready_timeout: 10s
        """)
        let s0 = v.waitFor("redis READY via sd_notify") { $0["redis"]?.state == "ready" }
        #expect(v.events().contains { $0.contains(" ready ") && $0.contains("redis") })
        kill(s0["redis"]!.pid!, SIGKILL)
        let s1 = v.waitFor("redis resurrected") { $0["redis"]?.state == "ready" && $0["redis"]?.pid != s0["redis"]?.pid }
        #expect(s1["redis"]?.restarts == 1)
        #expect(s1["redis"]?.lastExit == "signal SIGKILL")
        #expect(v.interrupt() == 0)
        #expect(!processAlive(s1["redis"]!.pid!))
    }
}
