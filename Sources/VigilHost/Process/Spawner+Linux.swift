import CShim
import Glibc
import VigilCore
import VigilWire

/// A spawned child process: its pid (also its process group id) and vigil's end of its
/// private channel.
public struct SpawnedChild: Sendable {
    public var pid: Int32
    public var channel: Int32
    /// vigil's (non-blocking) end of the pipe the child's stdout and stderr go to.
    public var output: Int32
}

/// Spawns workers with posix_spawn (vfork+exec, no fork of vigil's address space): each in
/// its own session and process group (as systemd starts a service), empty signal mask, default dispositions, stdin on /dev/null,
/// stdout and stderr into one pipe vigil reads (ChildLogs), and one end of a fresh SOCK_SEQPACKET socketpair at fd 3
/// (announced in VIGIL_FD). Every other descriptor is closed in the child.
///
/// A child with descriptors in vigil's store gets them the systemd way: at fds 3 ... 3+n-1
/// with `LISTEN_FDS=n`, `LISTEN_FDNAMES` and `LISTEN_PID`, its channel after them. Since
/// `LISTEN_PID` is the child's own pid, that path forks (`vigil_spawn_listen`).
public struct Spawner {
    /// vigil's own environment minus what belongs to vigil's supervisor: a child must not
    /// talk to systemd behind vigil's back or think it received vigil's sockets.
    let baseEnvironment: [String: String]
    let runtimeDirectory: String
    let stateDirectory: String
    var heartbeat: Duration
    /// vigil's sd_notify socket, every child's `NOTIFY_SOCKET`.
    let notifySocket: String
    /// How long children outlive a vigil that died (`adopt_window`), and where they find
    /// the next one; zero: they die with vigil.
    var adoptWindow: Duration
    let adoptSocket: String

    static let inheritedOnlyByVigil: Set<String> = [
        "NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES",
        ChildEnvironment.channelFD, ChildEnvironment.name, ChildEnvironment.incarnation,
        ChildEnvironment.adoptSocket, ChildEnvironment.adoptWindowMilliseconds,
    ]

    public init(environment: [String: String], runtimeDirectory: String, stateDirectory: String,
                heartbeat: Duration, notifySocket: String, adoptWindow: Duration = .zero, adoptSocket: String = "") {
        baseEnvironment = environment.filter { !Spawner.inheritedOnlyByVigil.contains($0.key) }
        self.runtimeDirectory = runtimeDirectory
        self.stateDirectory = stateDirectory
        self.heartbeat = heartbeat
        self.notifySocket = notifySocket
        self.adoptWindow = adoptWindow
        self.adoptSocket = adoptSocket
    }

    /// The environment a child gets: vigil's, then the spec's, then the channel contract.
    func environment(for spec: WorkerSpec, name: String, incarnation: UInt64, listening: [String] = [],
                     notifySocket own: String? = nil) -> [String] {
        var env = baseEnvironment
        for (k, v) in spec.env { env[k] = v }
        env["NOTIFY_SOCKET"] = own ?? notifySocket
        if !listening.isEmpty {
            env["LISTEN_FDS"] = String(listening.count)
            env["LISTEN_FDNAMES"] = listening.joined(separator: ":")
            env["LISTEN_PID"] = Spawner.listenPIDPlaceholder
        }
        env[ChildEnvironment.channelFD] = String(3 + listening.count)
        env[ChildEnvironment.name] = name
        env[ChildEnvironment.incarnation] = String(incarnation)
        env[ChildEnvironment.heartbeatMilliseconds] = String(Int(heartbeat.milliseconds))
        env[ChildEnvironment.runtimeDirectory] = runtimeDirectory
        env[ChildEnvironment.stateDirectory] = stateDirectory
        if adoptWindow > .zero && !adoptSocket.isEmpty {
            env[ChildEnvironment.adoptSocket] = adoptSocket
            env[ChildEnvironment.adoptWindowMilliseconds] = String(Int(adoptWindow.milliseconds))
        }
        return env.map { "\($0.key)=\($0.value)" }
    }

    /// Room for "LISTEN_PID=<pid>", which the forked child writes over this in place.
    static let listenPIDPlaceholder = String(repeating: "0", count: 21)

    /// Spawns one incarnation of `spec`, handing it `listening` (name, descriptor) from
    /// fd 3 on. Throws the errno of a failed socketpair or exec.
    public func spawn(_ spec: WorkerSpec, name: String, incarnation: UInt64,
                      listening: [(name: String, fd: Int32)] = [], notifySocket own: String? = nil) throws(SystemError) -> SpawnedChild {
        var pair: [Int32] = [-1, -1]
        let rc = pair.withUnsafeMutableBufferPointer { vigil_seqpacket_pair($0.baseAddress) }
        guard rc == 0 else { throw SystemError("socketpair", errno: -rc) }
        // Sources of the descriptors handed over must sit above their targets (3, 4, ...),
        // or a dup2 would overwrite one, or keep its CLOEXEC flag (dup2 onto itself).
        let floor = 3 + Int32(listening.count) + 2
        let childEnd = vigil_move_fd_above(pair[1], floor)
        let parentEnd = pair[0]
        defer { close(childEnd) }
        var out: [Int32] = [-1, -1]
        let prc = out.withUnsafeMutableBufferPointer { vigil_output_pipe($0.baseAddress) }
        guard prc == 0 else {
            close(parentEnd)
            throw SystemError("pipe", errno: -prc)
        }
        defer { close(out[1]) }
        let keeper = adoptWindow > .zero ? vigil_dup_above(out[0], floor) : -1
        defer { if keeper >= 0 { close(keeper) } }

        let env = environment(for: spec, name: name, incarnation: incarnation, listening: listening.map(\.name), notifySocket: own)
        let listenSlot = env.firstIndex(of: "LISTEN_PID=" + Spawner.listenPIDPlaceholder)
        var pid: pid_t = 0
        let result = withCStrings(spec.argv) { argv in
            withCStrings(env) { envp in
                // A child that may outlive vigil also holds a read end of its own output pipe,
                // which it never reads: while no vigil does, its writes fill the pipe
                // instead of failing with EPIPE (or killing it with SIGPIPE), and the next
                // vigil reads what it wrote meanwhile (it opens the pipe via /proc).
                var inherit: [Int32] = listening.map(\.fd) + [childEnd] + (keeper >= 0 ? [keeper] : [])
                return inherit.withUnsafeMutableBufferPointer { fds in
                    if let listenSlot {
                        vigil_spawn_listen(argv[0], argv, envp, spec.workingDirectory, fds.baseAddress, Int32(fds.count),
                                           out[1], envp[listenSlot], &pid)
                    } else {
                        vigil_spawn(argv[0], argv, envp, spec.workingDirectory, fds.baseAddress, Int32(fds.count), out[1], &pid)
                    }
                }
            }
        }
        guard result == 0 else {
            close(parentEnd)
            close(out[0])
            throw SystemError("spawn \(spec.argv[0])", errno: result)
        }
        _ = vigil_set_nonblocking(parentEnd, 1)
        return SpawnedChild(pid: pid, channel: parentEnd, output: out[0])
    }
}

/// Calls `body` with a NULL-terminated C array of copies of `strings`.
func withCStrings<R>(_ strings: [String], _ body: (UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>) -> R) -> R {
    var pointers: [UnsafeMutablePointer<CChar>?] = strings.map { strdup($0) }
    pointers.append(nil)
    defer { for p in pointers { free(p) } }
    return pointers.withUnsafeMutableBufferPointer { body($0.baseAddress!) }
}
