import CYAML
import VigilCore

/// A YAML scalar as written: its text, whether it was plain (unquoted), and where.
struct YAMLScalar: Sendable {
    var value: String
    var isPlain: Bool
    var location: SourceLocation

    /// A plain `~`, `null` or nothing at all: YAML's null.
    var isNull: Bool {
        isPlain && (value.isEmpty || value == "~" || value == "null" || value == "Null" || value == "NULL")
    }
}

/// One `key: value` pair of a mapping, in file order.
struct YAMLPair: Sendable {
    var key: YAMLNode
    var value: YAMLNode
}

/// A small YAML tree built from libyaml's events: just what the topology decoder needs,
/// with the start of every node kept for diagnostics. Tags are ignored (every scalar is
/// text, typed by where it appears); aliases are expanded.
indirect enum YAMLNode: Sendable {
    case scalar(YAMLScalar)
    case sequence([YAMLNode], SourceLocation)
    case mapping([YAMLPair], SourceLocation)

    var location: SourceLocation {
        switch self {
        case .scalar(let s): s.location
        case .sequence(_, let l), .mapping(_, let l): l
        }
    }

    /// How the node reads in a "got ..." clause of a message.
    var summary: String {
        switch self {
        case .scalar(let s) where s.isNull: "nothing"
        case .scalar(let s): "'\(s.value)'"
        case .sequence: "a list"
        case .mapping: "a mapping"
        }
    }

    var nodeCount: Int {
        switch self {
        case .scalar: 1
        case .sequence(let items, _): items.reduce(1) { $0 + $1.nodeCount }
        case .mapping(let pairs, _): pairs.reduce(1) { $0 + $1.key.nodeCount + $1.value.nodeCount }
        }
    }
}

/// A YAML error that stops parsing, as a diagnostic.
struct YAMLSyntaxError: Error {
    var diagnostic: Diagnostic
}

/// Parses YAML text with libyaml's event API (`yaml_parser_parse`) into a `YAMLNode`.
enum YAMLReader {
    /// Expanding aliases can blow a small file up exponentially ("billion laughs"); no
    /// topology comes near this many nodes.
    static let maxNodes = 200_000
    /// Deeper nesting is never a topology, and unbounded nesting would exhaust the stack
    /// when the node tree is freed (and make building it quadratic).
    static let maxDepth = 64

    /// The single document in `bytes`, nil for an empty stream, or the first error.
    static func parse(_ bytes: [UInt8], file: String) -> Result<YAMLNode?, YAMLSyntaxError> {
        var parser = yaml_parser_t()
        guard yaml_parser_initialize(&parser) != 0 else {
            return .failure(YAMLSyntaxError(diagnostic: Diagnostic(SourceLocation(file: file, line: 1, column: 1), "cannot parse: out of memory")))
        }
        defer { yaml_parser_delete(&parser) }
        return bytes.withUnsafeBufferPointer { buffer in
            // libyaml reads from the pointer during parsing, so everything happens in here.
            yaml_parser_set_input_string(&parser, buffer.baseAddress ?? UnsafePointer(bitPattern: 1)!, buffer.count)
            var builder = Builder(file: file)
            while true {
                var event = yaml_event_t()
                guard yaml_parser_parse(&parser, &event) != 0 else {
                    return .failure(YAMLSyntaxError(diagnostic: syntaxError(&parser, bytes: bytes, file: file)))
                }
                defer { yaml_event_delete(&event) }
                if event.type == YAML_STREAM_END_EVENT { break }
                if let error = builder.handle(&event) { return .failure(YAMLSyntaxError(diagnostic: error)) }
            }
            return .success(builder.document)
        }
    }

    /// A libyaml error as `file:line:column: YAML syntax error: ...`.
    static func syntaxError(_ parser: inout yaml_parser_t, bytes: [UInt8], file: String) -> Diagnostic {
        let problem = parser.problem.map { String(cString: $0) } ?? "unknown error"
        if parser.error == YAML_READER_ERROR {
            // Reader errors (bad encoding) carry a byte offset, not a mark.
            let offset = min(parser.problem_offset, bytes.count)
            var line = 1, column = 1
            for b in bytes[..<offset] {
                if b == UInt8(ascii: "\n") { line += 1; column = 1 } else if b & 0xC0 != 0x80 { column += 1 }
            }
            return Diagnostic(SourceLocation(file: file, line: line, column: column),
                              "cannot read the file as YAML: \(problem) (the file must be UTF-8 text)")
        }
        let mark = parser.problem_mark
        var message = "YAML syntax error: \(problem)"
        if let context = parser.context.map({ String(cString: $0) }) {
            let cm = parser.context_mark
            message += " (\(context) at line \(cm.line + 1), column \(cm.column + 1))"
        }
        // Tabs are the classic cause of "found character that cannot start any token".
        let index = mark.index
        if index < bytes.count, bytes[index] == UInt8(ascii: "\t") {
            message += "; YAML does not allow tabs for indentation, use spaces"
        }
        return Diagnostic(SourceLocation(file: file, line: mark.line + 1, column: mark.column + 1), message)
    }

