/// Environment variables vigil sets for every child, the contract between the shell and
/// the worker SDK (or any program that wants to speak the native channel by hand).
public enum ChildEnvironment {
    /// The fd number of the worker's SOCK_SEQPACKET channel to vigil.
    public static let channelFD = "VIGIL_FD"
    /// The child's name in the tree (`strategy-runner.2`).
    public static let name = "VIGIL_NAME"
    /// How many times this child has been started, 1 for the first.
    public static let incarnation = "VIGIL_INCARNATION"
    /// The SDK's heartbeat period in milliseconds.
    public static let heartbeatMilliseconds = "VIGIL_HEARTBEAT_MS"
    /// vigil's runtime directory (sockets); workers put their own sockets here too.
    public static let runtimeDirectory = "VIGIL_RUNTIME_DIR"
    /// vigil's state directory (databases that outlive a run).
    public static let stateDirectory = "VIGIL_STATE_DIR"
    /// vigil's adoption socket (SOCK_SEQPACKET): where a worker whose channel closed (vigil
    /// died) connects to be taken back by the next vigil, sending `.adopt` first.
    public static let adoptSocket = "VIGIL_ADOPT_SOCKET"
    /// How long, in milliseconds, a worker whose channel closed waits for a new vigil
    /// before it exits; 0 (or unset): it exits at once, as it never outlives vigil.
    public static let adoptWindowMilliseconds = "VIGIL_ADOPT_MS"
}
