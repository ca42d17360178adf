import Glibc
import Testing
@testable import VigilHost

@Suite("Descriptor store (FDSTORE)")
struct FDStoreTests {
    /// A fresh pipe's read end: a distinct open file each time.
    func descriptor() -> Int32 {
        var p: [Int32] = [-1, -1]
        _ = pipe(&p)
        close(p[1])
        return p[0]
    }

    func isOpen(_ fd: Int32) -> Bool { fcntl(fd, F_GETFD) >= 0 }

    @Test func keepsDescriptorsPerChildAndClosesDuplicatesOfTheSameFile() {
        var store = FDStore()
        let a = descriptor(), b = descriptor()
        let twin = dup(a)
        let outcome = store.store([a, b, twin], name: "state", for: "w")
        #expect(outcome.kept == [a, b] && outcome.duplicates == 1 && outcome.refused == 0)
        #expect(!isOpen(twin), "a second descriptor for the same file is closed, as systemd does")
        #expect(store.handover(for: "w").map(\.fd) == [a, b])
        #expect(store.handover(for: "other").isEmpty)
        #expect(store.flush("w") == 2)
        #expect(!isOpen(a) && !isOpen(b))
    }

    @Test func refusesBeyondTheLimitAndClosesWhatItRefuses() {
        var store = FDStore()
        let fds = (0..<4).map { _ in descriptor() }
        let outcome = store.store(fds, name: "s", for: "w", limit: 3)
        #expect(outcome.stored == 3 && outcome.refused == 1)
        #expect(!isOpen(fds[3]))
        _ = store.flush("w")
    }

    @Test func removesByName() {
        var store = FDStore()
        let a = descriptor(), b = descriptor(), c = descriptor()
        _ = store.store([a], name: "state", for: "w")
        _ = store.store([b], name: "socket", for: "w")
        _ = store.store([c], name: "state", for: "w")
        #expect(store.names(of: "w") == ["state", "socket"])
        #expect(store.remove(name: "state", for: "w") == 2)
        #expect(!isOpen(a) && !isOpen(c) && isOpen(b))
        #expect(store.handover(for: "w").map(\.name) == ["socket"])
        #expect(store.remove(name: "nope", for: "w") == 0)
        _ = store.flush("w")
    }

    @Test func upstreamNamesRoundTripAndRejectWhatVigilDidNotStore() {
        #expect(FDStore.upstreamName(child: "strategy-runner.2", name: "state") == "vigil/strategy-runner.2/state")
        #expect(FDStore.parseUpstreamName("vigil/strategy-runner.2/state")! == ("strategy-runner.2", "state"))
        #expect(FDStore.parseUpstreamName("vigil/a/b/c")! == ("a", "b/c"), "an fd name may hold '/'")
        for foreign in ["stored", "vigil/", "vigil//x", "vigil/a/", "other/a/b"] {
            #expect(FDStore.parseUpstreamName(foreign) == nil, "\(foreign)")
        }
        #expect(FDStore.upstreamName(child: "w", name: String(repeating: "n", count: 250)) == nil)
    }
}
