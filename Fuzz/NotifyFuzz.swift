// libFuzzer target for the sd_notify datagram parser (NotifyMessage.swift), compiled
// together with Sources/VigilWire by Scripts/fuzz.sh; not part of the SwiftPM package.
//
// Any process that learns NOTIFY_SOCKET may send any datagram, so parsing must never trap,
// hang or allocate without bound. It also checks what vigil relies on afterwards: every
// assignment has a non-empty key without '=' or newline, a value without newline, and
// writing the assignments back out parses to the same message.

@_cdecl("LLVMFuzzerTestOneInput")
public func notifyFuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = UnsafeBufferPointer(start: data, count: size)
    guard let message = try? NotifyMessage(parsing: bytes) else { return 0 }
    for (key, value) in message.assignments {
        precondition(!key.isEmpty && !key.contains("=") && !key.contains("\n"), "bad key")
        precondition(!value.contains("\n"), "value holds a newline")
    }
    let written = message.assignments.map { "\($0.key)=\($0.value)" }.joined(separator: "\n")
    guard let reparsed = try? NotifyMessage(parsing: Array(written.utf8)) else {
        fatalError("assignments written back out do not parse")
    }
    precondition(reparsed == message, "assignments written back out parse differently")
    _ = message.isSet("READY")
    _ = message["STATUS"]
    if case .success(let name?) = message.fdName() {
        precondition(!name.isEmpty && name.utf8.count <= NotifyMessage.maximumFDNameLength && !name.contains(":"),
                     "fdName accepted a bad name")
    }
    return 0
}
