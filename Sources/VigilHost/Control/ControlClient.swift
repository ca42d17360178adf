#if canImport(Glibc)
import Glibc
#endif
import CShim
import VigilCore

/// Why the CLI could not get an answer from vigil. Messages are written for an operator
/// and say what to do.
public struct ControlClientError: Error, CustomStringConvertible, Sendable {
    /// The kind of failure, for exit codes and scripts.
    public enum Code: Sendable, Equatable {
        /// No socket file: vigil is not running with this runtime directory.
        case notRunning
        /// A socket file, but nothing listens (vigil died without cleaning up).
        case staleSocket
        /// The socket exists but this user may not use it.
        case permissionDenied
        /// vigil did not answer in time.
        case timeout
        /// The request cannot be sent (empty, whitespace in a word, too long).
        case invalidRequest
        /// vigil's answer was malformed or too large.
        case protocolError
        /// Any other system error.
        case io
    }

    /// What kind of failure.
    public var code: Code
    /// One sentence saying what is wrong and what to do.
    public var message: String

    /// Builds an error (the server-side encoder uses it for refused requests too).
    public init(code: Code, message: String) {
        self.code = code
        self.message = message
    }

    /// The operator-facing message.
    public var description: String { message }
}

/// The CLI side of the control socket: one blocking request/response exchange, bounded by
/// a timeout. Blocking is fine here (the CLI does nothing else); vigil's side never blocks.
public enum ControlClient {
    /// Sends `words` as one request line and returns vigil's answer (an `error` answer is
    /// a `ControlResponse` with `ok == false`, not a thrown error).
    /// - Throws: `ControlClientError` when there is no answer: not running, stale socket,
    ///   permission, timeout, malformed response, or an invalid request.
    public static func send(_ words: [String], to path: String, timeout: Duration) throws(ControlClientError) -> ControlResponse {
        let request: [UInt8]
        switch ControlProtocol.encodeRequest(words) {
        case .success(let r): request = r
        case .failure(let e): throw e
        }
        let deadline = vigil_monotonic_ns() &+ max(0, timeout.nanoseconds)

        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        guard fd >= 0 else { throw io("socket", errno) }
        defer { close(fd) }

        // Connect. A Unix socket connects at once or fails; EAGAIN (backlog full) retries.
        while true {
            guard let rc = ControlSocketAddress.with(path, { connect(fd, $0, $1) }) else {
                throw ControlClientError(code: .invalidRequest, message:
                    "control socket path \(path) is empty or longer than \(ControlSocketAddress.maxPathBytes) bytes")
            }
            if rc == 0 { break }
            let e = errno
            switch e {
            case EINTR: continue
            case EAGAIN:
                if vigil_monotonic_ns() >= deadline { throw timedOut(path, timeout) }
                usleep(5_000)
                continue
            case ENOENT:
                throw ControlClientError(code: .notRunning, message:
                    "vigil is not running (no control socket at \(path)); start one with `vigil up FILE`, or point at the running one with --runtime-dir")
            case ECONNREFUSED:
                throw ControlClientError(code: .staleSocket, message:
                    "vigil is not running (stale control socket at \(path): nothing is listening; the next `vigil up` replaces it)")
            case EACCES, EPERM:
                throw ControlClientError(code: .permissionDenied, message:
                    "permission denied on \(path): run as the user vigil runs as, or as root")
            default:
                throw io("cannot connect to \(path)", e)
            }
        }

        // Write the request line. vigil may answer and close before reading it all (a
        // refused peer, an oversize line): then the write fails but the answer is waiting.
        var sent = 0
        var sendError: Int32 = 0
        writing: while sent < request.count {
            try wait(fd, for: Int16(POLLOUT), until: deadline, path: path, timeout: timeout)
            let n = request.withUnsafeBytes {
                Glibc.send(fd, $0.baseAddress! + sent, $0.count - sent, Int32(MSG_NOSIGNAL))
            }
            if n < 0 {
                let e = errno
                if e == EINTR || e == EAGAIN { continue }
                if e == EPIPE || e == ECONNRESET { sendError = e; break writing }
                throw io("cannot send the request to \(path)", e)
            }
            sent += n
        }

        // Read until vigil closes.
        var response: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        reading: while true {
            try wait(fd, for: Int16(POLLIN), until: deadline, path: path, timeout: timeout)
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n < 0 {
                let e = errno
                if e == EINTR || e == EAGAIN { continue }
                // vigil closed with our bytes unread after answering: the answer is whole.
                if e == ECONNRESET && !response.isEmpty { break reading }
                throw io("cannot read the response from \(path)", sendError != 0 ? sendError : e)
            }
            if n == 0 { break }
            response.append(contentsOf: chunk[..<n])
            if response.count > ControlProtocol.maxResponseBytes {
                throw ControlClientError(code: .protocolError, message:
                    "response from \(path) is over \(ControlProtocol.maxResponseBytes) bytes; giving up")
            }
        }
        guard let parsed = ControlProtocol.decodeResponse(response) else {
            throw ControlClientError(code: .protocolError, message: response.isEmpty
                ? "vigil closed the connection without answering (\(path))"
                : "malformed response from \(path): the first line is neither 'ok' nor 'error ...'")
        }
        return parsed
    }

    private static func wait(_ fd: Int32, for events: Int16, until deadline: Int64,
                             path: String, timeout: Duration) throws(ControlClientError) {
        while true {
            let left = deadline - vigil_monotonic_ns()
            if left <= 0 { throw timedOut(path, timeout) }
            var p = pollfd(fd: fd, events: events, revents: 0)
            let ms = Int32(clamping: (left + 999_999) / 1_000_000)
            let rc = poll(&p, 1, ms)
            if rc > 0 { return }  // ready, or HUP/ERR: the next call reports it
            if rc < 0 && errno != EINTR { throw io("poll", errno) }
        }
    }

    private static func timedOut(_ path: String, _ timeout: Duration) -> ControlClientError {
        ControlClientError(code: .timeout, message:
            "vigil did not answer within \(timeout) on \(path); it may be busy or wedged")
    }

    private static func io(_ what: String, _ e: Int32) -> ControlClientError {
        ControlClientError(code: .io, message: "\(what): \(RuntimePaths.errnoText(e))")
    }
}
