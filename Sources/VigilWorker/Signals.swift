@preconcurrency import Glibc
import Synchronization

// Stop signals and the self-pipe. A signal handler may only touch async-signal-safe state:
// two atomics and write(2). The pipe's read end becomes readable on the first SIGTERM or
// SIGINT and is never drained, so every later wait in the process returns at once.

/// Set by the first SIGTERM/SIGINT.
let stopRequested = Atomic<Bool>(false)
/// The signal that asked us to stop (0 when none did).
let stopSignalNumber = Atomic<Int32>(0)
/// Write end of the self-pipe, -1 until installed.
let wakeWriteFD = Atomic<Int32>(-1)
/// Read end of the self-pipe, -1 until installed.
let wakeReadFD = Atomic<Int32>(-1)

private let installOnce = Mutex<Bool>(false)

/// Creates the self-pipe and installs the handlers for SIGTERM and SIGINT (once per
/// process). SIGPIPE is ignored so a write to a closed socket is an EPIPE error, not death.
func installStopHandlers() {
    installOnce.withLock { installed in
        guard !installed else { return }
        installed = true
        var fds: [Int32] = [-1, -1]
        guard pipe(&fds) == 0 else { fatalError("pipe: \(String(cString: strerror(errno)))") }
        for fd in fds {
            _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
            _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
        }
        wakeReadFD.store(fds[0], ordering: .sequentiallyConsistent)
        wakeWriteFD.store(fds[1], ordering: .sequentiallyConsistent)
        _ = stopRequested.load(ordering: .relaxed)
        _ = stopSignalNumber.load(ordering: .relaxed)

        var action = sigaction()
        action.__sigaction_handler.sa_handler = { signal in
            let savedErrno = errno
            stopSignalNumber.store(signal, ordering: .relaxed)
            stopRequested.store(true, ordering: .sequentiallyConsistent)
            let fd = wakeWriteFD.load(ordering: .relaxed)
            if fd >= 0 {
                var byte: UInt8 = 1
                _ = write(fd, &byte, 1)
            }
            errno = savedErrno
        }
        action.sa_flags = SA_RESTART
        sigemptyset(&action.sa_mask)
        sigaddset(&action.sa_mask, SIGTERM)
        sigaddset(&action.sa_mask, SIGINT)
        sigaction(SIGTERM, &action, nil)
        sigaction(SIGINT, &action, nil)
        signal(SIGPIPE, SIG_IGN)
    }
}

/// Milliseconds for poll(2), rounded up so a short wait does not spin; -1 is "forever".
func pollMilliseconds(_ d: Duration) -> Int32 {
    let (s, atto) = d.components
    if s < 0 { return 0 }
    if s > Int64(Int32.max / 1000) - 1 { return Int32.max }
    let ms = s * 1000 + (atto + 999_999_999_999_999) / 1_000_000_000_000_000
    return Int32(ms)
}

extension Duration {
    /// Whole nanoseconds (saturating): for deadlines on `vigil_monotonic_ns()`.
    public var wholeNanoseconds: Int64 {
        let (s, atto) = components
        let (ns, o) = s.multipliedReportingOverflow(by: 1_000_000_000)
        if o { return s < 0 ? .min : .max }
        return ns.addingReportingOverflow(atto / 1_000_000_000).partialValue
    }
}
