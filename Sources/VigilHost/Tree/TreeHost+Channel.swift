import CShim
import Glibc
import VigilCore
import VigilWire

extension TreeHost {
    /// Reads what a worker sent. At most a bounded number of frames per wake-up, so one
    /// chatty worker cannot starve the loop; garbage or a flood cuts the worker off.
    func readChannel(_ fd: Int32) {
        // The node's own process, or a handoff's second one: each reads as itself.
        guard let id = nodeByChannel[fd], var child = liveChild(id, channel: fd) else { return }
        for _ in 0..<64 {
            let n = receiveBuffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT) | Int32(MSG_TRUNC)) }
            if n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR) {
                // The worker closed its end (it is exiting); its exit arrives via SIGCHLD.
                closeChannel(of: child)
                child.channel = -1
                store(child)
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
                store(child)
                cutOff(child, "flooding: more than \(configuration.floodLimit) frames in one second")
                return
            }
            let frame: Frame
            do {
                // MSG_TRUNC makes recv report a frame's full length even when it did not fit.
                if n > Frame.maximumSize { throw FrameError.tooLarge(n) } 
                frame = try Frame(decoding: receiveBuffer[0..<n])
            } catch {
                store(child)
                cutOff(child, "sent a malformed frame: \(error)")
                return
            }
            switch frame {
            case .heartbeat:
                tree.heartbeat(id, incarnation: child.incarnation, at: Instant(nanoseconds: t))
                noteHeartbeat(&child, at: t)
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
            store(child)
            switch frame {
            case .ready:
                apply(tree.handle(.ready(id, incarnation: child.incarnation), at: Instant(nanoseconds: t)))
            case .checkpoint(let state):
                keepCheckpoint(state, from: child)
            case .verdict(let question, let verdict):
                guard tree.workerSpec(of: id)?.role == .guardian else {
                    cutOff(child, "sent a verdict but is not the guardian")
                    return
                }
                apply(tree.handle(.verdict(id: question, GuardianVerdict(verdict)), at: Instant(nanoseconds: t)))
            case .guardianOrder(let order):
                apply(tree.handle(.guardianOrder(from: id, GuardianOrderKind(order)), at: Instant(nanoseconds: t)))
            case .report(let key, let text) where key == Notice.liquidationDone:
                apply(tree.liquidationFinished(reportedBy: id, detail: String(text.prefix(500)), at: Instant(nanoseconds: t)))
            case .report(let key, let text):
                if tree.workerSpec(of: id)?.role == .predictor { predictorAdvisories += 1 }
                let kind: RecordKind = key == Notice.liquidate || key == "liquidation" ? .liquidation : .report
                apply([.record(Record(kind, node: tree.name(of: id), pid: child.pid, incarnation: child.incarnation,
                                      detail: "\(key): \(String(text.prefix(500)))"))])
            case .advice(let advice):
                adviceArrived(advice, from: child, at: t)
            case .sample, .notice, .restore, .restartRequest, .checkpointRequest, .checkpointRefused:
                cutOff(child, "sent a frame only vigil may send (\(frame.kindName))")
                return
            case .adopt:
                cutOff(child, "sent an adopt frame on its channel (it belongs on the adoption socket only)")
                return
            case .heartbeat, .status, .stopping:
                break  // handled above
            }
            guard let refreshed = liveChild(id, channel: fd) else { return }
            child = refreshed
        }
        store(child)
    }

    /// A worker's status text as `vigil status` shows it in a terminal table: no escapes,
    /// no line breaks, at most 200 characters.
    static func displayable(_ text: String) -> String {
        String(String.UnicodeScalarView(text.unicodeScalars.prefix(200).map {
            $0.properties.generalCategory == .control ? " " : $0
        }))
    }

    /// A worker broke the protocol: stop reading it and let the core kill and restart it
    /// (or, for a handoff's incoming process, kill it and keep the running one).
    func cutOff(_ child: LiveChild, _ why: String) {
        guard var child = liveChild(child.node, pid: child.pid) else { return }
        closeChannel(of: child)
        child.channel = -1
        store(child)
        apply(tree.handle(.protocolViolation(child.node, incarnation: child.incarnation, why), at: Instant(nanoseconds: now)))
    }

    /// Keeps a worker's checkpoint durably for its next incarnation, or refuses it (too
    /// large) with a clear answer to the worker and a journal line; the last good one stays.
    /// During an overlapping handoff only the child's own lineage is kept (see `Handoffs`).
    func keepCheckpoint(_ state: [UInt8], from child: LiveChild) {
        let id = child.node
        let limit = tree.workerSpec(of: id)?.maxCheckpointBytes ?? 0
        guard state.count <= limit else {
            refuseCheckpoint(from: child, "checkpoint of \(state.count) bytes exceeds this worker's limit of \(limit) bytes (max_checkpoint_bytes); the previous checkpoint is kept")
            return
        }
        if child.incarnation != tree.incarnation(of: id) {
            keepCheckpointBeside(state, from: child)
            return
        }
        do {
            try checkpoints.save(node: tree.name(of: id), incarnation: child.incarnation, state: state, at: vigil_realtime_ns())
            handoffs.checkpointArrived(from: id)
        } catch {
            refuseCheckpoint(from: child, "checkpoint could not be stored: \(error); the previous checkpoint is kept")
        }
    }

    /// Journals a refused checkpoint and tells the worker that sent it.
    func refuseCheckpoint(from child: LiveChild, _ why: String) {
        apply([.record(Record(.checkpointRefused, node: tree.name(of: child.node), pid: child.pid, incarnation: child.incarnation, detail: why))])
        send(.checkpointRefused(reason: why), to: child)
    }

    /// What a new incarnation hears first: its last checkpoint, then the tree's mode.
    /// Returns the checkpoint it was given.
    @discardableResult
    func greet(_ child: LiveChild) -> (state: [UInt8], incarnation: UInt64, wallNanoseconds: Int64)? {
        let last = try? checkpoints.last(node: tree.name(of: child.node))
        send(.restore(last?.state), to: child)
        if let safe = tree.safeMode {
            send(.notice(key: Notice.safeMode, value: "on"), to: child)
            if safe.liquidating && tree.workerSpec(of: child.node)?.role == .gateway {
                send(.notice(key: Notice.liquidate, value: "start"), to: child)
            }
        }
        return last
    }

    /// Sends a frame to a worker (its current incarnation's process).
    func send(_ frame: Frame, to id: NodeID) {
        guard let child = live[id] else { return }
        send(frame, to: child)
    }

    /// Sends a frame to one process; a full or broken channel drops it (never blocks vigil).
    func send(_ frame: Frame, to child: LiveChild) {
        guard child.channel >= 0, let bytes = try? frame.encoded() else { return }
        _ = bytes.withUnsafeBytes { Glibc.send(child.channel, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT) | Int32(MSG_NOSIGNAL)) }
    }
}
