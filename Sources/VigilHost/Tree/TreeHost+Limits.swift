import Glibc
import VigilCore

/// `memory_limit`, enforced by vigil's sampler: at every sample a worker whose main
/// process's resident set exceeds its limit is reported to the core, which journals it
/// (`memory_limit`: killed for exceeding memory_limit), SIGKILLs its group and treats the
/// exit as a failure; `vigil status` shows the reason.
///
/// Why RSS measured by vigil and not the kernel's limits:
/// - `RLIMIT_AS` caps *virtual* memory. A Swift worker reserves far more address space than
///   it touches (thread stacks, glibc's 64 MiB malloc arenas per thread), so a limit that
///   bounds its real use either kills healthy workers or bounds nothing; and hitting it
///   makes malloc fail, which a Swift program reports as a crash somewhere unrelated.
/// - cgroup v2 `memory.max` is the right tool where vigil owns a delegated subtree. On
///   these machines the cgroup2 hierarchy has no memory controller (cgroup v1 hybrid), so
///   vigil does not rely on it; the sampler works everywhere, for any program.
/// The cost: the limit is checked once per `sample_interval` (sampling runs when any worker
/// has a limit), so a worker may overshoot by what it allocates within one interval, and
/// only the main process is measured (not its own children).
extension TreeHost {
    var hasMemoryLimits: Bool {
        tree.nodeIDs.contains { tree.workerSpec(of: $0)?.memoryLimit != nil }
    }

    /// Kills (through the core) each worker above its limit; `rssKiB` is this sample's.
    func enforceMemoryLimit(_ id: NodeID, _ child: LiveChild, rssKiB: UInt64) {
        guard let limit = tree.workerSpec(of: id)?.memoryLimit, rssKiB * 1024 > limit else { return }
        apply(tree.handle(.memoryLimitExceeded(id, incarnation: child.incarnation, rssBytes: rssKiB * 1024),
                          at: Instant(nanoseconds: now)))
    }
}
