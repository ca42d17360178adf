// libFuzzer target for the topology loader: bytes -> libyaml events -> YAMLNode ->
// TopologyDecoder -> TopologyValidator -> file-system checks. Compiled by Scripts/fuzz.sh
// together with Sources/VigilHost/Topology (so the internal `load(bytes:file:)` is
// reachable) against an instrumented VigilCore; not part of the SwiftPM package.
//
// A topology file is operator input, and `vigil reload` reads it while the tree runs, so
// no file may crash vigil, hang it or blow up its memory (the YAML alias and depth limits
// exist for this). A load either succeeds or names at least one problem, in line order.

@_cdecl("LLVMFuzzerTestOneInput")
public func topologyFuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    switch TopologyFuzz.loader.load(bytes: bytes, file: "/nonexistent/fuzz/topology.yaml") {
    case .success(let topology):
        _ = topology.root.name
    case .failure(let error):
        precondition(!error.diagnostics.isEmpty, "a failed load names no problem")
        let lines = error.diagnostics.map(\.location.line)
        precondition(lines == lines.sorted(), "diagnostics are not in line order")
        _ = error.description
    }
    return 0
}

enum TopologyFuzz {
    /// A fixed search path, so what a bare argv[0] resolves to does not depend on $PATH.
    static let loader = TopologyLoader(programSearchPath: [], pathVariable: "/usr/bin")
}
