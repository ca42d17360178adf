import CShim
@preconcurrency import Glibc

// Small helpers: clocks, statistics, files, processes, /proc.

func wallNow() -> Int64 { vigil_realtime_ns() }
func monoNow() -> Int64 { vigil_monotonic_ns() }

func sleepNanoseconds(_ ns: Int64) {
    guard ns > 0 else { return }
    var ts = timespec(tv_sec: Int(ns / 1_000_000_000), tv_nsec: Int(ns % 1_000_000_000))
    var left = timespec()
    while nanosleep(&ts, &left) != 0 && errno == EINTR { ts = left }
}
func sleepMilliseconds(_ ms: Double) { sleepNanoseconds(Int64(ms * 1e6)) }

/// One progress line on stderr (the table goes to stdout).
func say(_ text: String) {
    let line = Array("[vigil-bench \(clockText())] \(text)\n".utf8)
    _ = line.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
}
func out(_ text: String) {
    let line = Array((text + "\n").utf8)
    _ = line.withUnsafeBytes { write(1, $0.baseAddress, $0.count) }
}
func clockText() -> String {
    var t = time(nil)
    var tm = tm()
    localtime_r(&t, &tm)
    return String(format2(Int(tm.tm_hour))) + ":" + format2(Int(tm.tm_min)) + ":" + format2(Int(tm.tm_sec))
}
func format2(_ n: Int) -> String { n < 10 ? "0\(n)" : "\(n)" }

/// Nearest-rank percentiles over nanosecond samples, as shared/bench computes them.
struct Percentiles {
    var count: Int
    var p50: Double, p90: Double, p99: Double, max: Double  // milliseconds
    init?(_ samples: [Int64]) {
        guard !samples.isEmpty else { return nil }
        let s = samples.sorted()
        func rank(_ q: Int) -> Double {
            let r = Swift.max(1, (q * s.count + 99) / 100)
            return Double(s[r - 1]) / 1e6
        }
        count = s.count
        p50 = rank(50); p90 = rank(90); p99 = rank(99); self.max = Double(s.last!) / 1e6
    }
}

/// A number for a table: milliseconds with 2 decimals below 100, else no decimals.
func ms(_ v: Double) -> String { v < 100 ? fixed(v, 2) : fixed(v, 0) }
func fixed(_ v: Double, _ digits: Int) -> String {
    guard v.isFinite else { return "-" }
    var scale = 1.0
    for _ in 0..<digits { scale *= 10 }
    let r = (abs(v) * scale).rounded()
    let whole = Int(r / scale)
    let frac = Int(r.truncatingRemainder(dividingBy: scale))
    var text = "\(whole)"
    if digits > 0 {
        var f = "\(frac)"
        while f.count < digits { f = "0" + f }
        text += "." + f
    }
    return (v < 0 && r != 0 ? "-" : "") + text
}
func thousands(_ n: Int) -> String {
    let s = String(n)
    var outText = ""
    for (i, c) in s.reversed().enumerated() {
        if i > 0 && i % 3 == 0 { outText.append(",") }
        outText.append(c)
    }
    return String(outText.reversed())
}

// MARK: Files

func readText(_ path: String, limit: Int = 1 << 24) -> String? {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    var bytes: [UInt8] = []
    var buf = [UInt8](repeating: 0, count: 65536)
    while bytes.count < limit {
        let n = buf.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if n < 0 && errno == EINTR { continue }
        if n <= 0 { break }
        bytes += buf[0..<n]
    }
    return String(decoding: bytes, as: UTF8.self)
}

@discardableResult
func writeText(_ path: String, _ text: String, mode: mode_t = 0o644) -> Bool {
    let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode)
    guard fd >= 0 else { return false }
    defer { close(fd) }
    let bytes = Array(text.utf8)
    var off = 0
    while off < bytes.count {
        let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + off, $0.count - off) }
        if n < 0 && errno == EINTR { continue }
        if n <= 0 { return false }
        off += n
    }
    return true
}

