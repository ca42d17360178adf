import CShim
import Glibc

/// Prometheus scrapes on the event loop: accept, read the request head, answer from
/// `MetricsReport`, close. See `MetricsServer` for the bounds that keep a client from
/// stalling the loop.
extension TreeHost {
    func acceptScrapes() {
        guard let server = metricsServer else { return }
        for c in server.acceptReady(open: metricsConnections.count, now: now) {
            do {
                try loop.register(c.fd, as: .metricsConnection(c.fd))
                metricsConnections[c.fd] = c
            } catch {
                _ = c.checkDeadline(now: Int64.max)  // cannot watch it: close it
            }
        }
    }

    func serviceScrape(_ fd: Int32, _ ready: EventLoop.Readiness) {
        guard let c = metricsConnections[fd] else { return }
        let t = now
        var progress = ready.writable && c.isWriting ? c.handleWritable() : c.handleReadable(now: t)
        if case .request(let method, let path) = progress {
            if method == "GET" && (path == "/metrics" || path.hasPrefix("/metrics?")) {
                progress = c.respond(status: "200 OK", body: MetricsReport(host: self).text(),
                                     contentType: MetricsConnection.exposition, now: t)
            } else {
                progress = c.respond(status: "404 Not Found", body: "vigil serves only GET /metrics here\n",
                                     contentType: MetricsConnection.plain, now: t)
            }
        }
        followScrape(c, progress)
    }

    func expireScrapes(at t: Int64) {
        for c in metricsConnections.values where (c.deadline ?? Int64.max) <= t {
            followScrape(c, c.checkDeadline(now: t))
        }
    }

    /// Re-arms or forgets a connection after a step.
    private func followScrape(_ c: MetricsConnection, _ progress: MetricsConnection.Progress) {
        switch progress {
        case .closed:
            loop.forget(c.fd)
            metricsConnections.removeValue(forKey: c.fd)
        case .writing:
            loop.setInterest(c.fd, events: VIGIL_EPOLLOUT)
        case .reading, .request:
            loop.setInterest(c.fd, events: VIGIL_EPOLLIN | VIGIL_EPOLLRDHUP)
        }
    }

    func closeMetrics() {
        for c in metricsConnections.values {
            _ = c.checkDeadline(now: Int64.max)
            loop.forget(c.fd)
        }
        metricsConnections.removeAll()
        if let server = metricsServer {
            loop.unregister(server.listenFD)
            server.close()
        }
    }
}
