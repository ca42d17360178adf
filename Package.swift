// swift-tools-version:6.0
// Vigil: a multi-process supervision tree for Linux, modelled on Erlang/OTP.
// Only the toolchain and Debian C libraries (found with pkg-config) are used.
import PackageDescription

/// Worker executables: thin mains over VigilWorker + Trading.
let workerKinds = [
    "db-watchdog", "cache-warmer", "exchange-gateway",
    "strategy-runner", "risk-guardian", "ml-predictor",
]

let package = Package(
    name: "Vigil",
    products: [
        .executable(name: "vigil", targets: ["vigil"]),
        .executable(name: "vigil-bench", targets: ["vigil-bench"]),
        .library(name: "VigilWorker", targets: ["VigilWorker"]),
    ] + workerKinds.map { .executable(name: $0, targets: [$0]) },
    targets: [
        // C libraries from Debian, located with pkg-config.
        .systemLibrary(name: "CSystemd", pkgConfig: "libsystemd", providers: [.apt(["libsystemd-dev"])]),
        .systemLibrary(name: "CSQLite", pkgConfig: "sqlite3", providers: [.apt(["libsqlite3-dev"])]),
        .systemLibrary(name: "CYAML", pkgConfig: "yaml-0.1", providers: [.apt(["libyaml-dev"])]),
        // What Glibc does not import into Swift: epoll, signalfd, timerfd, pidfd, prctl,
        // posix_spawn with _GNU_SOURCE flags, W* macros, SO_PEERCRED.
        .target(name: "CShim"),

        // The pure core: every supervision decision. No I/O, injected clock and randomness.
        .target(name: "VigilCore", linkerSettings: [.linkedLibrary("m")]),
        // Frames spoken between vigil and a worker.
        .target(name: "VigilWire"),
        // Deterministic simulation of the core: random trees, random events, invariants
        // checked after every event (used by vigil-sim and VigilSimulationTests).
        .target(name: "VigilSimulation", dependencies: ["VigilCore"]),
        // The imperative shell: syscalls, event loop, journal, control socket, YAML loader.
        .target(name: "VigilHost", dependencies: ["VigilCore", "VigilWire", "CShim", "CSystemd", "CSQLite", "CYAML"]),
        // The SDK a worker executable is written with. Kept free of Foundation: it costs
        // every restart a few milliseconds of dynamic loading.
        .target(name: "VigilWorker", dependencies: ["VigilWire", "CShim"]),
        // Trading domain: prices, orders, fills, positions, exposure. Pure.
        .target(name: "Trading", linkerSettings: [.linkedLibrary("m")]),
        // The trading database (SQLite) shared by the workers: schema, seed, orders, fills.
        .target(name: "TradingStore", dependencies: ["Trading", "CSQLite", "CShim"]),

        .executableTarget(name: "vigil", dependencies: ["VigilHost", "VigilCore"]),
        // `vigil-sim --seed S --events N --children C`: one long simulation run.
        .executableTarget(name: "vigil-sim", dependencies: ["VigilSimulation"]),
        // A worker that misbehaves on demand (no READY, ignores SIGTERM, forks, floods),
        // spawned by the integration tests.
        .executableTarget(name: "vigil-test-worker", dependencies: ["VigilWire", "CShim"]),
        // The resurrection benchmark's worker (C, like shared/bench's, plus READY).
        .executableTarget(name: "vigil-bench-worker"),
        // The same benchmark worker written with the Swift SDK.
        .executableTarget(name: "vigil-bench-sdk-worker", dependencies: ["VigilWorker", "CShim"]),
        // The benchmark: resurrection, detection, tree start/stop, mass failure, overhead,
        // frame throughput, state handoff, beside other supervisors; writes BENCHMARKS.md.
        .executableTarget(name: "vigil-bench", dependencies: ["VigilHost", "CShim"]),
        // A worker written against libsystemd alone (sd_notify, FDSTORE, LISTEN_FDS), as an
        // unmodified daemon would be, spawned by the integration tests.
        .executableTarget(name: "vigil-sd-test-worker", linkerSettings: [.linkedLibrary("systemd")]),
        // A well-behaved worker on the SDK (ticks, checkpoints, prints), for what the SDK
        // does for a worker: reconnecting to a new vigil above all.
        .executableTarget(name: "vigil-sdk-test-worker", dependencies: ["VigilWorker"]),

        .testTarget(name: "VigilCoreTests", dependencies: ["VigilCore"]),
        .testTarget(name: "VigilSimulationTests", dependencies: ["VigilSimulation", "VigilCore"]),
        .testTarget(name: "VigilWireTests", dependencies: ["VigilWire"]),
        .testTarget(name: "VigilWorkerTests", dependencies: ["VigilWorker"]),
        .testTarget(name: "TradingTests", dependencies: ["Trading"]),
        .testTarget(name: "TradingStoreTests", dependencies: ["TradingStore", "Trading"]),
        .testTarget(name: "VigilHostTests", dependencies: ["VigilHost", "VigilCore", "VigilWire"], exclude: ["Fixtures"]),
        .testTarget(name: "IntegrationTests", dependencies: ["VigilHost", "VigilCore", "CShim", "TradingStore", "Trading"]),
    ] + workerKinds.map {
        .executableTarget(name: $0, dependencies: ["VigilWorker", "Trading", "TradingStore", "CShim"])
    }
)
