#if canImport(Glibc)
import Glibc
#endif
import CSystemd

/// A notification libsystemd could not deliver.
public struct SystemdNotifyError: Error, CustomStringConvertible, Sendable {
    /// errno as returned (negated) by `sd_notify`.
    public var errno: Int32
    /// The message that was not delivered.
    public var message: String

    /// The message sent (newlines shown as \n) and the errno text.
    public var description: String {
        "sd_notify(\(message.split(separator: "\n").joined(separator: "\\n"))) failed: \(String(cString: strerror(errno)))"
    }
}

/// vigil talking *up* to systemd (or to any supervisor speaking the sd_notify protocol,
/// including another vigil), through libsystemd's `sd_notify`.
///
/// Why: with `Type=notify` (or `notify-reload`) and `WatchdogSec=`, systemd knows when the
/// tree is really up, shows a one-line status, and restarts vigil if its event loop wedges.
/// When `NOTIFY_SOCKET` is unset every call is a cheap no-op, so vigil runs the same way
/// from a terminal.
///
/// The environment passed to `init` decides `isEnabled` and `watchdogInterval`; delivery
/// itself goes through `sd_notify`, which reads `NOTIFY_SOCKET` from the *process*
/// environment (never unset: `unset_environment` is 0, so children spawned later could
/// still see it; vigil gives children an explicit environment anyway). So pass a
/// different environment only to turn notifications off, not to redirect them.
///
/// Blocking: `sd_notify` sends one datagram on a fresh socket; it can only block if the
/// receiver's queue is full, which systemd's large notify queue makes a non-issue.
public struct SystemdNotifier: Sendable {
    /// The `NOTIFY_SOCKET` value notifications go to, nil when not supervised.
    public let notifySocket: String?

    /// How often to send `WATCHDOG=1`: half of `WATCHDOG_USEC` (as systemd advises, so one
    /// late tick does not kill us), nil when no watchdog is asked of this process.
    public let watchdogInterval: Duration?

    /// True when a supervisor listens (`NOTIFY_SOCKET` is set and non-empty).
    public var isEnabled: Bool { notifySocket != nil }

    /// Reads `NOTIFY_SOCKET`, `WATCHDOG_USEC` and `WATCHDOG_PID`.
    ///
    /// The watchdog applies when `WATCHDOG_USEC` is a positive integer and `WATCHDOG_PID`
    /// is unset or equals our pid (a watchdog meant for a parent is not ours). For the
    /// process environment (the default) this is `sd_watchdog_enabled(0, ...)`; for any
    /// other environment the same rule is applied in Swift.
    /// - Parameter environment: defaults to those three variables read with `getenv`.
    public init(environment: [String: String] = SystemdNotifier.processEnvironment()) {
        let socket = environment["NOTIFY_SOCKET"]
        notifySocket = (socket?.isEmpty ?? true) ? nil : socket
        let microseconds: UInt64?
        // Only the three variables matter: a full environment dictionary that agrees with
        // the process on them takes the libsystemd path.
        let relevant = environment.filter { Self.keys.contains($0.key) }
        if relevant == Self.processEnvironment() {
            var usec: UInt64 = 0
            microseconds = sd_watchdog_enabled(0, &usec) > 0 ? usec : nil
        } else {
            microseconds = Self.watchdogMicroseconds(environment, pid: getpid())
        }
        watchdogInterval = microseconds.map { .microseconds(Int64(clamping: $0 / 2)) }
    }

    /// The variables this type reads, from the process environment via `getenv`
    /// (no Foundation, no ProcessInfo).
    public static func processEnvironment() -> [String: String] {
        var env: [String: String] = [:]
        for key in keys {
            if let v = getenv(key) { env[key] = String(cString: v) }
        }
        return env
    }

    /// `READY=1` plus a status line: the tree is up. systemd finishes `systemctl start`
    /// and starts units ordered after vigil.
    @discardableResult
    public func ready(status: String) throws(SystemdNotifyError) -> Bool {
        try send("READY=1\nSTATUS=\(Self.oneLine(status))")
    }

