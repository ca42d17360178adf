import VigilWire

extension Worker {
    /// The predictor's forecast that a worker fails within a horizon, with what to do about
    /// it (vigil takes it only from the worker with role predictor, and journals it).
    /// Blocking, never dropped; the reason is cut to 1 KiB. False when standalone or the
    /// send failed.
    @discardableResult
    public func advise(_ advice: Advice) -> Bool {
        var a = advice
        a.reason = Worker.clip(a.reason, bytes: 1024)
        a.model = Worker.clip(a.model, bytes: 64)
        return send(.advice(a), droppable: false)
    }
}
