#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import VigilCore

/// Every problem found while loading a topology file, sorted by line. Its description is
/// one `file:line:column: message` per line, ready to print to stderr.
public struct TopologyLoadError: Error, Hashable, Sendable, CustomStringConvertible {
    /// All the problems, sorted by line, then column.
    public var diagnostics: [Diagnostic]

    public init(diagnostics: [Diagnostic]) {
        self.diagnostics = diagnostics
    }

    public var description: String {
        diagnostics.map(\.description).joined(separator: "\n")
    }
}

/// Reads a topology file (YAML) into a validated `Topology`.
///
/// Loading runs three passes and reports the problems of all of them together:
/// 1. YAML decoding with libyaml's event parser: syntax errors, unknown or duplicate keys,
///    values of the wrong type (a YAML syntax error stops here: nothing else can be trusted).
/// 2. `TopologyValidator`: names, `depends_on`, numeric ranges, roles.
/// 3. The file system: argv[0] must be an executable file and is replaced by its absolute
///    path; `working_directory` must be an existing directory and is made absolute.
///
/// Program lookup for argv[0]: an absolute path is used as is; a path containing '/' is
/// relative to the topology file's directory; a bare name is looked up in
/// `programSearchPath` in order (vigil passes the directory of its own executable, so the
/// worker executables built beside it are found first), then in each directory of `$PATH`.
public struct TopologyLoader: Sendable {
    /// Directories searched for a bare argv[0] before `$PATH`.
    public var programSearchPath: [String]
    /// The `PATH` value searched after `programSearchPath` (nil: none).
    public var pathVariable: String?

    /// A loader that searches `programSearchPath`, then this process's `$PATH`.
    public init(programSearchPath: [String]) {
        self.init(programSearchPath: programSearchPath, pathVariable: getenv("PATH").map { String(cString: $0) })
    }

    /// A loader that searches `programSearchPath`, then the directories of `pathVariable`
    /// (a colon-separated list, like `$PATH`).
    public init(programSearchPath: [String], pathVariable: String?) {
        self.programSearchPath = programSearchPath
        self.pathVariable = pathVariable
    }

    /// Reads and loads the topology file at `path`. Diagnostics name the file as `path`
    /// was given.
    public func load(path: String) -> Result<Topology, TopologyLoadError> {
        switch FileReader.read(path) {
        case .success(let bytes):
            return load(bytes: bytes, file: path)
        case .failure(let error):
            let reason = String(cString: strerror(error.code))
            return .failure(TopologyLoadError(diagnostics: [
                Diagnostic(SourceLocation(file: path, line: 1, column: 1), "cannot read: \(reason)"),
            ]))
        }
    }

    /// Loads a topology from `text` as if read from `file` (used in diagnostics and to
    /// resolve relative paths: relative to `file`'s directory).
    public func load(text: String, file: String) -> Result<Topology, TopologyLoadError> {
        load(bytes: Array(text.utf8), file: file)
    }

    func load(bytes: [UInt8], file: String) -> Result<Topology, TopologyLoadError> {
        let document: YAMLNode?
        switch YAMLReader.parse(bytes, file: file) {
        case .success(let d): document = d
        case .failure(let e): return .failure(TopologyLoadError(diagnostics: [e.diagnostic]))
        }

        let baseDirectory = Paths.resolve(Paths.directory(of: file), against: FileReader.currentDirectory())
        var decoder = TopologyDecoder(file: file, baseDirectory: baseDirectory)
        var topology = decoder.decode(document)
        var diagnostics = decoder.diagnostics

        // The validator locates problems at the spec; move each to the exact field when the
        // decoder knows where it was written, and drop those the decoder already reported.
        for finding in TopologyValidator.findings(in: topology) {
            var d = finding.diagnostic
            if let field = finding.field {
                let ref = FieldRef(spec: finding.spec, field: field)
                if decoder.reported.contains(ref) { continue }
                if let l = decoder.fieldLocations[ref] { d.location = l }
            }
            diagnostics.append(d)
        }

        var checker = FileSystemCheck(loader: self, baseDirectory: baseDirectory, fieldLocations: decoder.fieldLocations)
        topology.root = checker.check(topology.root)
        diagnostics += checker.diagnostics

        var seen = Set<Diagnostic>()
        let sorted = diagnostics.enumerated()
            .filter { seen.insert($0.element).inserted }
            .sorted { a, b in
                let (x, y) = (a.element.location, b.element.location)
                if x.line != y.line { return x.line < y.line }
                if x.column != y.column { return x.column < y.column }
                return a.offset < b.offset
            }
            .map(\.element)
        return sorted.isEmpty ? .success(topology) : .failure(TopologyLoadError(diagnostics: sorted))
    }