func makeDirectory(_ path: String) { _ = mkdir(path, 0o755) }

/// A fresh directory under `parent`.
func temporaryDirectory(in parent: String, prefix: String) -> String {
    var template = Array("\(parent)/\(prefix).XXXXXX".utf8CString)
    return template.withUnsafeMutableBufferPointer { p -> String in
        guard mkdtemp(p.baseAddress!) != nil else { fatal("mkdtemp in \(parent): \(String(cString: strerror(errno)))") }
        return String(cString: p.baseAddress!)
    }
}

func removeTree(_ path: String) {
    guard path.count > 8, path.contains("vigil-bench") else { return }
    _ = runShell("rm -rf '\(path)'")
}

func fatal(_ text: String) -> Never {
    say("error: \(text)")
    exit(1)
}

func isExecutable(_ path: String) -> Bool { access(path, X_OK) == 0 }

func dirname(_ path: String) -> String {
    guard let i = path.lastIndex(of: "/") else { return "." }
    return i == path.startIndex ? "/" : String(path[..<i])
}

func ownExecutable() -> String {
    var buf = [CChar](repeating: 0, count: 4096)
    let n = readlink("/proc/self/exe", &buf, buf.count - 1)
    guard n > 0 else { return CommandLine.arguments[0] }
    return String(decoding: buf[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
}

// MARK: Processes

/// Spawns `argv` in its own process group (vigil's own spawn primitive), stdin on
/// /dev/null, stdout and stderr appended to `output` (or /dev/null). `inherit` land at
/// fds 3, 4, ...
func spawn(_ argv: [String], environment: [String: String], output: String? = nil,
           inherit: [Int32] = []) -> Int32? {
    let outFD = open(output ?? "/dev/null", O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
    defer { if outFD >= 0 { close(outFD) } }
    let env = environment.map { "\($0.key)=\($0.value)" }
    var pid: pid_t = 0
    let rc = withCStrings(argv) { a in
        withCStrings(env) { e in
            var fds = inherit
            return fds.withUnsafeMutableBufferPointer { f in
                vigil_spawn(a[0], a, e, nil, f.baseAddress, Int32(f.count), outFD, &pid)
            }
        }
    }
    return rc == 0 ? pid : nil
}

func withCStrings<R>(_ strings: [String], _ body: (UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>) -> R) -> R {
    var pointers: [UnsafeMutablePointer<CChar>?] = strings.map { strdup($0) }
    pointers.append(nil)
    defer { for p in pointers { free(p) } }
    return pointers.withUnsafeMutableBufferPointer { body($0.baseAddress!) }
}

/// The environment of this process.
func processEnvironment() -> [String: String] {
    var env: [String: String] = [:]
    var p = environ
    while let entry = p.pointee {
        let s = String(cString: entry)
        if let eq = s.firstIndex(of: "=") { env[String(s[..<eq])] = String(s[s.index(after: eq)...]) }
        p += 1
    }
    return env
}

/// Waits for a child of ours; nil on timeout. Returns the raw wait status.
func waitChild(_ pid: Int32, timeoutSeconds: Double) -> Int32? {
    let deadline = monoNow() + Int64(timeoutSeconds * 1e9)
    var status: Int32 = 0
    while true {
        let r = waitpid(pid, &status, WNOHANG)
        if r == pid { return status }
        if r < 0 && errno != EINTR { return -1 }
        if monoNow() > deadline { return nil }
        sleepNanoseconds(200_000)
    }
}

/// Runs `command` with /bin/sh; returns its exit status and stdout (stderr to `stderr`,
/// a file, or ours). Output goes through a temporary file.
@discardableResult
func runShell(_ command: String, stderrPath: String? = nil, environment: [String: String]? = nil) -> (status: Int32, output: String) {
    let tmp = "/tmp/vigil-bench-sh.\(getpid()).\(monoNow())"
    let redirect = stderrPath.map { " 2>>'\($0)'" } ?? ""
    let full = "( \(command) ) >'\(tmp)'\(redirect)"
    var env = environment ?? processEnvironment()
    env["VIGIL_BENCH_SHELL"] = "1"
    let fd = open("/dev/null", O_RDONLY | O_CLOEXEC)
    defer { close(fd) }
    var pid: pid_t = 0
    let envList = env.map { "\($0.key)=\($0.value)" }
    let rc = withCStrings(["/bin/sh", "-c", full]) { a in
        withCStrings(envList) { e in posix_spawn(&pid, "/bin/sh", nil, nil, a, e) }
    }
    guard rc == 0 else { return (-1, "") }
    var status: Int32 = 0
    while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
    let text = readText(tmp) ?? ""
    unlink(tmp)
    let code: Int32 = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
    return (code, text)
}

func isAlive(_ pid: Int32) -> Bool { kill(pid, 0) == 0 || errno == EPERM }

/// CPU time of every thread of `pid` so far, in ns (schedstat), or nil if gone.
func cpuNanoseconds(_ pid: Int32) -> Int64? {
    // /proc/PID/stat utime+stime is in clock ticks (10 ms); schedstat is exact.
    guard let tasks = listDirectory("/proc/\(pid)/task") else { return nil }
    var sum: Int64 = 0
    for t in tasks {
        guard let s = readText("/proc/\(pid)/task/\(t)/schedstat"),
              let first = s.split(separator: " ").first, let v = Int64(first) else { continue }
        sum += v
    }
    return sum
}

/// A field of /proc/PID/status in kB (VmRSS, VmHWM, ...).
func statusKB(_ pid: Int32, _ field: String) -> Int? {
    guard let s = readText("/proc/\(pid)/status") else { return nil }
    for line in s.split(separator: "\n") where line.hasPrefix(field + ":") {
        return line.split(whereSeparator: { $0 == " " || $0 == "\t" }).dropFirst().first.flatMap { Int($0) }
    }
    return nil
}

/// Pss from /proc/PID/smaps_rollup in kB.
func pssKB(_ pid: Int32) -> Int? {
    guard let s = readText("/proc/\(pid)/smaps_rollup") else { return nil }
    for line in s.split(separator: "\n") where line.hasPrefix("Pss:") {
        return line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first.flatMap { Int($0) }
    }
    return nil
}

func listDirectory(_ path: String) -> [String]? {
    guard let d = opendir(path) else { return nil }
    defer { closedir(d) }
    var names: [String] = []
    while let e = readdir(d) {
        let name = withUnsafeBytes(of: e.pointee.d_name) { raw in
            String(cString: raw.baseAddress!.assumingMemoryBound(to: CChar.self))
        }
        if name != "." && name != ".." { names.append(name) }
    }
    return names
}

/// The executable of a live process, or nil.
func executable(of pid: Int32) -> String? {
    var buf = [CChar](repeating: 0, count: 4096)
    let n = readlink("/proc/\(pid)/exe", &buf, buf.count - 1)
    guard n > 0 else { return nil }
    return String(decoding: buf[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
}

/// Hypervisor steal since boot, ms (a noise flag).
func stealMilliseconds() -> Int {
    guard let s = readText("/proc/stat"), let line = s.split(separator: "\n").first else { return 0 }
    let f = line.split(separator: " ", omittingEmptySubsequences: true)
    guard f.count > 8, let v = Int(f[8]) else { return 0 }
    return v * 1000 / Int(sysconf(Int32(_SC_CLK_TCK)))
}

/// Pins `pid` (one thread) to the given CPUs.
func pin(_ pid: Int32, cpus: [Int]) {
    _ = runShell("taskset -a -p -c \(cpus.map(String.init).joined(separator: ",")) \(pid) >/dev/null 2>&1")
}