    /// `STATUS=` with a one-line tree summary, shown by `systemctl status`.
    @discardableResult
    public func status(_ text: String) throws(SystemdNotifyError) -> Bool {
        try send("STATUS=\(Self.oneLine(text))")
    }

    /// `STOPPING=1`: vigil is taking the tree down on request, so systemd does not treat
    /// the coming exit as a crash in progress.
    @discardableResult
    public func stopping() throws(SystemdNotifyError) -> Bool {
        try send("STOPPING=1")
    }

    /// `RELOADING=1` with `MONOTONIC_USEC=` (required by `Type=notify-reload`): a topology
    /// reload began. Send `ready(status:)` when it is done.
    /// - Parameter monotonicMicros: CLOCK_MONOTONIC now, in microseconds.
    @discardableResult
    public func reloading(monotonicMicros: UInt64) throws(SystemdNotifyError) -> Bool {
        try send("RELOADING=1\nMONOTONIC_USEC=\(monotonicMicros)")
    }

    /// `WATCHDOG=1`: the event loop is alive. Call it from the loop itself every
    /// `watchdogInterval`, so a wedged loop stops the pings and systemd restarts vigil.
    @discardableResult
    public func watchdog() throws(SystemdNotifyError) -> Bool {
        try send("WATCHDOG=1")
    }

    /// `FDSTORE=1` + `FDNAME=`: hands `fds` to systemd's descriptor store for vigil itself
    /// (`FileDescriptorStoreMax=` in the unit), so they come back as `LISTEN_FDS` when
    /// vigil is restarted. systemd duplicates them; the caller keeps its own.
    @discardableResult
    public func storeDescriptors(_ fds: [Int32], name: String) throws(SystemdNotifyError) -> Bool {
        guard isEnabled, !fds.isEmpty else { return false }
        let state = "FDSTORE=1\nFDNAME=\(name)"
        let rc = fds.withUnsafeBufferPointer { sd_pid_notify_with_fds(0, 0, state, $0.baseAddress, UInt32($0.count)) }
        if rc < 0 { throw SystemdNotifyError(errno: -rc, message: state) }
        return rc > 0
    }

    /// `FDSTOREREMOVE=1` + `FDNAME=`: systemd closes what it keeps under that name.
    @discardableResult
    public func removeStoredDescriptors(name: String) throws(SystemdNotifyError) -> Bool {
        try send("FDSTOREREMOVE=1\nFDNAME=\(name)")
    }

    /// The descriptors systemd passed to this process (`LISTEN_FDS` from fd 3, checked
    /// against `LISTEN_PID`), with their `LISTEN_FDNAMES`; the variables are unset so no
    /// child inherits them. Empty when none were passed.
    public static func receivedDescriptors() -> [(name: String, fd: Int32)] {
        var names: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?
        let n = sd_listen_fds_with_names(1, &names)
        guard n > 0 else { return [] }
        defer {
            for i in 0..<Int(n) { free(names?[i]) }
            free(names)
        }
        return (0..<Int(n)).map { i in
            (names?[i].map { String(cString: $0) } ?? "unknown", SD_LISTEN_FDS_START + Int32(i))
        }
    }

    /// Sends raw newline-separated `KEY=VALUE` assignments.
    /// - Returns: true when sent, false when not enabled (nothing to do).
    @discardableResult
    public func send(_ state: String) throws(SystemdNotifyError) -> Bool {
        guard isEnabled else { return false }
        let rc = sd_notify(0, state)
        if rc < 0 { throw SystemdNotifyError(errno: -rc, message: state) }
        return rc > 0
    }

    /// The variables the notifier reads.
    static let keys = ["NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"]

    /// A status is one line: newlines would start new assignments.
    static func oneLine(_ text: String) -> String {
        String(text.map { $0 == "\n" || $0 == "\r" ? " " : $0 })
    }

    /// sd_watchdog_enabled's rule over an explicit environment.
    static func watchdogMicroseconds(_ env: [String: String], pid: pid_t) -> UInt64? {
        guard let text = env["WATCHDOG_USEC"], let usec = UInt64(text), usec > 0 else { return nil }
        if let p = env["WATCHDOG_PID"] {
            guard let owner = Int32(p), owner > 0, owner == pid else { return nil }
        }
        return usec
    }
}
