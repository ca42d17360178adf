import CShim
import Glibc
import VigilCore

/// `vigil status`: the tree at a glance, or as JSON for scripts and tests.
struct StatusReport {
    struct Row {
        var status: NodeStatus
        var workerStatus: String?
    }

    let treeName: String
    let summary: String
    let vigilPID: Int32
    let uptime: Duration
    let rows: [Row]
    let now: Instant
    let safeMode: SafeModeState?

    init(host: TreeHost) {
        safeMode = host.tree.safeMode
        let t = host.now
        now = Instant(nanoseconds: t)
        treeName = host.configuration.topology.root.name
        summary = host.tree.summary()
        vigilPID = getpid()
        uptime = .nanoseconds(t - host.startedAt)
        rows = host.tree.status(at: now).map { s in
            var s = s
            // A forking daemon's PID is its main process (MAINPID=), as systemctl shows it.
            if let main = host.live[s.id]?.mainPID, host.live[s.id]?.pid == s.pid { s.pid = main }
            return Row(status: s, workerStatus: host.live[s.id]?.statusText)
        }
    }

    func text() -> String {
        var out = ""
        if let s = safeMode {
            out += "*** SAFE MODE\(s.liquidating ? ", LIQUIDATING" : "") since \(Self.age(now.duration(since: s.since))) ago, by \(s.by): \(s.reason)\n"
            out += "*** guarded children are not restarted; leave with: vigil safe-mode off\n\n"
        }
        out += "\(treeName): \(summary); vigil pid \(vigilPID), up \(Self.age(uptime))\n\n"
        let header = ["NAME", "STATE", "PID", "UPTIME", "RESTARTS", "LAST EXIT", "REASON", "WORKER STATUS"]
        var table: [[String]] = [header]
        for row in rows {
            let s = row.status
            let indent = String(repeating: "  ", count: s.depth)
            let name = indent + s.name + (s.strategy.map { " (\($0))" } ?? "")
            table.append([
                name, s.state, s.pid.map(String.init) ?? "-",
                s.startedAt.map { Self.age(now.duration(since: $0)) } ?? "-",
                s.isSupervisor && s.restarts == 0 ? "" : String(s.restarts),
                s.lastExit?.description ?? "-",
                Self.clip(s.lastReason ?? "-", 48),
                row.workerStatus.map { Self.clip($0, 90) } ?? "",
            ])
        }
        let widths = (0..<header.count).map { c in table.map { $0[c].count }.max() ?? 0 }
        for line in table {
            var text = ""
            for (c, cell) in line.enumerated() {
                text += c == line.count - 1 ? cell : cell + String(repeating: " ", count: widths[c] - cell.count + 2)
            }
            out += text + "\n"
        }
        return out
    }

    func json() -> String {
        var nodes: [String] = []
        for row in rows {
            let s = row.status
            var fields = [
                "\"name\":\(JSON.string(s.name))",
                "\"depth\":\(s.depth)",
                "\"supervisor\":\(s.isSupervisor)",
                "\"state\":\(JSON.string(s.state))",
                "\"pid\":\(s.pid.map(String.init) ?? "null")",
                "\"incarnation\":\(s.incarnation)",
                "\"restarts\":\(s.restarts)",
                "\"uptime_ms\":\(s.startedAt.map { String(Int(now.duration(since: $0).milliseconds)) } ?? "null")",
                "\"last_exit\":\(s.lastExit.map { JSON.string($0.description) } ?? "null")",
                "\"reason\":\(s.lastReason.map(JSON.string) ?? "null")",
            ]
            if let strategy = s.strategy { fields.append("\"strategy\":\(JSON.string(strategy))") }
            if let w = row.workerStatus { fields.append("\"status\":\(JSON.string(w))") }
            nodes.append("{" + fields.joined(separator: ",") + "}")
        }
        let safe = safeMode.map { "{\"reason\":\(JSON.string($0.reason)),\"by\":\(JSON.string($0.by)),\"liquidating\":\($0.liquidating)}" } ?? "null"
        return "{\"tree\":\(JSON.string(treeName)),\"vigil_pid\":\(vigilPID),\"summary\":\(JSON.string(summary)),\"safe_mode\":\(safe),\"nodes\":[\n"
            + nodes.joined(separator: ",\n") + "\n]}\n"
    }

    static func clip(_ s: String, _ width: Int) -> String {
        s.count <= width ? s : String(s.prefix(width - 1)) + "…"
    }

    /// `3d4h`, `2h13m`, `4m2s`, `12.3s`, `450ms`.
    static func age(_ d: Duration) -> String {
        let ms = Int64(d.milliseconds)
        if ms < 1000 { return "\(ms)ms" }
        let s = ms / 1000
        if s < 60 { return "\(s).\(ms % 1000 / 100)s" }
        if s < 3600 { return "\(s / 60)m\(s % 60)s" }
        if s < 86400 { return "\(s / 3600)h\(s % 3600 / 60)m" }
        return "\(s / 86400)d\(s % 86400 / 3600)h"
    }
}

/// `vigil events`: journal lines, oldest first.
public enum EventsReport {
    public static func text(_ events: [JournalEvent]) -> String {
        var out = ""
        for e in events {
            var fields = ""
            if let pid = e.pid { fields += "pid=\(pid) " }
            if let inc = e.incarnation { fields += "inc=\(inc) " }
            out += LogLine.timestamp(e.wallNanoseconds) + " " + LogLine.pad(e.kind, 13) + " "
                + LogLine.pad(e.node, 20) + " " + LogLine.pad(fields, 16) + " " + e.detail + "\n"
        }
        return out
    }
}

/// Minimal JSON string escaping (vigil keeps Foundation out of its hot paths).
enum JSON {
    static func string(_ s: String) -> String {
        var out = "\""
        for u in s.unicodeScalars {
            switch u {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where u.value < 0x20: out += "\\u00" + (u.value < 16 ? "0" : "") + String(u.value, radix: 16)
            default: out.unicodeScalars.append(u)
            }
        }
        return out + "\""
    }
}
