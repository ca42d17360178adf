#if canImport(Glibc)
import Glibc
#endif
import Testing
@testable import VigilHost

@Suite("RuntimePaths")
struct RuntimePathsTests {
    @Test func rootLayout() {
        let p = RuntimePaths.resolve(environment: ["XDG_RUNTIME_DIR": "/run/user/0", "HOME": "/root"], effectiveUID: 0)
        #expect(p.runtimeDirectory == "/run/vigil")
        #expect(p.stateDirectory == "/var/lib/vigil")
        #expect(p.controlSocket == "/run/vigil/control.sock")
        #expect(p.journal == "/var/lib/vigil/journal.db")
    }

    @Test func userLayoutFollowsXDG() {
        let p = RuntimePaths.resolve(
            environment: ["XDG_RUNTIME_DIR": "/run/user/1000", "XDG_STATE_HOME": "/home/ann/.state", "HOME": "/home/ann"],
            effectiveUID: 1000)
        #expect(p.runtimeDirectory == "/run/user/1000/vigil")
        #expect(p.stateDirectory == "/home/ann/.state/vigil")
        #expect(p.controlSocket == "/run/user/1000/vigil/control.sock")
        #expect(p.journal == "/home/ann/.state/vigil/journal.db")
    }

    @Test func userFallbacks() {
        let p = RuntimePaths.resolve(environment: ["HOME": "/home/ann/"], effectiveUID: 1000)
        #expect(p.runtimeDirectory == "/tmp/vigil-1000")
        #expect(p.stateDirectory == "/home/ann/.local/state/vigil")
        // Relative or empty XDG values are ignored (XDG spec).
        let q = RuntimePaths.resolve(
            environment: ["XDG_RUNTIME_DIR": "run", "XDG_STATE_HOME": "", "HOME": "/h"], effectiveUID: 7)
        #expect(q.runtimeDirectory == "/tmp/vigil-7")
        #expect(q.stateDirectory == "/h/.local/state/vigil")
    }

    @Test func vigilOverridesWinForEveryone() {
        let env = ["VIGIL_RUNTIME_DIR": "/srv/v/run/", "VIGIL_STATE_DIR": "/srv/v/state",
                   "XDG_RUNTIME_DIR": "/run/user/1000", "HOME": "/home/ann"]
        for uid: uid_t in [0, 1000] {
            let p = RuntimePaths.resolve(environment: env, effectiveUID: uid)
            #expect(p.runtimeDirectory == "/srv/v/run")
            #expect(p.stateDirectory == "/srv/v/state")
            #expect(p.controlSocket == "/srv/v/run/control.sock")
        }
        // Each override on its own.
        let p = RuntimePaths.resolve(environment: ["VIGIL_STATE_DIR": "/s", "HOME": "/home/ann"], effectiveUID: 1000)
        #expect(p.runtimeDirectory == "/tmp/vigil-1000")
        #expect(p.stateDirectory == "/s")
    }

    @Test func processEnvironmentDefault() {
        // Whatever this machine says, the result is absolute and ends in the right files.
        let p = RuntimePaths.resolve()
        #expect(p.runtimeDirectory.hasPrefix("/"))
        #expect(p.stateDirectory.hasPrefix("/"))
        #expect(p.controlSocket.hasSuffix("/control.sock"))
        #expect(p.journal.hasSuffix("/journal.db"))
    }

    @Test func prepareCreatesPrivateDirectories() throws {
        var template = Array("/tmp/vigil-paths-test-XXXXXX".utf8CString)
        let base = String(cString: template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!)! })
        defer { _ = system("rm -rf '\(base)'") }
        let p = RuntimePaths(runtimeDirectory: base + "/a/run", stateDirectory: base + "/b/c/state")
        try p.prepare()
        func mode(_ path: String) -> mode_t {
            var st = stat()
            #expect(stat(path, &st) == 0)
            return st.st_mode & 0o7777
        }
        #expect(mode(base + "/a/run") == 0o700)
        #expect(mode(base + "/b/c") == 0o700)
        #expect(mode(base + "/b/c/state") == 0o700)
        // Idempotent, and tightens a directory of ours that is too open.
        chmod(base + "/a/run", 0o755)
        try p.prepare()
        #expect(mode(base + "/a/run") == 0o700)

        // A file where a directory should be is an error that names the path.
        let f = base + "/file"
        close(open(f, O_CREAT | O_WRONLY, 0o600))
        do {
            try RuntimePaths(runtimeDirectory: f, stateDirectory: base + "/s").prepare()
            Issue.record("prepared over a file")
        } catch {
            #expect(error.path == f)
            #expect(error.message.contains("not a directory"))
        }
    }
}
