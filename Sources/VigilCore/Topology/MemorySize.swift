/// Sizes in a topology (`memory_limit: 256MiB`): a whole number with a unit, never bare, so
/// no one writes 256 meaning megabytes and gets bytes. Binary units (KiB, MiB, GiB, TiB) are
/// what the kernel counts in; decimal ones (KB, MB, GB, TB) are accepted for the reader
/// who means them.
public enum MemorySize {
    static let units: [(String, UInt64)] = [
        ("KiB", 1 << 10), ("MiB", 1 << 20), ("GiB", 1 << 30), ("TiB", 1 << 40),
        ("KB", 1_000), ("MB", 1_000_000), ("GB", 1_000_000_000), ("TB", 1_000_000_000_000),
        ("B", 1),
    ]

    /// Bytes for `256MiB`, `1GiB`, `512KiB`, `100MB`, `4096B`; nil for anything else
    /// (no unit, a fraction, a sign, an overflow).
    public static func bytes(topologyText text: String) -> UInt64? {
        for (unit, factor) in units where text.hasSuffix(unit) {
            let digits = text.dropLast(unit.count)
            guard !digits.isEmpty, digits.allSatisfy({ $0.isASCII && $0.isNumber }), let n = UInt64(digits) else { return nil }
            let (product, overflow) = n.multipliedReportingOverflow(by: factor)
            return overflow ? nil : product
        }
        return nil
    }

    /// The largest binary unit that divides `bytes` exactly (`268435456` is `256MiB`), so a
    /// size reads back as it was written.
    public static func text(_ bytes: UInt64) -> String {
        for (unit, factor) in [("TiB", UInt64(1) << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)]
        where bytes >= factor && bytes % factor == 0 {
            return "\(bytes / factor)\(unit)"
        }
        return "\(bytes)B"
    }

    /// `12.3 MiB`-style rendering for journal lines (one decimal, binary units).
    public static func approximate(_ bytes: UInt64) -> String {
        let units = ["B", "KiB", "MiB", "GiB", "TiB"]
        var value = Double(bytes), i = 0
        while value >= 1024, i < units.count - 1 {
            value /= 1024
            i += 1
        }
        let tenths = Int((value * 10).rounded())
        return i == 0 ? "\(bytes) B" : "\(tenths / 10).\(tenths % 10) \(units[i])"
    }
}
