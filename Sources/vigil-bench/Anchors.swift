@preconcurrency import Glibc

/// One latency run of a shared/bench anchor script (or Benchmarks/anchors/vigil.sh, the
/// same frame and worker): kill -9 -> the replacement's own stamp at the top of main().
struct AnchorRow {
    var name: String
    var gap: String
    var values: [String: String] = [:]
    var error: String?
    var version = ""
    func number(_ key: String) -> Double? { values[key].flatMap { Double($0) } }
}

func anchorScript(_ name: String, layout: Layout) -> String {
    name == "vigil" ? layout.repository + "/Benchmarks/anchors/vigil.sh" : layout.sharedBench + "/anchors/\(name).sh"
}

func anchorEnvironment(layout: Layout, out: String) -> [String: String] {
    var env = processEnvironment()
    env["VIGIL"] = layout.vigil
    env["SHARED_BENCH"] = layout.sharedBench
    env["BENCH_OUT"] = out
    env.removeValue(forKey: "VIGIL_BACKOFF")
    env.removeValue(forKey: "NOTIFY_SOCKET")
    return env
}

/// The setup step: each anchor's own --install (apt-get / a PyPI venv, as shared/bench does).
/// Returns the anchors that are available.
func installAnchors(_ names: [String], layout: Layout, out: String) -> [String: String] {
    var versions: [String: String] = [:]
    let env = anchorEnvironment(layout: layout, out: out)
    for name in names {
        let script = anchorScript(name, layout: layout)
        guard isExecutable(script) else { say("anchor \(name): no script \(script)"); continue }
        let r = runShell("timeout 900 '\(script)' --install", stderrPath: out + "/\(name).install.log", environment: env)
        if r.status != 0 { say("anchor \(name): unavailable (install rc \(r.status), see \(out)/\(name).install.log)"); continue }
        let v = runShell("timeout 60 '\(script)' --version", stderrPath: "/dev/null", environment: env)
        versions[name] = v.output.split(separator: "\n").joined(separator: " ")
    }
    return versions
}

func runAnchors(_ names: [String], gaps: [String], n: Int, layout: Layout, out: String, versions: [String: String]) -> [AnchorRow] {
    var rows: [AnchorRow] = []
    let env = anchorEnvironment(layout: layout, out: out)
    for gap in gaps {
        for name in names {
            var row = AnchorRow(name: name, gap: gap)
            guard let v = versions[name] else {
                row.error = "unavailable"
                rows.append(row)
                continue
            }
            row.version = v
            let jitter = gap == "0" ? "0" : "0.1"
            let g = Double(gap) ?? 0
            let limit = 120 + Int(Double(n + 1) * (g + 0.1 + 3))
            say("anchor \(name): \(n) kills, gap \(gap) s")
            let script = anchorScript(name, layout: layout)
            let r = runShell("BENCH_GAP=\(gap) BENCH_JITTER=\(jitter) timeout -k 20 \(limit) '\(script)' \(n)",
                             stderrPath: out + "/\(name).log", environment: env)
            let summary = readText(out + "/\(name).gap\(gap).summary") ?? ""
            for line in summary.split(separator: "\n") {
                guard let eq = line.firstIndex(of: "=") else { continue }
                row.values[String(line[..<eq])] = String(line[line.index(after: eq)...])
            }
            if r.status != 0 || row.values["lat_p50"] == nil { row.error = "failed (rc \(r.status), see \(out)/\(name).log)" }
            say("anchor \(name) gap \(gap): \(r.output.trimmed())")
            rows.append(row)
        }
    }
    return rows
}

extension String {
    /// Without leading and trailing newlines and spaces.
    func trimmed() -> String {
        var s = Substring(self)
        while s.last == "\n" || s.last == " " { s.removeLast() }
        while s.first == "\n" || s.first == " " { s.removeFirst() }
        return String(s)
    }
}
