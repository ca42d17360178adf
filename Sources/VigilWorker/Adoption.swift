import CShim
@preconcurrency import Glibc

extension Worker {
    /// How often a worker whose vigil died tries the adoption socket: the next vigil is
    /// usually up within tens of milliseconds (systemd restarts it), and a connect to a
    /// socket nobody listens on costs microseconds.
    static let adoptionRetry: Duration = .milliseconds(10)

    /// Connects to the next vigil's adoption socket at `path` within `window`, says who
    /// this worker is, and makes the connection the channel (the frames kept meanwhile go
    /// first). nil when no vigil took it in time, or when a stop was requested meanwhile.
    ///
    /// The `.adopt` frame is a claim, not a proof: vigil checks the connecting pid
    /// (SO_PEERCRED) and its start time against its journal, and closes the connection
    /// (and kills the worker) if they do not match. A close before vigil took the channel
    /// (a vigil that died again, or refused) is met by trying again until the window ends.
    func awaitAdoption(at path: String, within window: Duration) -> Int32? {
        let deadline = vigil_monotonic_ns() + window.wholeNanoseconds
        while vigil_monotonic_ns() < deadline {
            if isStopping { return nil }
            let fd = vigil_seqpacket_connect(path)
            if fd >= 0 {
                if let hello = try? Frame.adopt(name: name, incarnation: UInt64(incarnation)).encoded(),
                   Worker.send(hello, on: fd, blocking: true), takeChannel(fd) {
                    log("adopted by a new vigil at \(path): channel restored")
                    return fd
                }
                close(fd)
            }
            // ENOENT, ECONNREFUSED: no vigil listens yet.
            _ = sleep(for: Worker.adoptionRetry)
        }
        return nil
    }
}
