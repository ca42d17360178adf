import Glibc

/// An exclusive flock on `STATE/vigil.lock`, held while vigil runs: two trees sharing a
/// state directory would interleave one journal and trade on one database.
public final class StateDirectoryLock {
    let fd: Int32

    public init(directory: String) throws(HostError) {
        let path = directory + "/vigil.lock"
        fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else {
            throw HostError("cannot open \(path): \(String(cString: strerror(errno)))")
        }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            var buffer = [UInt8](repeating: 0, count: 32)
            let n = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, 0) }
            let other = n > 0 ? String(decoding: buffer[0..<n], as: UTF8.self).trimmingCharacters(in: " \n") : "?"
            close(fd)
            throw HostError("another vigil (pid \(other)) uses the state directory \(directory); give each tree its own --state-dir")
        }
        let pid = Array("\(getpid())\n".utf8)
        _ = ftruncate(fd, 0)
        _ = pid.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, 0) }
    }

    deinit { close(fd) }
}

extension String {
    func trimmingCharacters(in set: String) -> String {
        var s = Substring(self)
        while let f = s.first, set.contains(f) { s.removeFirst() }
        while let l = s.last, set.contains(l) { s.removeLast() }
        return String(s)
    }
}