    /// The directories searched for a bare program name, in order, without duplicates.
    var searchDirectories: [String] {
        let cwd = FileReader.currentDirectory()
        var seen = Set<String>()
        var out: [String] = []
        let path = (pathVariable ?? "").split(separator: ":").map(String.init)
        for dir in programSearchPath + path where !dir.isEmpty {
            let abs = Paths.resolve(dir, against: cwd)
            if seen.insert(abs).inserted { out.append(abs) }
        }
        return out
    }
}

/// Pass 3: argv[0] and working_directory against the file system.
struct FileSystemCheck {
    let loader: TopologyLoader
    let baseDirectory: String
    let fieldLocations: [FieldRef: SourceLocation]
    var diagnostics: [Diagnostic] = []

    mutating func check(_ s: SupervisorSpec) -> SupervisorSpec {
        var s = s
        s.children = s.children.map { child in
            switch child {
            case .worker(let w): .worker(check(w))
            case .supervisor(let sub): .supervisor(check(sub))
            }
        }
        return s
    }

    mutating func check(_ w: WorkerSpec) -> WorkerSpec {
        var w = w
        if let program = w.argv.first, !program.isEmpty {
            let at = fieldLocations[FieldRef(spec: w.location, field: "argv[0]")] ?? w.location
            switch resolve(program) {
            case .success(let path): w.argv[0] = path
            case .failure(let problem): diagnostics.append(Diagnostic(at, problem.message))
            }
        }
        if let dir = w.workingDirectory, !dir.isEmpty {
            let at = fieldLocations[FieldRef(spec: w.location, field: "working_directory")] ?? w.location
            switch FileReader.kind(of: dir) {
            case .directory: break
            case .missing:
                diagnostics.append(Diagnostic(at, "working_directory '\(dir)' does not exist: create it, or fix the path (a relative path is relative to the topology file's directory)"))
            case .other, .file:
                diagnostics.append(Diagnostic(at, "working_directory '\(dir)' is not a directory"))
            }
        }
        return w
    }

    struct Problem: Error { var message: String }

    /// The absolute path of `program`, or why it cannot be run.
    func resolve(_ program: String) -> Result<String, Problem> {
        if program.contains("/") {
            let path = Paths.resolve(program, against: baseDirectory)
            let shown = path == program ? "'\(program)'" : "'\(program)' (\(path))"
            switch FileReader.kind(of: path) {
            case .missing:
                var message = "program \(shown) not found"
                if !program.hasPrefix("/") { message += "; a program path with '/' is relative to the topology file's directory" }
                return .failure(Problem(message: message))
            case .directory:
                return .failure(Problem(message: "program \(shown) is a directory, not an executable file"))
            case .other:
                return .failure(Problem(message: "program \(shown) is not a regular file"))
            case .file(let mode):
                if access(path, X_OK) != 0 {
                    return .failure(Problem(message: notExecutable(shown, path: path, mode: mode)))
                }
                return .success(path)
            }
        }
        var notExecutableHit: (path: String, mode: UInt32)?
        let dirs = loader.searchDirectories
        for dir in dirs {
            let path = dir == "/" ? "/" + program : dir + "/" + program
            if case .file(let mode) = FileReader.kind(of: path) {
                if access(path, X_OK) == 0 { return .success(path) }
                if notExecutableHit == nil { notExecutableHit = (path, mode) }
            }
        }
        if let hit = notExecutableHit {
            return .failure(Problem(message: notExecutable("'\(program)' (found at \(hit.path))", path: hit.path, mode: hit.mode)))
        }
        let looked = dirs.isEmpty ? "nowhere: no search path and no $PATH" : dirs.joined(separator: ", ")
        return .failure(Problem(message: "program '\(program)' not found (looked in: \(looked)); build it, or write its path in argv[0]"))
    }

    func notExecutable(_ shown: String, path: String, mode: UInt32) -> String {
        "program \(shown) is not executable (mode \(String(mode & 0o7777, radix: 8))): run chmod +x \(path)"
    }
}

/// The little file I/O the loader needs, on Glibc directly (no Foundation in the host).
enum FileReader {
    enum Kind {
        case missing
        case directory
        case file(mode: UInt32)
        case other
    }

    /// What is at `path`, following symlinks.
    static func kind(of path: String) -> Kind {
        var st = stat()
        guard stat(path, &st) == 0 else { return .missing }
        switch st.st_mode & S_IFMT {
        case S_IFDIR: return .directory
        case S_IFREG: return .file(mode: st.st_mode)
        default: return .other
        }
    }

    struct Errno: Error { var code: Int32 }

    /// The whole file, or the errno of the failure.
    static func read(_ path: String) -> Result<[UInt8], Errno> {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return .failure(Errno(code: errno)) }
        defer { close(fd) }
        var out: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                return .failure(Errno(code: errno))
            }
            if n == 0 { break }
            out.append(contentsOf: chunk[0..<n])
        }
        return .success(out)
    }

    static func currentDirectory() -> String {
        guard let p = getcwd(nil, 0) else { return "/" }
        defer { free(p) }
        return String(cString: p)
    }
}
