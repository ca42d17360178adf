/// Where vigil serves Prometheus metrics: `metrics: 127.0.0.1:9464` at the top level of a
/// topology. Loopback only: the metrics name every child and its pid, and the server is a
/// small one inside vigil's event loop; a scraper on another host goes through a proxy
/// that adds what a public endpoint needs (TLS, authentication).
public struct MetricsEndpoint: Hashable, Sendable, CustomStringConvertible {
    /// Four octets of an address in 127.0.0.0/8.
    public var octets: (UInt8, UInt8, UInt8, UInt8) { (a, b, c, d) }
    public var port: UInt16
    private var a: UInt8, b: UInt8, c: UInt8, d: UInt8

    public var host: String { "\(a).\(b).\(c).\(d)" }
    public var description: String { "\(host):\(port)" }

    /// `127.0.0.1:9464`, `localhost:9464` (127.0.0.1), or why the text is refused, in
    /// words that say what to write instead.
    public static func parse(_ text: String) -> Result<MetricsEndpoint, MetricsEndpointError> {
        let example = "a loopback address and port like 127.0.0.1:9464"
        guard let colon = text.lastIndex(of: ":") else {
            return .failure(MetricsEndpointError("metrics: expected \(example), got '\(text)' (no port)"))
        }
        let hostText = String(text[..<colon])
        let portText = String(text[text.index(after: colon)...])
        guard let port = UInt16(portText), port > 0 else {
            return .failure(MetricsEndpointError("metrics: the port must be a number from 1 to 65535, got '\(portText)' in '\(text)'"))
        }
        let parts = hostText == "localhost" ? ["127", "0", "0", "1"] : hostText.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
        let octets = parts.compactMap { $0.count <= 3 ? UInt8($0) : nil }
        guard parts.count == 4, octets.count == 4 else {
            return .failure(MetricsEndpointError("metrics: expected \(example), got '\(text)' ('\(hostText)' is not an IPv4 address or localhost)"))
        }
        guard octets[0] == 127 else {
            return .failure(MetricsEndpointError("metrics: vigil serves metrics on loopback only (127.0.0.0/8 or localhost), got '\(text)'; to scrape from another host, put a proxy in front of 127.0.0.1:\(port)"))
        }
        return .success(MetricsEndpoint(port: port, a: octets[0], b: octets[1], c: octets[2], d: octets[3]))
    }

    private init(port: UInt16, a: UInt8, b: UInt8, c: UInt8, d: UInt8) {
        self.port = port
        self.a = a; self.b = b; self.c = c; self.d = d
    }
}

/// Why a `metrics:` value is refused: one sentence for the `file:line:column:` diagnostic.
public struct MetricsEndpointError: Error, Hashable, Sendable {
    public var message: String
    init(_ message: String) { self.message = message }
}
