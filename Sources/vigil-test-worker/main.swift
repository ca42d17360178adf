// vigil-test-worker: a worker that misbehaves on demand, for vigil's integration tests.
// It speaks the channel by hand (not through the SDK) so each fault is exact.
//
//   TW_READY_DELAY_MS=N   wait N ms before READY        TW_NO_READY=1   never say READY
//   TW_IGNORE_TERM=1      ignore SIGTERM                TW_FORK=1       fork a child that ignores SIGTERM
//   TW_EXIT_AFTER_MS=N    exit after N ms with TW_EXIT_CODE (default 1)
//   TW_GRACEFUL_CHILD=P   fork a child that, on SIGTERM, waits 300 ms, creates file P, exits
//   TW_ESCAPE=1           fork a child that calls setsid() (leaves the process group)
//   TW_CHECKPOINT=1       after READY, status "restored=<state>" and checkpoint "incarnation <n>"
//   TW_CHECKPOINT_BYTES=N after READY, also try a checkpoint of N bytes
//   TW_VERDICT=V          act as the guardian: answer restart requests with V (allow, deny,
//                         delay:MS, safe_mode, liquidate, silent) and status "asked=<count>"
//   TW_GARBAGE=1          send an invalid frame after READY
//   TW_FLOOD=1            send heartbeats as fast as possible after READY
//   TW_HANG_AFTER_MS=N    stop heartbeating N ms after start (still running: hung)
//   TW_TERM_LINES=N       on SIGTERM, write N lines "line <k>" to stdout, then "last words,
//                         no newline" without a newline, then exit 0
//   TW_FAIL_INCARNATION=N if this is incarnation N, exit 3 before READY (a handoff's incoming
//                         that does not start)
//   TW_TERM_CHECKPOINT=1  on SIGTERM, checkpoint "farewell from incarnation <n>", then exit 0
//   TW_MOVE_ON_MS=N       N ms after answering a checkpoint request, checkpoint "moved on from
//                         incarnation <n>" (state that changed after a handoff's checkpoint)
//
// It exits by itself when its channel to vigil closes, as every worker must.
import CShim
@preconcurrency import Glibc
import VigilWire

func env(_ key: String) -> String? { getenv(key).map { String(cString: $0) } }
func envInt(_ key: String) -> Int? { env(key).flatMap { Int($0) } }

guard let fdText = env(ChildEnvironment.channelFD), let channel = Int32(fdText) else {
    fputs("vigil-test-worker: no VIGIL_FD; run me under vigil\n", stderr)
    exit(2)
}

/// Writes to stdout unbuffered (so nothing waits in a buffer when the process exits).
func writeOut(_ text: String) {
    var bytes = Array(text.utf8)
    var offset = 0
    while offset < bytes.count {
        let n = bytes.withUnsafeMutableBytes { write(1, $0.baseAddress! + offset, $0.count - offset) }
        if n <= 0 { if errno == EINTR { continue }; return }
        offset += n
    }
}

