import CShim
import Glibc

/// The descriptors children handed vigil to keep (sd_notify `FDSTORE=1`), given back to
/// each next incarnation as `LISTEN_FDS` from fd 3 with `LISTEN_FDNAMES`, as systemd's
/// file descriptor store does. Kept per child name across its restarts; flushed when an
/// operator stops the child. Descriptors live only as long as this vigil process.
///
/// systemd's rules: a descriptor referring to the same file as one already stored is
/// closed rather than stored twice; at most `limit` per child (FileDescriptorStoreMax),
/// the rest closed and reported; `FDSTOREREMOVE=1` + `FDNAME=` drops every one by that
/// name; names default to "stored".
///
/// Under systemd, vigil forwards each stored descriptor to its own store in systemd as
/// `vigil/<child>/<name>` (`upstreamName`), and takes them back from `LISTEN_FDS` when it
/// starts again, so a child's descriptors survive a restart of vigil too.
struct FDStore {
    struct Entry {
        var name: String
        var fd: Int32
    }

    /// systemd's default FileDescriptorStoreMax is 0; vigil keeps a few by default so a
    /// worker can hand over a memfd without configuration.
    static let defaultLimit = 16

    private(set) var entries: [String: [Entry]] = [:]

    /// What `store` did, for the journal.
    struct Outcome: Equatable {
        /// The descriptors now in the store (owned by it).
        var kept: [Int32] = []
        var duplicates = 0
        var refused = 0
        var stored: Int { kept.count }
    }

    /// Takes ownership of `fds`: each is stored or closed.
    mutating func store(_ fds: [Int32], name: String, for child: String, limit: Int = FDStore.defaultLimit) -> Outcome {
        var outcome = Outcome()
        var kept = entries[child] ?? []
        for fd in fds {
            if kept.contains(where: { vigil_same_file($0.fd, fd) == 1 }) {
                close(fd)
                outcome.duplicates += 1
            } else if kept.count >= limit {
                close(fd)
                outcome.refused += 1
            } else {
                kept.append(Entry(name: name, fd: fd))
                outcome.kept.append(fd)
            }
        }
        entries[child] = kept
        return outcome
    }

    /// Closes and forgets every descriptor of `child` named `name`; how many there were.
    mutating func remove(name: String, for child: String) -> Int {
        guard let kept = entries[child] else { return 0 }
        let (gone, stay) = (kept.filter { $0.name == name }, kept.filter { $0.name != name })
        for e in gone { close(e.fd) }
        entries[child] = stay.isEmpty ? nil : stay
        return gone.count
    }

    /// Closes and forgets all of `child`'s descriptors; how many there were.
    mutating func flush(_ child: String) -> Int {
        let gone = entries.removeValue(forKey: child) ?? []
        for e in gone { close(e.fd) }
        return gone.count
    }

    /// What the next incarnation of `child` is handed, in store order.
    func handover(for child: String) -> [Entry] { entries[child] ?? [] }

    /// The distinct names `child` stored under.
    func names(of child: String) -> [String] {
        var seen: [String] = []
        for e in entries[child] ?? [] where !seen.contains(e.name) { seen.append(e.name) }
        return seen
    }

    /// The name vigil stores a child's descriptor under in systemd's store for vigil:
    /// `vigil/<child>/<name>` (child names have no '/' or ':'; fd names no ':'). nil when
    /// it would exceed systemd's 255 bytes.
    static func upstreamName(child: String, name: String) -> String? {
        let s = "vigil/\(child)/\(name)"
        return s.utf8.count <= 255 ? s : nil
    }

    /// The child and name in an `upstreamName`, or nil for a descriptor vigil did not store.
    static func parseUpstreamName(_ s: String) -> (child: String, name: String)? {
        guard s.hasPrefix("vigil/") else { return nil }
        let rest = s.dropFirst("vigil/".count)
        guard let slash = rest.firstIndex(of: "/"), slash != rest.startIndex, rest.index(after: slash) != rest.endIndex else { return nil }
        return (String(rest[..<slash]), String(rest[rest.index(after: slash)...]))
    }

    /// Takes a descriptor back from systemd at start-up.
    mutating func adopt(_ fd: Int32, name: String, for child: String) {
        entries[child, default: []].append(Entry(name: name, fd: fd))
    }
}
