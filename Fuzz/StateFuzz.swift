// libFuzzer target for the checkpoint codec's reader (StateCodec.swift), compiled together
// with Sources/VigilWire by Scripts/fuzz.sh; not part of the SwiftPM package.
//
// A restored checkpoint is bytes a previous incarnation wrote, possibly damaged. The input's
// first bytes choose a sequence of reads (one op per byte, the rest is the state); every
// read must either throw or return a value whose canonical encoding is exactly the bytes
// it consumed ("one value has exactly one spelling"); a failed read must leave the offset
// inside the state.

@_cdecl("LLVMFuzzerTestOneInput")
public func stateFuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let input = Array(UnsafeBufferPointer(start: data, count: size))
    guard let opCount = input.first.map({ Int($0 % 16) }), input.count > opCount else { return 0 }
    let ops = input[1..<(1 + opCount)]
    let state = Array(input[(opCount + 1)...])
    var r = StateReader(state)
    for op in ops {
        let start = r.offset
        var w = StateWriter()
        do {
            switch op % 13 {
            case 0: w.append(try r.uint64())
            case 1: w.append(try r.int64())
            case 2: w.append(try r.int())
            case 3: w.append(try r.bool())
            case 4: w.append(try r.double())
            case 5: w.append(try r.string())
            case 6: w.append(bytes: try r.bytes())
            case 7: w.append(try r.int64s())
            case 8: w.append(try r.uint64s())
            case 9: w.append(try r.doubles())
            case 10: w.append(try r.strings())
            case 11: w.append(try r.bools())
            default: w.append(try r.ints())
            }
        } catch {
            precondition(r.offset >= start && r.offset <= state.count, "offset out of bounds after \(error)")
            break
        }
        precondition(w.bytes.elementsEqual(state[start..<r.offset]),
                     "op \(op % 13) read bytes \(start)..<\(r.offset) that are not the value's one spelling")
    }
    if r.isAtEnd { try! r.finish() }
    return 0
}
