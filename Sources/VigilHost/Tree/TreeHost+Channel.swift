import CShim
import Glibc
import VigilCore
import VigilWire

extension TreeHost {
    /// Reads what a worker sent. At most a bounded number of frames per wake-up, so one
    /// chatty worker cannot starve the loop; garbage or a flood cuts the worker off.
    func readChannel(_ fd: Int32) {
        guard let id = nodeByChannel[fd], var child = live[id] else { return }
        for _ in 0..<64 {
            let n = receiveBuffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT) | Int32(MSG_TRUNC)) }
            if n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR) {
                // The worker closed its end (it is exiting); its exit arrives via SIGCHLD.
                closeChannel(of: child)
                child.channel = -1
                live[id] = child
                return
            }
            if n < 0 { break }
            let t = now
            if t - child.windowStart > 1_000_000_000 {
                child.windowStart = t
                child.framesInWindow = 0
            }
            child.framesInWindow += 1
            if child.framesInWindow > configuration.floodLimit {
                live[id] = child
                cutOff(id, "flooding: more than \(configuration.floodLimit) frames in one second")
                return
            }
            let frame: Frame
            do {
                // MSG_TRUNC makes recv report a frame's full length even when it did not fit.
                if n > Frame.maximumSize { throw FrameError.tooLarge(n) } 
                frame = try Frame(decoding: receiveBuffer[0..<n])
            } catch {
                live[id] = child
                cutOff(id, "sent a malformed frame: \(error)")
                return
            }
            switch frame {
            case .ready:
                live[id] = child
                apply(tree.handle(.ready(id, incarnation: child.incarnation), at: Instant(nanoseconds: t)))
                guard let refreshed = live[id], refreshed.channel == fd else { return }
                child = refreshed
            case .heartbeat:
                tree.heartbeat(id, incarnation: child.incarnation, at: Instant(nanoseconds: t))
            case .status(let text):
                // Shown in a terminal table: no escapes, no line breaks, bounded.
                child.statusText = String(String.UnicodeScalarView(text.unicodeScalars.prefix(200).map {
                    $0.properties.generalCategory == .control ? " " : $0
                }))
            case .stopping:
                child.statusText = "stopping"
            case .sample, .notice:
                live[id] = child
                cutOff(id, "sent a frame only vigil may send (\(frame))")
                return
            }
        }
        live[id] = child
    }

    /// A worker broke the protocol: stop reading it and let the core kill and restart it.
    func cutOff(_ id: NodeID, _ why: String) {
        guard var child = live[id] else { return }
        closeChannel(of: child)
        child.channel = -1
        live[id] = child
        apply(tree.handle(.protocolViolation(id, incarnation: child.incarnation, why), at: Instant(nanoseconds: now)))
    }

    /// Sends a frame to a worker; a full or broken channel drops it (never blocks vigil).
    func send(_ frame: Frame, to id: NodeID) {
        guard let child = live[id], child.channel >= 0, let bytes = try? frame.encoded() else { return }
        _ = bytes.withUnsafeBytes { Glibc.send(child.channel, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT) | Int32(MSG_NOSIGNAL)) }
    }
}
