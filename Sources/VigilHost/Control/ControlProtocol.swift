#if canImport(Glibc)
import Glibc
#endif

/// The operator control protocol, shared by `ControlServer` (inside vigil) and
/// `ControlClient` (the CLI).
///
/// One request per connection, so there is no framing state to get wrong and a client
/// cannot keep a slot on vigil's event loop:
///
///     client -> vigil:  words separated by spaces, one line, UTF-8, '\n'-terminated,
///                       at most `maxRequestBytes` bytes including the newline
///     vigil -> client:  "ok\n" or "error <one-line message>\n", then the body (any text),
///                       then vigil closes the connection
///
/// Examples: `status`, `status --json`, `stop db-watchdog`, `kill strategy-runner.2 KILL`,
/// `events 50`.
public enum ControlProtocol {
    /// Longest request line, newline included. Small, because a request is a few words
    /// and the server buffers it on the event loop.
    public static let maxRequestBytes = 4096
    /// Longest response the client accepts (64 MiB), so a confused peer cannot exhaust it.
    public static let maxResponseBytes = 64 << 20

    /// The request line for `words`, or why they cannot be sent: a word may not be empty
    /// or contain whitespace (the server splits on spaces), and the line must fit.
    public static func encodeRequest(_ words: [String]) -> Result<[UInt8], ControlClientError> {
        guard !words.isEmpty else {
            return .failure(ControlClientError(code: .invalidRequest, message: "empty request"))
        }
        for w in words {
            if w.isEmpty || w.contains(where: { $0.isWhitespace }) {
                return .failure(ControlClientError(
                    code: .invalidRequest,
                    message: "request word \"\(w)\" is empty or contains whitespace"))
            }
        }
        let line = Array((words.joined(separator: " ") + "\n").utf8)
        guard line.count <= maxRequestBytes else {
            return .failure(ControlClientError(
                code: .invalidRequest,
                message: "request is \(line.count) bytes, over the \(maxRequestBytes)-byte limit"))
        }
        return .success(line)
    }

    /// Splits a request line (without its newline) into words, or says why it is refused.
    static func parseRequestLine(_ bytes: ArraySlice<UInt8>) -> Result<[String], RequestRefusal> {
        var line = bytes
        if line.last == UInt8(ascii: "\r") { line.removeLast() }
        guard let text = String(validating: line, as: UTF8.self) else {
            return .failure(RequestRefusal(message: "request is not valid UTF-8"))
        }
        let words = text.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
        guard !words.isEmpty else { return .failure(RequestRefusal(message: "empty request")) }
        return .success(words)
    }

    /// The response bytes: status line, then the body as is.
    static func encodeResponse(ok: Bool, message: String, body: String) -> [UInt8] {
        var head = ok ? "ok" : "error " + oneLine(message.isEmpty ? "failed" : message)
        head += "\n"
        return Array(head.utf8) + Array(body.utf8)
    }

    /// Parses what the server sent, or nil when the status line is malformed.
    static func decodeResponse(_ bytes: [UInt8]) -> ControlResponse? {
        guard let nl = bytes.firstIndex(of: UInt8(ascii: "\n")) else { return nil }
        let head = String(decoding: bytes[..<nl], as: UTF8.self)
        let body = String(decoding: bytes[(nl + 1)...], as: UTF8.self)
        if head == "ok" { return ControlResponse(ok: true, message: "", body: body) }
        if head.hasPrefix("error ") {
            return ControlResponse(ok: false, message: String(head.dropFirst(6)), body: body)
        }
        if head == "error" { return ControlResponse(ok: false, message: "", body: body) }
        return nil
    }

    /// Why the server refuses a request line; sent back as `error <message>`.
    struct RequestRefusal: Error { var message: String }

    static func oneLine(_ text: String) -> String {
        String(text.map { $0 == "\n" || $0 == "\r" ? " " : $0 })
    }
}

/// One parsed operator request, with who sent it (from SO_PEERCRED, so it cannot be
/// forged): vigil journals commands with the operator's uid and pid.
public struct ControlRequest: Hashable, Sendable {
    /// The request split on spaces; never empty.
    public var words: [String]
    /// Effective uid of the client (this user or root; others are refused before parsing).
    public var peerUID: uid_t
    /// Pid of the client process.
    public var peerPID: pid_t

    /// Builds a request (tests, and a loop that injects commands).
    public init(words: [String], peerUID: uid_t, peerPID: pid_t) {
        self.words = words
        self.peerUID = peerUID
        self.peerPID = peerPID
    }

    /// The first word: `status`, `stop`, `kill`, ...
    public var command: String { words.first ?? "" }
    /// The words after the command.
    public var arguments: ArraySlice<String> { words.dropFirst() }
}

/// What vigil answered.
public struct ControlResponse: Hashable, Sendable {
    /// True for `ok`, false for `error ...`.
    public var ok: Bool
    /// The one-line error message; empty when `ok`.
    public var message: String
    /// Everything after the status line.
    public var body: String

    /// Builds a response as decoded by the client.
    public init(ok: Bool, message: String, body: String) {
        self.ok = ok
        self.message = message
        self.body = body
    }
}

/// sockaddr_un plumbing shared by the control server, client and tests.
enum ControlSocketAddress {
    /// Largest path that fits `sun_path` with its terminating NUL.
    static let maxPathBytes = MemoryLayout<sockaddr_un>.size - MemoryLayout<sa_family_t>.size - 1

    /// Calls `body` with the address of the filesystem socket `path`; nil if too long.
    static func with<R>(_ path: String, _ body: (UnsafePointer<sockaddr>, socklen_t) -> R) -> R? {
        let bytes = Array(path.utf8)
        guard !bytes.isEmpty, bytes.count <= maxPathBytes, !bytes.contains(0) else { return nil }
        var sa = sockaddr_un()
        sa.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &sa.sun_path) { raw in
            for (i, b) in bytes.enumerated() { raw[i] = b }
        }
        let length = socklen_t(MemoryLayout<sa_family_t>.size + bytes.count + 1)
        return withUnsafePointer(to: &sa) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, length) }
        }
    }
}
