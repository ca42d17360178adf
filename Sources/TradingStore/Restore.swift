// Restoring the trading database: the newest snapshot that verifies, plus every journaled
// fill it lacks, built beside the damaged file and swapped in with one rename.
@preconcurrency import Glibc

/// What a restore did, step by step.
public struct RestoreOutcome: Sendable {
    /// The snapshot restored from; nil when none verified (rebuilt from the journal alone).
    public var snapshot: String?
    /// Snapshots that failed verification and were set aside (`.bad`), newest first.
    public var setAside: [String] = []
    /// The journal replayed into the copy before the swap.
    public var replay = ReplayOutcome()
    /// Fills journaled while the copy was being built, replayed after the swap.
    public var stragglers = ReplayOutcome()
    /// Journal lines that were not whole entries (a torn last write).
    public var damagedJournalLines = 0
}

extension SnapshotFiles {
    /// Restores the database from the newest snapshot that verifies (`integrity_check`),
    /// or from an empty seeded schema if none does, and replays `journal` into it.
    ///
    /// The copy is built and verified at `<db>.restoring`; only then is the damaged file
    /// moved aside (`<db>.damaged`, kept for a post-mortem, its WAL with it) and the copy
    /// renamed into place, so the path never holds a half-restored database. Connections
    /// still open on the old file keep writing into it unseen; the gateway notices the new
    /// file (`LiveStore`), reopens and replays the journal itself, so nothing it filled in
    /// between is lost. `step` hears each step as it happens (for vigil's journal).
    public func restore(journal: FillJournal?, step: (String) -> Void) throws(SnapshotError) -> RestoreOutcome {
        var outcome = RestoreOutcome()
        func journalEntries() -> [JournalEntry] {
            guard let journal else { return [] }
            do {
                let (entries, damaged) = try journal.read()
                outcome.damagedJournalLines = damaged
                return entries
            } catch {
                step("cannot read the fill journal \(journal.path): \(error); restoring without it")
                return []
            }
        }
        for snapshot in current().newestFirst {
            let health = TradingStore.examine(path: path(of: snapshot.fileName), full: true)
            if health == .healthy { outcome.snapshot = snapshot.fileName; break }
            step("snapshot \(snapshot.fileName) fails verification (\(health)): set aside as .bad, trying the next")
            setAside(snapshot.fileName)
            outcome.setAside.append(snapshot.fileName)
        }
        let copy = databasePath + ".restoring"
        removeDatabaseFiles(copy)
        do {
            if let name = outcome.snapshot {
                let source = try Database(path: path(of: name), create: false)
                defer { source.close() }
                try source.backup(to: copy)
                step("newest snapshot that verifies: \(name); copied with the backup API to \(copy)")
            } else {
                step("no snapshot verifies: rebuilding from an empty schema and the fill journal alone (prices start from the seeds)")
            }
            let store = try TradingStore(path: copy, create: true)
            defer { store.close() }
            try store.createSchema()
            _ = try store.seedIfEmpty()
            let entries = journalEntries()
            outcome.replay = try store.replay(entries)
            step("replayed the fill journal (\(entries.count) entries\(outcome.damagedJournalLines > 0 ? ", \(outcome.damagedJournalLines) torn lines skipped" : "")): \(outcome.replay)")
        } catch {
            removeDatabaseFiles(copy)
            throw SnapshotError("cannot build the restored copy: \(error)")
        }
        let health = TradingStore.examine(path: copy, full: true)
        guard health == .healthy else {
            removeDatabaseFiles(copy)
            throw SnapshotError("the restored copy does not verify (\(health))")
        }
        let keptDamaged = access(databasePath, F_OK) == 0
        if keptDamaged {
            _ = rename(databasePath, databasePath + ".damaged")
            _ = rename(databasePath + "-wal", databasePath + ".damaged-wal")
        } else {
            _ = unlink(databasePath + "-wal")  // a WAL without its database would be applied to the new one
        }
        _ = unlink(databasePath + "-shm")
        guard rename(copy, databasePath) == 0 else { throw SnapshotError("cannot rename \(copy) to \(databasePath): \(describeErrno())") }
        _ = syncFile(parentDirectory(of: databasePath))
        step("restored copy verified (integrity_check ok) and swapped in" + (keptDamaged ? "; the damaged file is kept as \(databasePath).damaged" : ""))
        do {
            let store = try TradingStore(path: databasePath, create: false)
            defer { store.close() }
            outcome.stragglers = try store.replay(journalEntries())
            let late = outcome.stragglers.inserted.count + outcome.stragglers.renumbered.count
            if late > 0 { step("\(late) fills journaled while the copy was built, replayed after the swap: \(outcome.stragglers)") }
        } catch {
            step("second journal pass failed (the gateway replays the journal when it reopens): \(error)")
        }
        return outcome
    }
}
