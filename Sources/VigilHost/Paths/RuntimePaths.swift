#if canImport(Glibc)
import Glibc
#endif

/// Why the runtime or state directory could not be made ready.
public struct RuntimePathsError: Error, CustomStringConvertible, Sendable {
    /// The directory (or path component) at fault.
    public var path: String
    /// One sentence saying what is wrong and, where it helps, what to do.
    public var message: String

    /// `path: message`.
    public var description: String { "\(path): \(message)" }
}

/// Where vigil keeps its live sockets and its durable journal.
///
/// Two directories, because their lifetimes differ: the runtime directory holds things that
/// are meaningless after a reboot (the control socket) and lives on tmpfs; the state
/// directory holds the SQLite journal, which must survive reboots and vigil restarts.
/// Resolution follows the XDG base-directory spec for users and the FHS for root, so the
/// CLI and a running vigil agree on the paths without configuration.
public struct RuntimePaths: Equatable, Sendable, CustomStringConvertible {
    /// Volatile per-boot directory (control socket, lock file).
    public var runtimeDirectory: String
    /// Durable directory (journal database).
    public var stateDirectory: String

    /// Builds paths from two explicit directories (tests, `--runtime-dir` style flags).
    public init(runtimeDirectory: String, stateDirectory: String) {
        self.runtimeDirectory = runtimeDirectory
        self.stateDirectory = stateDirectory
    }

    /// The Unix stream socket the operator CLI talks to: `runtime/control.sock`.
    public var controlSocket: String { Self.join(runtimeDirectory, "control.sock") }
    /// Where each child's stdout and stderr are kept (`<child>.log`, rotated).
    public var logDirectory: String { Self.join(runtimeDirectory, "logs") }
    /// Where children send sd_notify datagrams (their `NOTIFY_SOCKET`).
    public var notifySocket: String { Self.join(runtimeDirectory, "notify.sock") }
    /// Where workers that outlived a vigil ask the next one to take them back.
    public var adoptSocket: String { Self.join(runtimeDirectory, "adopt.sock") }

    /// The SQLite journal: `state/journal.db`.
    public var journal: String { Self.join(stateDirectory, "journal.db") }

    /// Both directories, for logs and `vigil status`.
    public var description: String { "runtime \(runtimeDirectory), state \(stateDirectory)" }

    /// Resolves the directories for the current process.
    ///
    /// Order: `VIGIL_RUNTIME_DIR` / `VIGIL_STATE_DIR` win (each on its own); else as root
    /// `/run/vigil` and `/var/lib/vigil`; else `$XDG_RUNTIME_DIR/vigil` (or `/tmp/vigil-UID`)
    /// and `$XDG_STATE_HOME/vigil` (or `$HOME/.local/state/vigil`, `HOME` falling back to
    /// the passwd entry). Empty or relative XDG values are ignored, as the XDG spec demands.
    /// - Parameters:
    ///   - environment: the variables to consult; defaults to the process environment read
    ///     with `getenv` (no Foundation).
    ///   - effectiveUID: decides the root layout; defaults to `geteuid()`.
    public static func resolve(environment: [String: String] = RuntimePaths.processEnvironment(),
                               effectiveUID: uid_t = geteuid()) -> RuntimePaths {
        func absolute(_ key: String) -> String? {
            guard let v = environment[key], v.hasPrefix("/") else { return nil }
            return trimmed(v)
        }
        let runtime: String
        let state: String
        if effectiveUID == 0 {
            runtime = absolute("VIGIL_RUNTIME_DIR") ?? "/run/vigil"
            state = absolute("VIGIL_STATE_DIR") ?? "/var/lib/vigil"
        } else {
            if let r = absolute("VIGIL_RUNTIME_DIR") {
                runtime = r
            } else if let xdg = absolute("XDG_RUNTIME_DIR") {
                runtime = join(xdg, "vigil")
            } else {
                runtime = "/tmp/vigil-\(effectiveUID)"
            }
            if let s = absolute("VIGIL_STATE_DIR") {
                state = s
            } else if let xdg = absolute("XDG_STATE_HOME") {
                state = join(xdg, "vigil")
            } else if let home = absolute("HOME") ?? passwdHome(effectiveUID) {
                state = join(join(home, ".local/state"), "vigil")
            } else {
                // No home at all (a system user): keep state next to the runtime directory
                // rather than fail; it is at least private to this uid.
                state = "/tmp/vigil-\(effectiveUID)-state"
            }
        }
        return RuntimePaths(runtimeDirectory: runtime, stateDirectory: state)
    }

