// vigil-sim: one deterministic simulation run of the supervision core (see
// Sources/VigilSimulation). Prints progress and events/s; on a broken invariant prints the
// seed, the step and the invariant and exits 1, so the run can be repeated exactly.
#if canImport(Glibc)
import Glibc
#endif
import VigilSimulation

@main
enum VigilSim {
    static func main() {
        var seed: UInt64 = 1, events = 1_000_000, children = 10_000, every = 0, traceFrom = Int.max
        var args = CommandLine.arguments.dropFirst()
        func value(_ flag: String) -> String {
            guard let v = args.popFirst() else { fail("\(flag) needs a value") }
            return v
        }
        while let a = args.popFirst() {
            switch a {
            case "--seed": seed = UInt64(value(a)) ?? { fail("--seed: not a number") }()
            case "--events": events = Int(value(a).replacingUnderscores) ?? { fail("--events: not a number") }()
            case "--children": children = Int(value(a).replacingUnderscores) ?? { fail("--children: not a number") }()
            case "--progress": every = Int(value(a).replacingUnderscores) ?? { fail("--progress: not a number") }()
            case "--trace-from": traceFrom = Int(value(a).replacingUnderscores) ?? { fail("--trace-from: not a number") }()
            case "-h", "--help":
                print("usage: vigil-sim [--seed S] [--events N] [--children C] [--progress EVERY] [--trace-from STEP]")
                exit(0)
            default: fail("unknown argument \(a)")
            }
        }
        if every == 0 { every = max(events / 20, 1) }

        let setupStart = clock()
        var sim = Simulation(seed: seed, children: children, events: events)
        sim.traceFrom = traceFrom
        sim.trace = { say($0) }
        say("vigil-sim: seed \(seed), \(sim.nodeCount - 1) children, \(events) events (tree built in \(seconds(since: setupStart)))")
        let start = monotonic()
        do {
            try sim.run(progressEvery: every) { s in
                let t = monotonic() - start
                say("  \(s.events) events, \(Int(Double(s.events) / max(t, 1e-9))) events/s, \(s.spawns) spawns, \(s.restartDecisions) restart decisions, \(s.escalations) escalations, tree \(s.epochs)")
            }
        } catch {
            say("vigil-sim: VIOLATION: \(error)")
            say("vigil-sim: reproduce with: vigil-sim --seed \(seed) --events \(events) --children \(children)")
            exit(1)
        }
        let t = monotonic() - start
        let s = sim.stats
        say("vigil-sim: ok: \(s.events) events in \(fmt(t)) s (\(Int(Double(s.events) / max(t, 1e-9))) events/s); "
            + "\(s.spawns) spawns, \(s.exits) exits, \(s.restartDecisions) restart decisions, \(s.escalations) escalations, "
            + "\(s.questions) guardian questions, \(s.verdicts) verdicts, \(s.commands) commands, \(s.safeModeEntries) safe-mode entries, "
            + "\(s.planTerminationsChecked) plan terminations checked, \(s.shutdowns) shutdowns, \(s.treeFailures) tree failures, \(s.epochs) trees")
        say("vigil-sim: digest \(String(sim.fingerprint, radix: 16))")
    }

    static func say(_ s: String) {
        let line = s + "\n"
        _ = line.utf8CString.withUnsafeBufferPointer { write(1, $0.baseAddress, $0.count - 1) }
    }

    static func fail(_ s: String) -> Never {
        let line = "vigil-sim: \(s)\n"
        _ = line.utf8CString.withUnsafeBufferPointer { write(2, $0.baseAddress, $0.count - 1) }
        exit(2)
    }

    static func monotonic() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }

    static func seconds(since c: clock_t) -> String { fmt(Double(clock() - c) / Double(CLOCKS_PER_SEC)) + " s" }

    static func fmt(_ x: Double) -> String { String(Double(Int(x * 100)) / 100) }
}

extension String {
    var replacingUnderscores: String { String(filter { $0 != "_" }) }
}
