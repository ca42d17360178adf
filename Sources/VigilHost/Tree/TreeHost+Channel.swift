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
            case .heartbeat:
                tree.heartbeat(id, incarnation: child.incarnation, at: Instant(nanoseconds: t))
                continue
            case .status(let text):
                child.statusText = Self.displayable(text)
                continue
            case .stopping:
                child.statusText = "stopping"
                continue
            default:
                break
            }
            // The frames below act on the tree, which may replace or remove this child:
            // store what was counted so far, act, then read the child back.
            live[id] = child
            switch frame {
            case .ready:
                apply(tree.handle(.ready(id, incarnation: child.incarnation), at: Instant(nanoseconds: t)))
            case .checkpoint(let state):
                keepCheckpoint(state, from: id, incarnation: child.incarnation)
            case .verdict(let question, let verdict):
                guard tree.workerSpec(of: id)?.role == .guardian else {
                    cutOff(id, "sent a verdict but is not the guardian")
                    return
                }
                apply(tree.handle(.verdict(id: question, GuardianVerdict(verdict)), at: Instant(nanoseconds: t)))
            case .guardianOrder(let order):
                apply(tree.handle(.guardianOrder(from: id, GuardianOrderKind(order)), at: Instant(nanoseconds: t)))
            case .report(let key, let text):
                let kind: RecordKind = key == Notice.liquidate || key == "liquidation" ? .liquidation : .report
                apply([.record(Record(kind, node: tree.name(of: id), pid: child.pid, incarnation: child.incarnation,
                                      detail: "\(key): \(String(text.prefix(500)))"))])
            case .sample, .notice, .restore, .restartRequest, .checkpointRequest, .checkpointRefused:
                cutOff(id, "sent a frame only vigil may send (\(frame.kindName))")
                return
            case .heartbeat, .status, .stopping:
                break  // handled above
            }
            guard let refreshed = live[id], refreshed.channel == fd else { return }
            child = refreshed
        }
        live[id] = child
    }

    /// A worker's status text as `vigil status` shows it in a terminal table: no escapes,
    /// no line breaks, at most 200 characters.
    static func displayable(_ text: String) -> String {
        String(String.UnicodeScalarView(text.unicodeScalars.prefix(200).map {
            $0.properties.generalCategory == .control ? " " : $0
        }))
    }

    /// A worker broke the protocol: stop reading it and let the core kill and restart it.
    func cutOff(_ id: NodeID, _ why: String) {
        guard var child = live[id] else { return }
        closeChannel(of: child)
        child.channel = -1
        live[id] = child
        apply(tree.handle(.protocolViolation(id, incarnation: child.incarnation, why), at: Instant(nanoseconds: now)))
    }

    /// Keeps a worker's checkpoint durably for its next incarnation, or refuses it (too
    /// large) with a clear answer to the worker and a journal line; the last good one stays.
    func keepCheckpoint(_ state: [UInt8], from id: NodeID, incarnation: UInt64) {
        let limit = tree.workerSpec(of: id)?.maxCheckpointBytes ?? 0
        guard state.count <= limit else {
            let why = "checkpoint of \(state.count) bytes exceeds this worker's limit of \(limit) bytes (max_checkpoint_bytes); the previous checkpoint is kept"
            apply([.record(Record(.checkpointRefused, node: tree.name(of: id), pid: tree.pid(of: id), incarnation: incarnation, detail: why))])
            send(.checkpointRefused(reason: why), to: id)
            return
        }
        do {
            try checkpoints.save(node: tree.name(of: id), incarnation: incarnation, state: state, at: vigil_realtime_ns())
            handoffs.checkpointArrived(from: id)
        } catch {
            let why = "checkpoint could not be stored: \(error); the previous checkpoint is kept"
            apply([.record(Record(.checkpointRefused, node: tree.name(of: id), pid: tree.pid(of: id), incarnation: incarnation, detail: why))])
            send(.checkpointRefused(reason: why), to: id)
        }
    }

    /// What a new incarnation hears first: its last checkpoint, then the tree's mode.
    func greet(_ id: NodeID) {
        let last = try? checkpoints.last(node: tree.name(of: id))
        send(.restore(last?.state), to: id)
        if let safe = tree.safeMode {
            send(.notice(key: Notice.safeMode, value: "on"), to: id)
            if safe.liquidating && tree.workerSpec(of: id)?.role == .gateway {
                send(.notice(key: Notice.liquidate, value: "start"), to: id)
            }
        }
    }

    /// Sends a frame to a worker; a full or broken channel drops it (never blocks vigil).
    func send(_ frame: Frame, to id: NodeID) {
        guard let child = live[id], child.channel >= 0, let bytes = try? frame.encoded() else { return }
        _ = bytes.withUnsafeBytes { Glibc.send(child.channel, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT) | Int32(MSG_NOSIGNAL)) }
    }
}
