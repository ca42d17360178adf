// libFuzzer target for the channel frame decoder (Frame.swift, Guardian.swift), compiled
// together with Sources/VigilWire by Scripts/fuzz.sh; not part of the SwiftPM package.
//
// A worker may write any bytes on its channel, so decoding must never trap, hang or
// allocate without bound. Beyond "no crash" this checks the property the format promises:
// a frame has exactly one spelling, so whatever decodes re-encodes to the very same bytes.

@_cdecl("LLVMFuzzerTestOneInput")
public func frameFuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = UnsafeBufferPointer(start: data, count: size)
    guard let frame = try? Frame(decoding: bytes) else { return 0 }
    let again: [UInt8]
    do { again = try frame.encoded() } catch {
        fatalError("decoded frame \(frame.kindName) does not encode again: \(error)")
    }
    guard again.elementsEqual(bytes) else {
        fatalError("frame \(frame.kindName) re-encodes to different bytes (\(again.count) vs \(size))")
    }
    _ = frame.kindName
    return 0
}
