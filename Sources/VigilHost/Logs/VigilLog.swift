import CShim
import VigilCore

/// Where vigil's own log goes: journal records, vigil's notes about itself, and the lines
/// its children write.
///
/// On a terminal, in a file or in a pipe, each is one text line on stderr (`LogLine`).
/// Under systemd with stderr connected to the journal (`JOURNAL_STREAM` names fd 2, see
/// `JournaldSocket`), each is instead one journal entry with structured fields, so
/// `journalctl -u vigil VIGIL_NODE=db-watchdog` or `journalctl -p warning` find what they
/// ask for and a child's lines carry the child's own name (`journalctl -t db-watchdog`).
/// An entry journald does not take (it is gone, its queue is full) is written as the
/// text line instead: no line is lost and the event loop never waits.
final class VigilLog {
    private let journald: JournaldSocket?

    init(environment: [String: String]) {
        journald = JournaldSocket.forStderr(environment: environment)
    }

    /// True when entries go to journald (while it takes them).
    var isStructured: Bool { journald != nil }

    /// One journal record, as `LogLine` formats it (journald stamps its own time).
    func record(_ r: Record, at wall: Int64) {
        if let journald, journald.send(JournalNativeEncoding.encode(Self.fields(of: r))) { return }
        LogLine.write(LogLine.format(r, wallNanoseconds: wall))
    }

    /// A note by vigil about itself (not a journal record): `vigil: MESSAGE` on stderr.
    func note(_ message: String, _ priority: SyslogPriority = .notice, at wall: Int64 = vigil_realtime_ns()) {
        if let journald, journald.send(JournalNativeEncoding.encode(Self.fields(ofNote: message, priority))) { return }
        LogLine.write("\(LogLine.clock(wall)) vigil: \(message)")
    }

    /// One line a child wrote on its stdout or stderr, which reach vigil through one pipe
    /// (so their order is kept, and which of the two a line came from is not known).
    func childLine(_ text: String, child name: String, pid: Int32) {
        if let journald, journald.send(JournalNativeEncoding.encode(Self.fields(ofChildLine: text, child: name, pid: pid))) { return }
        LogLine.write(text.hasPrefix(name + "[") ? text : "\(name)[\(pid)]: \(text)")
    }

    // MARK: Fields

    static func fields(of r: Record) -> [JournalField] {
        var fields = [
            JournalField("MESSAGE", LogLine.body(r)),
            JournalField("PRIORITY", String(SyslogPriority.of(r).rawValue)),
            JournalField("SYSLOG_IDENTIFIER", "vigil"),
            JournalField("VIGIL_KIND", r.kind.rawValue),
            JournalField("VIGIL_NODE", r.node),
        ]
        if let pid = r.pid { fields.append(JournalField("VIGIL_PID", String(pid))) }
        if let inc = r.incarnation { fields.append(JournalField("VIGIL_INCARNATION", String(inc))) }
        if !r.detail.isEmpty { fields.append(JournalField("VIGIL_DETAIL", r.detail)) }
        return fields
    }

    static func fields(ofNote message: String, _ priority: SyslogPriority) -> [JournalField] {
        [JournalField("MESSAGE", message), JournalField("PRIORITY", String(priority.rawValue)),
         JournalField("SYSLOG_IDENTIFIER", "vigil")]
    }

    /// A child's line under the child's own name and pid, as journald would show the line
    /// had the child been a service of its own (`db-watchdog[4242]: ...`). The SDK's
    /// `name[pid]: ` prefix is dropped: journalctl prints the same in front.
    /// PRIORITY is 6 (info) for every line, since stdout and stderr share one pipe.
    static func fields(ofChildLine text: String, child name: String, pid: Int32) -> [JournalField] {
        var message = Substring(text)
        let prefix = "\(name)[\(pid)]: "
        if message.hasPrefix(prefix) { message = message.dropFirst(prefix.count) }
        return [
            JournalField("MESSAGE", String(message)),
            JournalField("PRIORITY", String(SyslogPriority.info.rawValue)),
            JournalField("SYSLOG_IDENTIFIER", name),
            JournalField("SYSLOG_PID", String(pid)),
            JournalField("VIGIL_CHILD", name),
            JournalField("VIGIL_PID", String(pid)),
        ]
    }
}