    /// The variables `resolve` reads, taken from the process environment with `getenv`.
    public static func processEnvironment() -> [String: String] {
        var env: [String: String] = [:]
        for key in ["VIGIL_RUNTIME_DIR", "VIGIL_STATE_DIR", "XDG_RUNTIME_DIR", "XDG_STATE_HOME", "HOME"] {
            if let v = getenv(key) { env[key] = String(cString: v) }
        }
        return env
    }

    /// Creates both directories (and missing parents) with mode 0700, and checks that each
    /// is a directory owned by this user (or root), tightening its mode to 0700 if it is
    /// ours (unless it is a sticky shared directory such as `/tmp`).
    ///
    /// Why the ownership check: a fallback like `/tmp/vigil-UID` sits in a world-writable
    /// directory, so another user could have created it first to capture the control
    /// socket or the journal.
    public func prepare() throws(RuntimePathsError) {
        try Self.ensurePrivateDirectory(runtimeDirectory)
        try Self.ensurePrivateDirectory(stateDirectory)
    }

    // MARK: - Helpers (internal so Journal and ControlServer can share them)

    static func join(_ a: String, _ b: String) -> String {
        a.hasSuffix("/") ? a + b : a + "/" + b
    }

    static func parent(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        if slash == path.startIndex { return "/" }
        return String(path[..<slash])
    }

    static func errnoText(_ e: Int32) -> String { String(cString: strerror(e)) }

    private static func trimmed(_ path: String) -> String {
        var p = path
        while p.count > 1 && p.hasSuffix("/") { p.removeLast() }
        return p
    }

    private static func passwdHome(_ uid: uid_t) -> String? {
        var pwd = passwd()
        var result: UnsafeMutablePointer<passwd>? = nil
        var buffer = [CChar](repeating: 0, count: 4096)
        let rc = getpwuid_r(uid, &pwd, &buffer, buffer.count, &result)
        guard rc == 0, result != nil, let dir = pwd.pw_dir else { return nil }
        let home = String(cString: dir)
        return home.hasPrefix("/") ? home : nil
    }

    /// `mkdir -p` with mode 0700 for every component it creates. Existing components are
    /// left as they are (they may be `/run` or `$HOME`).
    static func makeDirectories(_ path: String) throws(RuntimePathsError) {
        var st = stat()
        if stat(path, &st) == 0 {
            if st.st_mode & 0o170000 != 0o040000 {
                throw RuntimePathsError(path: path, message: "exists and is not a directory")
            }
            return
        }
        let p = parent(of: path)
        if p != path && p != "/" && p != "." { try makeDirectories(p) }
        if mkdir(path, 0o700) != 0 && errno != EEXIST {
            let e = errno
            throw RuntimePathsError(path: path, message: "cannot create directory: \(errnoText(e))")
        }
    }

    /// Makes `path` exist as a directory owned by the effective user (or root) with no
    /// group or other access.
    static func ensurePrivateDirectory(_ path: String) throws(RuntimePathsError) {
        try makeDirectories(path)
        var st = stat()
        guard stat(path, &st) == 0 else {
            let e = errno
            throw RuntimePathsError(path: path, message: "cannot stat: \(errnoText(e))")
        }
        let me = geteuid()
        guard st.st_uid == me || st.st_uid == 0 else {
            throw RuntimePathsError(
                path: path,
                message: "owned by uid \(st.st_uid), not by this user (uid \(me)); refusing to use it")
        }
        // A sticky world-writable directory (`/tmp`) named explicitly is shared by design:
        // leave its mode alone.
        if st.st_uid == me && st.st_mode & 0o077 != 0 && st.st_mode & 0o1000 == 0 {
            if chmod(path, 0o700) != 0 {
                let e = errno
                throw RuntimePathsError(path: path, message: "cannot chmod 0700: \(errnoText(e))")
            }
        }
    }
}