    /// Assembles nodes from the event stream.
    struct Builder {
        enum Frame {
            case sequence([YAMLNode], SourceLocation, anchor: String?)
            case mapping([YAMLPair], pendingKey: YAMLNode?, SourceLocation, anchor: String?)
        }

        let file: String
        var stack: [Frame] = []
        var anchors: [String: YAMLNode] = [:]
        var document: YAMLNode?
        var documents = 0
        var expanded = 0

        init(file: String) { self.file = file }

        func location(_ mark: yaml_mark_t) -> SourceLocation {
            SourceLocation(file: file, line: mark.line + 1, column: mark.column + 1)
        }

        static func string(_ p: UnsafeMutablePointer<yaml_char_t>?) -> String? {
            p.map { String(cString: UnsafeRawPointer($0).assumingMemoryBound(to: CChar.self)) }
        }

        mutating func handle(_ event: inout yaml_event_t) -> Diagnostic? {
            let here = location(event.start_mark)
            switch event.type {
            case YAML_DOCUMENT_START_EVENT:
                documents += 1
                if documents > 1 {
                    return Diagnostic(here, "a topology file holds one YAML document, but a second one starts here (remove the '---' line and what follows, or merge it into the first)")
                }
            case YAML_SCALAR_EVENT:
                let s = event.data.scalar
                let text = s.value.map { p in
                    String(decoding: UnsafeBufferPointer(start: p, count: s.length), as: UTF8.self)
                } ?? ""
                let node = YAMLNode.scalar(YAMLScalar(value: text, isPlain: s.style == YAML_PLAIN_SCALAR_STYLE, location: here))
                if let anchor = Self.string(s.anchor) { anchors[anchor] = node }
                return add(node)
            case YAML_ALIAS_EVENT:
                let name = Self.string(event.data.alias.anchor) ?? ""
                guard let node = anchors[name] else {
                    return Diagnostic(here, "unknown alias '*\(name)': define it first with '&\(name)'")
                }
                expanded += node.nodeCount
                if expanded > YAMLReader.maxNodes {
                    return Diagnostic(here, "too many nodes after expanding aliases (more than \(YAMLReader.maxNodes)): write the topology out without nested aliases")
                }
                return add(node)
            case YAML_SEQUENCE_START_EVENT where stack.count >= YAMLReader.maxDepth,
                 YAML_MAPPING_START_EVENT where stack.count >= YAMLReader.maxDepth:
                return Diagnostic(here, "nested more than \(YAMLReader.maxDepth) levels deep: a topology never is; check the brackets and indentation")
            case YAML_SEQUENCE_START_EVENT:
                stack.append(.sequence([], here, anchor: Self.string(event.data.sequence_start.anchor)))
            case YAML_MAPPING_START_EVENT:
                stack.append(.mapping([], pendingKey: nil, here, anchor: Self.string(event.data.mapping_start.anchor)))
            case YAML_SEQUENCE_END_EVENT, YAML_MAPPING_END_EVENT:
                guard let frame = stack.popLast() else { return nil }
                let node: YAMLNode
                let anchor: String?
                switch frame {
                case .sequence(let items, let l, let a):
                    node = .sequence(items, l); anchor = a
                case .mapping(let pairs, _, let l, let a):
                    node = .mapping(pairs, l); anchor = a
                }
                if let anchor { anchors[anchor] = node }
                return add(node)
            default:
                break
            }
            return nil
        }

        mutating func add(_ node: YAMLNode) -> Diagnostic? {
            guard let top = stack.popLast() else {
                document = node
                return nil
            }
            switch top {
            case .sequence(var items, let l, let a):
                items.append(node)
                stack.append(.sequence(items, l, anchor: a))
            case .mapping(var pairs, let key, let l, let a):
                if let key {
                    pairs.append(YAMLPair(key: key, value: node))
                    stack.append(.mapping(pairs, pendingKey: nil, l, anchor: a))
                } else {
                    stack.append(.mapping(pairs, pendingKey: node, l, anchor: a))
                }
            }
            return nil
        }
    }
}
