import CShim
import Glibc
import VigilCore

/// Children's stdout and stderr: read from each child's pipe, split into lines, kept in
/// its log file (ChildLogs) and echoed to vigil's log with the child's name.
extension TreeHost {
    /// The process of `id` whose output this descriptor is.
    func liveChild(_ id: NodeID, output fd: Int32) -> LiveChild? {
        if let c = live[id], c.output == fd { return c }
        if let c = overlapping[id], c.output == fd { return c }
        return nil
    }

    /// Reads what is waiting (bounded per wake-up, so a chatty child cannot starve the
    /// loop; the rest is read on the next turn).
    func readOutput(_ fd: Int32) {
        guard let id = nodeByOutput[fd], var child = liveChild(id, output: fd) else { return }
        let ended = pump(&child, rounds: 16)
        if ended { endOutput(&child) }
        store(child)
    }

    /// Everything a dead child wrote, to the end of its pipe (or what is there, when a
    /// process that left its group still holds it), its last line included even without
    /// a newline.
    func drainOutput(of id: NodeID, pid: Int32) {
        guard var child = liveChild(id, pid: pid), child.output >= 0 else { return }
        _ = pump(&child, rounds: 1024)
        endOutput(&child)
        store(child)
    }

    /// Reads up to `rounds` chunks; true when the pipe reached its end.
    private func pump(_ child: inout LiveChild, rounds: Int) -> Bool {
        let name = tree.name(of: child.node)
        let pid = child.pid
        for _ in 0..<rounds {
            let n = outputBuffer.withUnsafeMutableBytes { read(child.output, $0.baseAddress, $0.count) }
            if n == 0 { return true }
            if n < 0 { return errno != EAGAIN && errno != EINTR }
            let wall = vigil_realtime_ns()
            outputBuffer.withUnsafeBytes { raw in
                child.outputLine.feed(UnsafeRawBufferPointer(rebasing: raw[0..<n])) { line in
                    emitOutput(line, of: name, pid: pid, at: wall)
                }
            }
        }
        return false
    }

    private func endOutput(_ child: inout LiveChild) {
        let name = tree.name(of: child.node)
        let pid = child.pid
        child.outputLine.flush { emitOutput($0, of: name, pid: pid, at: vigil_realtime_ns()) }
        loop.unregister(child.output)
        nodeByOutput.removeValue(forKey: child.output)
        close(child.output)
        child.output = -1
    }

    /// One line: to the child's log file, and to vigil's log (`VigilLog.childLine`: on
    /// stderr with the child's name in front, or a journald entry under the child's name).
    func emitOutput(_ line: ArraySlice<UInt8>, of name: String, pid: Int32, at wall: Int64) {
        childLogs.append(name, pid: pid, line: line, at: wall)
        let text = String(decoding: line, as: UTF8.self)
        log.childLine(text, child: name, pid: pid)
    }
}
