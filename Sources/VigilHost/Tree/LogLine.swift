import CShim
import Glibc
import VigilCore

/// vigil's own log: one line per journal record, fixed columns then free text, so a person
/// reads it at a glance and `awk`/`grep` split it reliably:
///
///     19:40:01.123 spawned       db-watchdog          pid=4242 inc=1  incarnation 1
///
/// Written with one write(2) to stderr, never buffered, so lines from vigil and from its
/// children (which share stderr) do not interleave mid-line. `VigilLog` decides whether an
/// entry is such a line or a journald entry.
enum LogLine {
    static func format(_ r: Record, wallNanoseconds: Int64) -> String {
        clock(wallNanoseconds) + " " + body(r)
    }

    /// The line without its clock (journald's MESSAGE: the journal stamps its own time).
    static func body(_ r: Record) -> String {
        var line = pad(r.kind.rawValue, 13)
        line += " " + pad(r.node, 20)
        var fields = ""
        if let pid = r.pid { fields += "pid=\(pid) " }
        if let inc = r.incarnation { fields += "inc=\(inc) " }
        line += " " + pad(fields, 16)
        line += " " + r.detail
        while line.last == " " { line.removeLast() }
        return line
    }

    static func write(_ text: String) {
        var bytes = Array((text + "\n").utf8)
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeMutableBytes { Glibc.write(2, $0.baseAddress! + offset, $0.count - offset) }
            if n <= 0 { if errno == EINTR { continue }; return }
            offset += n
        }
    }

    /// HH:MM:SS.mmm in local time.
    static func clock(_ ns: Int64) -> String {
        var t = time_t(ns / 1_000_000_000)
        var tm = tm()
        localtime_r(&t, &tm)
        let ms = Int(ns / 1_000_000 % 1000)
        return "\(two(tm.tm_hour)):\(two(tm.tm_min)):\(two(tm.tm_sec)).\(ms < 10 ? "00" : ms < 100 ? "0" : "")\(ms)"
    }

    /// A full local timestamp, for `vigil events`.
    static func timestamp(_ ns: Int64) -> String {
        var t = time_t(ns / 1_000_000_000)
        var tm = tm()
        localtime_r(&t, &tm)
        return "\(tm.tm_year + 1900)-\(two(tm.tm_mon + 1))-\(two(tm.tm_mday)) " + clock(ns)
    }

    static func two(_ v: Int32) -> String { v < 10 ? "0\(v)" : "\(v)" }

    static func pad(_ s: String, _ width: Int) -> String {
        s.count >= width ? s : s + String(repeating: " ", count: width - s.count)
    }
}