func sendFrame(_ frame: Frame) {
    guard let bytes = try? frame.encoded() else { return }
    _ = bytes.withUnsafeBytes { send(channel, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
}

if let n = env("TW_FAIL_INCARNATION"), n == env(ChildEnvironment.incarnation) {
    fputs("vigil-test-worker: incarnation \(n) fails to start (TW_FAIL_INCARNATION)\n", stderr)
    exit(3)
}
if env("TW_IGNORE_TERM") != nil { signal(SIGTERM, SIG_IGN) }
// SIGTERM read from a signalfd in the poll loop, so the farewell checkpoint is sent in order.
var termSignals: [Int32] = [SIGTERM]
let termFD: Int32 = env("TW_TERM_CHECKPOINT") != nil || env("TW_TERM_LINES") != nil
    ? termSignals.withUnsafeMutableBufferPointer { vigil_signalfd_for($0.baseAddress, 1) } : -1
if env("TW_FORK") != nil {
    let child = fork()
    if child == 0 {
        signal(SIGTERM, SIG_IGN)
        close(channel)
        while true { pause() }
    }
}

if env("TW_ESCAPE") != nil, fork() == 0 {
    close(channel)
    setsid()
    while true { pause() }
}
if let marker = env("TW_GRACEFUL_CHILD") {
    // SIGTERM is blocked before the fork, so the child has it blocked from its first
    // instruction: a stop that comes right after READY cannot kill it before it waits.
    var set = sigset_t()
    sigemptyset(&set)
    sigaddset(&set, SIGTERM)
    sigprocmask(SIG_BLOCK, &set, nil)
    if fork() == 0 {
        close(channel)
        var received: Int32 = 0
        sigwait(&set, &received)
        usleep(300_000)
        close(open(marker, O_CREAT | O_WRONLY, 0o644))
        exit(0)
    }
    sigprocmask(SIG_UNBLOCK, &set, nil)
}

let start = vigil_monotonic_ns()
let heartbeatMs = envInt(ChildEnvironment.heartbeatMilliseconds) ?? 1000
let readyAt = start + Int64(envInt("TW_READY_DELAY_MS") ?? 0) * 1_000_000
let exitAt = envInt("TW_EXIT_AFTER_MS").map { start + Int64($0) * 1_000_000 }
let hangAt = envInt("TW_HANG_AFTER_MS").map { start + Int64($0) * 1_000_000 }
var ready = false
var nextBeat = start
var restored: [UInt8]?? = .none
var asked = 0
var moveOnAt: Int64?

/// Acts on one frame from vigil; the first is always `.restore`.
@MainActor func handle(_ frame: Frame) {
    switch frame {
    case .restore(let state):
        restored = .some(state)
    case .restartRequest(let request):
        asked += 1
        sendFrame(.status("asked=\(asked) last=\(request.child)"))
        let verdict: Verdict?
        switch env("TW_VERDICT") ?? "allow" {
        case "deny": verdict = .deny(reason: "test says no")
        case "safe_mode": verdict = .safeMode(reason: "test exposure")
        case "liquidate": verdict = .liquidate(reason: "test drawdown")
        case "silent": verdict = nil
        case let v where v.hasPrefix("delay:"): verdict = .delay(milliseconds: UInt32(v.dropFirst(6)) ?? 0, reason: "test delay")
        default: verdict = .allow
        }
        if let verdict { sendFrame(.verdict(requestID: request.id, verdict)) }
    case .checkpointRequest:
        sendFrame(.checkpoint(Array("handoff from incarnation \(env(ChildEnvironment.incarnation) ?? "?")".utf8)))
        if let ms = envInt("TW_MOVE_ON_MS") { moveOnAt = vigil_monotonic_ns() + Int64(ms) * 1_000_000 }
    default:
        break
    }
}

while true {
    let now = vigil_monotonic_ns()
    if let exitAt, now >= exitAt { exit(Int32(envInt("TW_EXIT_CODE") ?? 1)) }
    if let at = moveOnAt, now >= at {
        sendFrame(.checkpoint(Array("moved on from incarnation \(env(ChildEnvironment.incarnation) ?? "?")".utf8)))
        moveOnAt = nil
    }
    if !ready && env("TW_NO_READY") == nil && now >= readyAt && (env("TW_CHECKPOINT") == nil || restored != nil) {
        sendFrame(.ready)
        ready = true
        if env("TW_CHECKPOINT") != nil {
            let text = restored.flatMap { $0 }.map { String(decoding: $0, as: UTF8.self) } ?? "none"
            sendFrame(.status("restored=\(text)"))
            sendFrame(.checkpoint(Array("incarnation \(env(ChildEnvironment.incarnation) ?? "?")".utf8)))
        }
        if let n = envInt("TW_CHECKPOINT_BYTES") {
            sendFrame(.checkpoint([UInt8](repeating: 7, count: n)))
        }
        if env("TW_GARBAGE") != nil {
            var junk: [UInt8] = [0xFF, 0x00, 0x13]
            _ = junk.withUnsafeMutableBytes { send(channel, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        }
    }
    if ready && env("TW_FLOOD") != nil {
        for _ in 0..<10_000 { sendFrame(.heartbeat) }
        continue
    }
    if now >= nextBeat && (hangAt.map { now < $0 } ?? true) {
        sendFrame(.heartbeat)
        nextBeat = now + Int64(heartbeatMs) * 1_000_000
    }
    var wake = nextBeat
    if !ready && env("TW_NO_READY") == nil { wake = min(wake, readyAt) }
    if let exitAt { wake = min(wake, exitAt) }
    if let moveOnAt { wake = min(wake, moveOnAt) }
    var pfds = [pollfd(fd: channel, events: Int16(POLLIN), revents: 0), pollfd(fd: termFD, events: Int16(POLLIN), revents: 0)]
    let timeout = Int32(max(0, (wake - vigil_monotonic_ns()) / 1_000_000)) + 1
    if poll(&pfds, termFD >= 0 ? 2 : 1, timeout) > 0 {
        if termFD >= 0 && pfds[1].revents & Int16(POLLIN) != 0 {
            if let lines = envInt("TW_TERM_LINES") {
                // Last words: N lines to stdout, then one without a newline, then exit.
                for k in 0..<lines { writeOut("line \(k)\n") }
                writeOut("last words, no newline")
                exit(0)
            }
            sendFrame(.checkpoint(Array("farewell from incarnation \(env(ChildEnvironment.incarnation) ?? "?")".utf8)))
            exit(0)
        }
        guard pfds[0].revents != 0 else { continue }
        var buffer = [UInt8](repeating: 0, count: Frame.maximumSize)
        let n = buffer.withUnsafeMutableBytes { recv(channel, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
        if n == 0 || pfds[0].revents & Int16(POLLHUP) != 0 { exit(0) }  // vigil is gone
        if n > 0, let frame = try? Frame(decoding: buffer[0..<n]) { handle(frame) }
    }
}
